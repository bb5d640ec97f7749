package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/rbee-dev/rbee/internal/errdefs"
)

// Error classes (internal/errdefs): every error a daemon answers with
// belongs to one (through errors.Is), which alone picks the HTTP status;
// a client turns the status back into the class. A package's own
// sentinels wrap a class (see Class), so callers test for the sentinel
// and handlers need no switch of their own. (containerd's errdefs, with
// its ToHTTP and ToNative, is the model.) The names here are errdefs'.
var (
	ErrInvalid      = errdefs.ErrInvalid
	ErrUnauthorized = errdefs.ErrUnauthorized
	ErrForbidden    = errdefs.ErrForbidden
	ErrNotFound     = errdefs.ErrNotFound
	ErrNotAllowed   = errdefs.ErrNotAllowed
	ErrConflict     = errdefs.ErrConflict
	ErrTooLarge     = errdefs.ErrTooLarge
	ErrUnsupported  = errdefs.ErrUnsupported
	ErrTooMany      = errdefs.ErrTooMany
	ErrUnavailable  = errdefs.ErrUnavailable
)

var classes = []struct {
	err    error
	status int
}{
	{ErrInvalid, http.StatusBadRequest},
	{ErrUnauthorized, http.StatusUnauthorized},
	{ErrForbidden, http.StatusForbidden},
	{ErrNotFound, http.StatusNotFound},
	{ErrNotAllowed, http.StatusMethodNotAllowed},
	{ErrConflict, http.StatusConflict},
	{ErrTooLarge, http.StatusRequestEntityTooLarge},
	{ErrUnsupported, http.StatusUnsupportedMediaType},
	{ErrTooMany, http.StatusTooManyRequests},
	{ErrUnavailable, http.StatusServiceUnavailable},
}

// HTTPStatus returns the status an error is answered with: its class's,
// or 500 for an error of no class (a fault of the daemon's own).
func HTTPStatus(err error) int {
	for _, c := range classes {
		if errors.Is(err, c.err) {
			return c.status
		}
	}
	return http.StatusInternalServerError
}

// ClassOf returns the class of an HTTP status, nil for one of no class.
func ClassOf(status int) error {
	for _, c := range classes {
		if c.status == status {
			return c.err
		}
	}
	return nil
}

// Class returns a sentinel error with message msg that belongs to class
// (errdefs.Class).
func Class(class error, msg string) error { return errdefs.Class(class, msg) }

// Errorf returns an error of class with a formatted message
// (errdefs.Errorf).
func Errorf(class error, format string, a ...any) error { return errdefs.Errorf(class, format, a...) }

// ErrorBody is every error response: {"error": "..."}.
type ErrorBody struct {
	Error string `json:"error"`
}

// StatusError is a daemon's non-2xx answer, as a client received it. It
// belongs to the status's class.
type StatusError struct {
	Code int
	Msg  string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Code, http.StatusText(e.Code), e.Msg)
}

// Unwrap returns the status's class, so errors.Is(err, api.ErrNotFound)
// holds for a 404.
func (e *StatusError) Unwrap() error { return ClassOf(e.Code) }
