// Package httpx is the HTTP server plumbing both daemons share: JSON
// answers and errors, bounded request decoding, timeouts, TLS and a
// connection cap.
package httpx

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/rbee-dev/rbee/internal/api"
)

// WriteJSON writes v with status code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
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
	body := io.Reader(http.MaxBytesReader(w, r.Body, limit))
	switch enc := strings.ToLower(r.Header.Get("Content-Encoding")); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			return api.Errorf(api.ErrInvalid, "body: bad gzip: %v", err)
		}
		defer zr.Close()
		// A small gzip body can expand without bound: what it inflates to is
		// held to the same limit as a plain body.
		body = &capReader{r: zr, left: limit}
	default:
		return api.Errorf(api.ErrUnsupported, "Content-Encoding %q: only gzip is accepted", enc)
	}
	dec := json.NewDecoder(body)
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(dst); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe), errors.Is(err, errInflated):
			return api.Errorf(api.ErrTooLarge, "body larger than %d bytes", limit)
		case errors.Is(err, io.EOF):
			return api.Errorf(api.ErrInvalid, "body: empty, want a JSON object")
		}
		return api.Errorf(api.ErrInvalid, "malformed JSON: %v", err)
	}
	if dec.More() {
		return api.Errorf(api.ErrInvalid, "malformed JSON: data after the object")
	}
	return nil
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
