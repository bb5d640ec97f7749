// Package errdefs holds the error classes every rbee error belongs to
// (through errors.Is), and the two ways to make an error of a class. It
// imports nothing but errors and fmt, so that a package deep in the hive
// (cgroups, limits) can name a class without linking the HTTP stack;
// internal/api maps each class to its HTTP status and back. containerd's
// errdefs is the model.
package errdefs

import (
	"errors"
	"fmt"
)

// The classes.
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
