package stream_test

import (
	"bufio"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/internal/stream"
)

// A client that takes gzip gets the same frames, compressed: each event
// readable as soon as it is published (flushed per event, not held for a
// compressor's buffer), and, when the queen stops, a stream that ends
// cleanly (its trailer's CRC and length checked by compress/gzip).
func TestGzipStream(t *testing.T) {
	b, url := newBroker(t, stream.Config{Snapshot: snapshotOf("h1")})
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Asked for by name, so Go's transport leaves the body compressed.
	req.Header.Set("Accept-Encoding", "br;q=1.0, gzip;q=0.8")
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("Vary") != "Accept-Encoding" ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("headers %v", resp.Header)
	}
	// Not chunked: the stream ends with its connection.
	if len(resp.TransferEncoding) != 0 || resp.ContentLength != -1 || !resp.Close {
		t.Fatalf("transfer encoding %v, length %d, close %v: want a stream ended by its connection", resp.TransferEncoding, resp.ContentLength, resp.Close)
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(zr)
	// frame reads one frame: the lines up to the blank one.
	frame := func() string {
		var f strings.Builder
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("after %q: %v", f.String(), err)
			}
			if line == "\n" {
				return f.String()
			}
			f.WriteString(line)
		}
	}
	if f := frame(); !strings.Contains(f, "event: snapshot\n") || !strings.Contains(f, `"hives":["h1"]`) {
		t.Fatalf("first frame %q, want the snapshot", f)
	}
	// Incompressible enough to span several deflate blocks.
	pad := strings.Repeat("0123456789abcdef", 8<<10)
	for i := range 3 {
		if err := b.Publish(stream.Event{Type: "worker_added", Key: "h1", Data: payload{N: i, Pad: pad}}); err != nil {
			t.Fatal(err)
		}
		// Read before the next is published: it arrived whole.
		want := "id: " + b.Epoch() + "-" + string(rune('1'+i)) + "\nevent: worker_added\n"
		if f := frame(); !strings.HasPrefix(f, want) || !strings.Contains(f, pad) {
			t.Fatalf("frame %d: %.80q…, want %q…", i, f, want)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
		t.Fatalf("the stream's end: %q, %v; want a clean end of the gzip stream", rest, err)
	}
}

// Clients that do not ask for gzip (or refuse it) get the frames as they
// are, and no Content-Encoding.
func TestIdentityStream(t *testing.T) {
	b, url := newBroker(t, stream.Config{Snapshot: snapshotOf("h1")})
	for _, ae := range []string{"", "identity", "gzip;q=0", "deflate, br"} {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if ae != "" {
			req.Header.Set("Accept-Encoding", ae)
		}
		tr := &http.Transport{DisableCompression: true}
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		if ce := resp.Header.Get("Content-Encoding"); ce != "" || err != nil || !strings.HasPrefix(line, "id: "+b.Epoch()) {
			t.Errorf("Accept-Encoding %q: Content-Encoding %q, first line %q (%v)", ae, ce, line, err)
		}
		resp.Body.Close()
		tr.CloseIdleConnections()
	}
	waitClients(t, b, 0)
}
