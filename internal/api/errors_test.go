package api

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
)

func TestErrorClasses(t *testing.T) {
	sentinel := Class(ErrConflict, "worker already running")
	wrapped := fmt.Errorf("spawn llm-1: %w", sentinel)
	if !errors.Is(wrapped, sentinel) || !errors.Is(wrapped, ErrConflict) || HTTPStatus(wrapped) != http.StatusConflict {
		t.Fatalf("a wrapped sentinel loses its class: %v %d", wrapped, HTTPStatus(wrapped))
	}
	e := Errorf(ErrInvalid, "cpu_limit %q: %w", "x", errors.ErrUnsupported)
	if !errors.Is(e, ErrInvalid) || !errors.Is(e, errors.ErrUnsupported) || e.Error() != `cpu_limit "x": unsupported operation` {
		t.Fatalf("Errorf: %v", e)
	}
	if HTTPStatus(errors.New("disk on fire")) != 500 {
		t.Fatal("an error of no class is not a 500")
	}
	for _, c := range classes {
		se := &StatusError{Code: c.status, Msg: "m"}
		if !errors.Is(se, c.err) || HTTPStatus(se) != c.status {
			t.Errorf("status %d does not map back to %v", c.status, c.err)
		}
	}
	if errors.Is(&StatusError{Code: 500}, ErrInvalid) || ClassOf(418) != nil {
		t.Fatal("a status of no class has one")
	}
}
