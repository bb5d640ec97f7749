package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// --help goes to stdout, listing the tool's own flags only (not the test
// flags of the harness it links); a bad flag or a stray argument is
// named on stderr, exit 2.
func TestHelpAndBadFlag(t *testing.T) {
	bin := harness.Build(t, "harness/loadgen/rbee-loadgen")
	out, err := exec.Command(bin, "--help").Output()
	if err != nil {
		t.Fatalf("--help: %v", err)
	}
	if !strings.Contains(string(out), "-hives int") || strings.Contains(string(out), "-update") || strings.Contains(string(out), "-rod") {
		t.Fatalf("--help printed:\n%s", out)
	}
	for _, args := range [][]string{{"--hivez", "3"}, {"extra", "--hives", "3"}} {
		cmd := exec.Command(bin, args...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err = cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(stderr.String(), strings.TrimLeft(args[0], "-")) {
			t.Fatalf("%q: %v, stderr %q; want exit 2 naming it", args, err, stderr.String())
		}
	}
}
