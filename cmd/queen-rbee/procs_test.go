package main

import (
	"io"
	"log/slog"
	"runtime"
	"testing"
)

// The queen holds itself to maxProcs Ps on a host with more CPUs, unless
// GOMAXPROCS says otherwise.
func TestCapProcs(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	t.Setenv("GOMAXPROCS", "")
	runtime.GOMAXPROCS(16)
	capProcs(log)
	if n := runtime.GOMAXPROCS(0); n != maxProcs {
		t.Errorf("GOMAXPROCS %d after the cap, want %d", n, maxProcs)
	}
	runtime.GOMAXPROCS(2)
	capProcs(log)
	if n := runtime.GOMAXPROCS(0); n != 2 {
		t.Errorf("GOMAXPROCS %d, want the host's 2 left alone", n)
	}
	t.Setenv("GOMAXPROCS", "16")
	runtime.GOMAXPROCS(16)
	capProcs(log)
	if n := runtime.GOMAXPROCS(0); n != 16 {
		t.Errorf("GOMAXPROCS %d, want the operator's 16", n)
	}
}
