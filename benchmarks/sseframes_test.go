package benchmarks

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/klauspost/compress/gzip"
)

// viewerTransport is the HTTP transport of n stream viewers in one
// process. Viewers come from many hosts: the queen lets each source
// address only so many connections that have not shown a token yet (64),
// so a thousand from one address at once would be a flood to it. They
// dial from 127.0.1.0/24 and up (any 127/8 address is this host), eight to
// an address. raw leaves Accept-Encoding to the caller and the body as it
// came (Go's transport otherwise asks for gzip and inflates it).
func viewerTransport(n int, raw bool) *http.Transport {
	var dials atomic.Int64
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		i := dials.Add(1) / 8
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, byte(1+i/250), byte(1+i%250))}}
		return d.DialContext(ctx, network, addr)
	}
	return &http.Transport{MaxIdleConnsPerHost: n, DisableCompression: raw, DialContext: dial}
}

// readFrames reads the queen's SSE frames (id, event, one data line, a
// blank line) from r and calls fn as each frame's data line completes,
// with its event type, the head of its data (the first 64 KiB, where the
// timestamps are) and its length; fn returns false to stop. It allocates
// nothing per event: with a thousand clients in one process on this
// machine, a general parser's garbage would be what a benchmark measured.
func readFrames(r io.Reader, fn func(typ, head []byte, size int) bool) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var typ, head []byte
	for {
		line, err := br.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			return err
		}
		switch {
		case bytes.HasPrefix(line, []byte("event: ")):
			typ = append(typ[:0], bytes.TrimSpace(line[7:])...)
		case bytes.HasPrefix(line, []byte("data: ")):
			size := len(line) - 7 // less "data: " and the newline
			if err == bufio.ErrBufferFull {
				// Longer than the buffer (a snapshot, a hive_online):
				// keep its head, count the rest.
				head = append(head[:0], line[6:]...)
				for err == bufio.ErrBufferFull {
					line, err = br.ReadSlice('\n')
					size += len(line)
				}
				if err != nil {
					return err
				}
				if !fn(typ, head, size) {
					return nil
				}
				continue
			}
			if !fn(typ, line[6:], size) {
				return nil
			}
		default:
			// Skip the rest of any other long line.
			for err == bufio.ErrBufferFull {
				_, err = br.ReadSlice('\n')
			}
			if err != nil {
				return err
			}
		}
	}
}

// inflateEvery is how many gzip viewers share one that inflates and
// parses its stream. Every viewer reads all its bytes off the socket, so
// the queen's work is the same for each; the others leave them
// compressed: a thousand inflating viewers (850 MB of snapshots at once)
// on this machine's two cores would measure the viewers' CPU, not the
// queen, where in use each is a browser on a machine of its own.
// They inflate with klauspost's flate, about twice as fast as the
// standard library's and nearer a browser's zlib: the viewers' CPU is
// taken from the queen's on this machine.
const inflateEvery = 10

// openViewer opens one viewer's stream at url with token, asking for gzip
// as browsers do when gz is set; an answer other than 200 is an error.
func openViewer(ctx context.Context, c *http.Client, url, token string, gz bool) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if gz {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("stream: %s", resp.Status)
	}
	return resp, nil
}

// countingReader counts what is read through it.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// viewerBody returns what viewer i parses of resp, counting the bytes
// off the socket into wire; nil means it only reads them (gzip, and not
// one of the inflateEvery), which drain does.
func viewerBody(i int, resp *http.Response, wire *atomic.Int64) (io.Reader, error) {
	body := io.Reader(countingReader{resp.Body, wire})
	if resp.Header.Get("Content-Encoding") != "gzip" {
		return body, nil
	}
	if i%inflateEvery != 0 {
		return nil, nil
	}
	return gzip.NewReader(body)
}

// drain reads resp's body to its end, counting into wire.
func drain(resp *http.Response, wire *atomic.Int64) {
	_, _ = io.Copy(io.Discard, countingReader{resp.Body, wire})
}
