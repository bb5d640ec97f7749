// Package httpx is the HTTP server plumbing both daemons share: JSON
// answers and errors, bounded request decoding, timeouts, TLS and a
// connection cap.
package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"

	gzip "github.com/klauspost/compress/gzip"

	segjson "github.com/segmentio/encoding/json"

	"github.com/rbee-dev/rbee/internal/api"
)

// WriteJSON writes v with status code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Error answers with err: the status of its class (api.HTTPStatus) and
// {"error": "<err>"}. Handlers return errors; this is the one place that
// turns them into statuses.
func Error(w http.ResponseWriter, err error) {
	WriteJSON(w, api.HTTPStatus(err), api.ErrorBody{Error: err.Error()})
}

// Decode reads a JSON body of at most limit bytes (after gzip decoding,
// when the request says Content-Encoding: gzip) into dst. With strict,
// unknown fields are refused by name (a typo in a spawn request must not
// pass silently). Trailing data after the value is refused. Errors are of
// class api.ErrInvalid, ErrTooLarge or ErrUnsupported.
func Decode(w http.ResponseWriter, r *http.Request, limit int64, strict bool, dst any) error {
	body, done, err := bodyOf(w, r, limit)
	if err != nil {
		return err
	}
	defer done()
	dec := json.NewDecoder(body)
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(dst); err != nil {
		return decodeError(err, limit)
	}
	if dec.More() {
		return api.Errorf(api.ErrInvalid, "malformed JSON: data after the object")
	}
	return nil
}

// DecodeFast is Decode (not strict) for the heartbeat, the queen's hot
// path: the body is read whole into a pooled buffer and decoded with
// segmentio/encoding/json, measured about twice as fast as encoding/json
// on a 100-worker heartbeat (BenchmarkHeartbeatDecode).
func DecodeFast(w http.ResponseWriter, r *http.Request, limit int64, dst any) error {
	body, done, err := bodyOf(w, r, limit)
	if err != nil {
		return err
	}
	defer done()
	bp := bufPool.Get().(*[]byte)
	defer func() {
		// A huge body (refused or not) must not stay held by the pool.
		if cap(*bp) <= maxPooled {
			bufPool.Put(bp)
		}
	}()
	var err2 error
	*bp, err2 = readAll((*bp)[:0], body, limit)
	if err2 != nil {
		if e := decodeError(err2, limit); api.HTTPStatus(e) == http.StatusRequestEntityTooLarge {
			return e
		}
		// Reading a plain body fails only on the connection; a gzip one
		// also on bad compressed data.
		return api.Errorf(api.ErrInvalid, "body: %v", err2)
	}
	b := bytes.TrimSpace(*bp)
	if len(b) == 0 {
		return api.Errorf(api.ErrInvalid, "body: empty, want a JSON object")
	}
	if err := checkDepth(b, MaxDepth); err != nil {
		return err
	}
	if f, ok := dst.(FastUnmarshaler); ok && f.UnmarshalFast(b, segjson.Unmarshal) {
		return nil
	}
	if err := segjson.Unmarshal(b, dst); err != nil {
		return api.Errorf(api.ErrInvalid, "malformed JSON: %v", err)
	}
	return nil
}

// FastUnmarshaler is a value that may decode itself faster than the
// general decoder: it reports false when it declines a body, which is then
// decoded the general way (and its errors are that decoder's). sub is the
// general decoder, for the parts it leaves to it.
type FastUnmarshaler interface {
	UnmarshalFast(b []byte, sub func([]byte, any) error) bool
}

// MaxDepth bounds how deeply a body decoded by DecodeFast may nest, as
// encoding/json bounds its own: segmentio's decoder recurses once per
// level of a value it skips, and a body of a few MiB of "[" took a
// goroutine past the runtime's stack limit, which kills the process.
const MaxDepth = 10000

// checkDepth refuses JSON nested deeper than limit. A body with at most
// limit brackets in all cannot be, which two vectorised counts settle for
// any real heartbeat (a 1,000-worker one has about 5,000); others are
// scanned, skipping strings whole.
func checkDepth(b []byte, limit int) error {
	if bytes.Count(b, []byte{'['})+bytes.Count(b, []byte{'{'}) <= limit {
		return nil
	}
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			// To the closing quote: one not escaped by an odd run of
			// backslashes.
			for {
				j := bytes.IndexByte(b[i+1:], '"')
				if j < 0 {
					return nil // unterminated: the decoder says so
				}
				i += j + 1
				k := i - 1
				for k >= 0 && b[k] == '\\' {
					k--
				}
				if (i-1-k)%2 == 0 {
					break
				}
			}
		case '[', '{':
			if depth++; depth > limit {
				return api.Errorf(api.ErrInvalid, "malformed JSON: nested deeper than %d levels", limit)
			}
		case ']', '}':
			// Closers beyond the openers (malformed anyway) buy no depth.
			depth = max(depth-1, 0)
		}
	}
	return nil
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// maxPooled is the largest buffer kept for reuse: a 1,000-worker hive's
// first heartbeat fits.
const maxPooled = 1 << 20

// readAll appends r to buf. It grows buf by doubling but never beyond
// limit+1 bytes (the reader refuses more): a body at the limit costs the
// queen about 1.5 times the limit at its peak, not 3.
func readAll(buf []byte, r io.Reader, limit int64) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			n := int64(max(2*cap(buf), 4096))
			n = min(n, max(limit+1, int64(cap(buf))+1))
			nb := make([]byte, len(buf), n)
			copy(nb, buf)
			buf = nb
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// gzipReaders are reused: each holds tens of kilobytes of inflate state.
// klauspost/compress inflates a heartbeat in about 60 % of the standard
// library's time (BenchmarkHeartbeatInflate).
var gzipReaders sync.Pool

// bodyOf returns the request body bounded to limit bytes, inflated when
// gzip, and a function to release it.
func bodyOf(w http.ResponseWriter, r *http.Request, limit int64) (io.Reader, func(), error) {
	body := io.Reader(http.MaxBytesReader(w, r.Body, limit))
	switch enc := strings.ToLower(r.Header.Get("Content-Encoding")); enc {
	case "", "identity":
		return body, func() {}, nil
	case "gzip":
		zr, _ := gzipReaders.Get().(*gzip.Reader)
		var err error
		if zr == nil {
			zr, err = gzip.NewReader(body)
		} else {
			err = zr.Reset(body)
		}
		if err != nil {
			return nil, nil, api.Errorf(api.ErrInvalid, "body: bad gzip: %v", err)
		}
		// A small gzip body can expand without bound: what it inflates to is
		// held to the same limit as a plain body.
		return &capReader{r: zr, left: limit}, func() {
			zr.Close()
			gzipReaders.Put(zr)
		}, nil
	default:
		return nil, nil, api.Errorf(api.ErrUnsupported, "Content-Encoding %q: only gzip is accepted", enc)
	}
}

// decodeError classes an error of reading or decoding a body.
func decodeError(err error, limit int64) error {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe), errors.Is(err, errInflated):
		return api.Errorf(api.ErrTooLarge, "body larger than %d bytes", limit)
	case errors.Is(err, io.EOF):
		return api.Errorf(api.ErrInvalid, "body: empty, want a JSON object")
	case errors.Is(err, gzip.ErrChecksum), errors.Is(err, gzip.ErrHeader):
		return api.Errorf(api.ErrInvalid, "body: bad gzip: %v", err)
	}
	return api.Errorf(api.ErrInvalid, "malformed JSON: %v", err)
}

var errInflated = errors.New("inflated body too large")

type capReader struct {
	r    io.Reader
	left int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, errInflated
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// HandlerFunc is a handler that returns its error: Error answers it.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

func (f HandlerFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := f(w, r); err != nil {
		Error(w, err)
	}
}
