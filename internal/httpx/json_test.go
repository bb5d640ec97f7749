package httpx

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rbee-dev/rbee/internal/api"
)

func request(body []byte, encoding string) *http.Request {
	r := httptest.NewRequest("POST", "/", bytes.NewReader(body))
	if encoding != "" {
		r.Header.Set("Content-Encoding", encoding)
	}
	return r
}

func decode(body []byte, encoding string, limit int64) (map[string]any, error) {
	var v map[string]any
	err := Decode(httptest.NewRecorder(), request(body, encoding), limit, false, &v)
	return v, err
}

// decodeFast decodes into a heartbeat, DecodeFast's one use.
func decodeFast(body []byte, encoding string, limit int64) (api.Heartbeat, error) {
	var hb api.Heartbeat
	err := DecodeFast(httptest.NewRecorder(), request(body, encoding), limit, &hb)
	return hb, err
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func TestDecode(t *testing.T) {
	big := append([]byte(`{"a":"`), bytes.Repeat([]byte("x"), 2000)...)
	big = append(big, `"}`...)
	tests := []struct {
		name, enc string
		body      []byte
		status    int
	}{
		{"ok", "", []byte(`{"a":1}`), 0},
		{"gzip", "gzip", gz([]byte(`{"a":1}`)), 0},
		{"empty", "", nil, 400},
		{"malformed", "", []byte(`{"a":`), 400},
		{"trailing", "", []byte(`{} {}`), 400},
		{"too large", "", big, 413},
		// Inflated, the body is held to the same limit as a plain one.
		{"gzip too large when inflated", "gzip", gz(big), 413},
		{"bad gzip", "gzip", []byte("nope"), 400},
		{"br", "br", []byte(`{}`), 415},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decode(tc.body, tc.enc, 1024)
			_, ferr := decodeFast(tc.body, tc.enc, 1024)
			for name, err := range map[string]error{"Decode": err, "DecodeFast": ferr} {
				switch {
				case tc.status == 0 && err != nil:
					t.Fatalf("%s: %v", name, err)
				case tc.status != 0 && (err == nil || api.HTTPStatus(err) != tc.status):
					t.Fatalf("%s: %v, want status %d", name, err, tc.status)
				}
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"hive_id":"h","workers":[]}`), false)
	f.Add(gz([]byte(`{"a":[1,2,3]}`)), true)
	f.Add([]byte(`{"a":`), false)
	f.Add([]byte(`{"hive_id":"h","seq":3,"workers":[{"id":"a-1","pid":7,"state":"ready","stats":[1.5,null,3,4,5,6,7,8,9],"gpus":[[0,1,2]]}]}`), false)
	f.Fuzz(func(t *testing.T, body []byte, gzipped bool) {
		enc := ""
		if gzipped {
			enc = "gzip"
		}
		_, err := decode(body, enc, 4096)
		if err != nil && (api.HTTPStatus(err) < 400 || api.HTTPStatus(err) > 499 || err.Error() == "") {
			t.Fatalf("error %v is not of a 4xx class", err)
		}
		// The fast decoder classes errors alike and, where encoding/json
		// accepts the same bytes, decodes the same heartbeat.
		fast, err := decodeFast(body, enc, 4096)
		if err != nil {
			if api.HTTPStatus(err) < 400 || api.HTTPStatus(err) > 499 {
				t.Fatalf("DecodeFast: error %v is not of a 4xx class", err)
			}
			return
		}
		var std api.Heartbeat
		if err := Decode(httptest.NewRecorder(), request(body, enc), 4096, false, &std); err == nil {
			a, _ := json.Marshal(fast)
			b, _ := json.Marshal(std)
			if !bytes.Equal(a, b) {
				t.Fatalf("decoders disagree:\nfast %s\nstd  %s", a, b)
			}
		}
	})
}

func TestLimitListener(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	l := LimitListener(srv.Listener, 1)
	srv.Listener = l
	srv.Start()
	defer srv.Close()
	c1, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	c1.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	buf := make([]byte, 64)
	if _, err := c1.Read(buf); err != nil {
		t.Fatalf("first connection: %v", err)
	}
	// The second connection is over the cap: closed without an answer.
	resp, err := http.Get(srv.URL)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("second connection answered %d", resp.StatusCode)
	}
	if l.Refused() == 0 {
		t.Fatal("refusal not counted")
	}
}

// A body nested a million levels deep is refused as malformed by both
// decoders, without exhausting the stack.
func TestDecodeDeepNesting(t *testing.T) {
	for _, open := range []string{"[", `{"a":`} {
		body := bytes.Repeat([]byte(open), 1<<20)
		limit := int64(len(body) + 1)
		var v map[string]any
		err := Decode(httptest.NewRecorder(), request(body, ""), limit, false, &v)
		_, ferr := decodeFast(body, "", limit)
		for name, err := range map[string]error{"Decode": err, "DecodeFast": ferr} {
			if err == nil || api.HTTPStatus(err) != 400 {
				t.Errorf("%s of %q x 2^20: %v, want a 400", name, open, err)
			}
		}
	}
}

// depthOf is the nesting depth of valid JSON by encoding/json's tokens.
func depthOf(b []byte) (int, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	depth, most := 0, 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return most, errors.Is(err, io.EOF)
		}
		switch tok {
		case json.Delim('['), json.Delim('{'):
			depth++
			most = max(most, depth)
		case json.Delim(']'), json.Delim('}'):
			depth--
		}
	}
}

func TestCheckDepth(t *testing.T) {
	for _, tc := range []struct {
		body string
		ok   bool
	}{
		{`{"a":[[1]]}`, true},
		{`{"a":[[[1]]]}`, false},
		{`{"[[[[":"{{{{"}`, true},
		{`{"a\"[[[[":"\\"}`, true},
		{`{"a\\":[[[1]]]}`, false},
		{`"unterminated [[[[`, true},
	} {
		if err := checkDepth([]byte(tc.body), 3); (err == nil) != tc.ok {
			t.Errorf("checkDepth(%s, 3) = %v, want ok %v", tc.body, err, tc.ok)
		}
	}
}

// checkDepth agrees with encoding/json on every valid document.
func FuzzCheckDepth(f *testing.F) {
	f.Add([]byte(`{"a":[[1]],"b":"]]\"[["}`), 2)
	f.Add([]byte(`[[[["\\"]]]]`), 3)
	f.Fuzz(func(t *testing.T, b []byte, max int) {
		if max < 0 || max > 100 {
			return
		}
		depth, valid := depthOf(b)
		err := checkDepth(b, max)
		if valid && (err == nil) != (depth <= max) {
			t.Fatalf("checkDepth(%q, %d) = %v; encoding/json says depth %d", b, max, err, depth)
		}
	})
}
