package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rbee-dev/rbee/harness"
)

func TestMain(m *testing.M) { harness.Main(m) }

// A small fleet against a real queen: every heartbeat applied, the
// queen's CPU and memory read from its pid.
func TestLoadgenAgainstQueen(t *testing.T) {
	queen := harness.StartQueen(t)
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte(harness.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := run(queen.URL, tok, 5, 10, 2, 2, queen.Pid(), "lg"); err != nil {
		t.Fatal(err)
	}
	var ws []struct{ ID string }
	harness.Get(t, queen.URL+"/v1/workers", &ws)
	if len(ws) != 50 {
		t.Fatalf("the queen holds %d workers, want 5 hives × 10", len(ws))
	}
	if err := run(queen.URL, filepath.Join(t.TempDir(), "none"), 1, 1, 0, 1, 0, "lg"); err == nil {
		t.Fatal("a missing token file was taken")
	}
}
