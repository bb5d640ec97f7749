// Package httpx is the HTTP server plumbing both daemons share: JSON
// answers and errors, bounded request decoding, timeouts, TLS and a
// connection cap.
package httpx

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
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

// WriteError writes {"error": msg} with status code.
func WriteError(w http.ResponseWriter, code int, format string, a ...any) {
	WriteJSON(w, code, api.ErrorBody{Error: fmt.Sprintf(format, a...)})
}

// DecodeError is a request body that could not be used; Status is the
// HTTP status to answer with.
type DecodeError struct {
	Status int
	Msg    string
}

func (e *DecodeError) Error() string { return e.Msg }

// Decode reads a JSON body of at most limit bytes (after gzip decoding,
// when the request says Content-Encoding: gzip) into dst. With strict,
// unknown fields are refused by name (a typo in a spawn request must not
// pass silently). Trailing data after the value is refused.
func Decode(w http.ResponseWriter, r *http.Request, limit int64, strict bool, dst any) error {
	body := io.Reader(http.MaxBytesReader(w, r.Body, limit))
	switch enc := strings.ToLower(r.Header.Get("Content-Encoding")); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			return &DecodeError{http.StatusBadRequest, "body: bad gzip: " + err.Error()}
		}
		defer zr.Close()
		// A small gzip body can expand without bound: what it inflates to is
		// held to the same limit as a plain body.
		body = &capReader{r: zr, left: limit}
	default:
		return &DecodeError{http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Encoding %q: only gzip is accepted", enc)}
	}
	dec := json.NewDecoder(body)
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(dst); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe), errors.Is(err, errInflated):
			return &DecodeError{http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", limit)}
		case errors.Is(err, io.EOF):
			return &DecodeError{http.StatusBadRequest, "body: empty, want a JSON object"}
		}
		return &DecodeError{http.StatusBadRequest, "malformed JSON: " + err.Error()}
	}
	if dec.More() {
		return &DecodeError{http.StatusBadRequest, "malformed JSON: data after the object"}
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
