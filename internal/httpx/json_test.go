package httpx

import (
	"bytes"
	"compress/gzip"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rbee-dev/rbee/internal/api"
)

func decode(body []byte, encoding string, limit int64) (map[string]any, error) {
	r := httptest.NewRequest("POST", "/", bytes.NewReader(body))
	if encoding != "" {
		r.Header.Set("Content-Encoding", encoding)
	}
	var v map[string]any
	err := Decode(httptest.NewRecorder(), r, limit, false, &v)
	return v, err
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
			switch {
			case tc.status == 0 && err != nil:
				t.Fatal(err)
			case tc.status != 0 && (err == nil || api.HTTPStatus(err) != tc.status):
				t.Fatalf("%v, want status %d", err, tc.status)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"hive_id":"h","workers":[]}`), false)
	f.Add(gz([]byte(`{"a":[1,2,3]}`)), true)
	f.Add([]byte(`{"a":`), false)
	f.Fuzz(func(t *testing.T, body []byte, gzipped bool) {
		enc := ""
		if gzipped {
			enc = "gzip"
		}
		_, err := decode(body, enc, 4096)
		if err != nil && (api.HTTPStatus(err) < 400 || api.HTTPStatus(err) > 499 || err.Error() == "") {
			t.Fatalf("error %v is not of a 4xx class", err)
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
