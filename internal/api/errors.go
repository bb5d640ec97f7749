package api

import (
	"errors"
	"fmt"
	"net/http"
)

// Error classes. Every error a daemon answers with belongs to one (through
// errors.Is), which alone picks the HTTP status; a client turns the status
// back into the class. A package's own sentinels wrap a class (see Class),
// so callers test for the sentinel and handlers need no switch of their
// own. (containerd's errdefs, with its ToHTTP and ToNative, is the model.)
var (
	ErrInvalid      = errors.New("invalid request")        // 400
	ErrUnauthorized = errors.New("unauthorized")           // 401
	ErrForbidden    = errors.New("forbidden")              // 403
	ErrNotFound     = errors.New("not found")              // 404
	ErrNotAllowed   = errors.New("method not allowed")     // 405
	ErrConflict     = errors.New("conflict")               // 409
	ErrTooLarge     = errors.New("too large")              // 413
	ErrUnsupported  = errors.New("unsupported media type") // 415
	ErrTooMany      = errors.New("too many requests")      // 429
	ErrUnavailable  = errors.New("unavailable")            // 503
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

// Class returns a sentinel error with message msg that belongs to class:
// errors.Is matches both the sentinel and the class.
func Class(class error, msg string) error { return &classed{msg: msg, class: class} }

type classed struct {
	msg   string
	class error
}

func (e *classed) Error() string { return e.msg }
func (e *classed) Unwrap() error { return e.class }

// Errorf returns an error of class with a formatted message; %w in format
// wraps as fmt.Errorf does.
func Errorf(class error, format string, a ...any) error {
	return &classedErr{err: fmt.Errorf(format, a...), class: class}
}

type classedErr struct {
	err   error
	class error
}

func (e *classedErr) Error() string   { return e.err.Error() }
func (e *classedErr) Unwrap() []error { return []error{e.err, e.class} }

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
