//go:build linux

package integration

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/rbee-dev/rbee/harness"
)

// runCLI runs bin with args and returns its stdout, stderr and exit code.
func runCLI(t *testing.T, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s %q: %v", bin, args, err)
	}
	return out.String(), errb.String(), code
}

// Help goes to stdout with status 0, so `queen-rbee --help | less` shows
// it; a typo gets one line on stderr with what was meant, status 2, and
// no pages of usage (issue 21).
func TestCLIHelpAndTypos(t *testing.T) {
	hive, queen := harness.Build(t, "./cmd/rbee-hive"), harness.Build(t, "./cmd/queen-rbee")
	for _, tc := range []struct {
		bin  string
		args []string
		want string // in stdout
	}{
		{queen, []string{"--help"}, "queen-rbee watch"}, // the daemon's flags, then the commands
		{hive, []string{"--help"}, "-worker-log-dir"},
		{hive, []string{"spawn", "--help"}, "Usage: rbee-hive spawn"},
		{queen, []string{"watch", "-h"}, "Usage: queen-rbee watch"},
		{hive, []string{"help"}, "rbee-hive spawn"},
	} {
		out, errOut, code := runCLI(t, tc.bin, tc.args...)
		if code != 0 || !strings.Contains(out, tc.want) || errOut != "" {
			t.Errorf("%q: status %d, stdout %d bytes (want %q in it), stderr %q", tc.args, code, len(out), tc.want, errOut)
		}
	}
	for _, tc := range []struct {
		bin  string
		args []string
		want string // stderr, whole
	}{
		{hive, []string{"spawn", "--memory-limt", "1Gi", "--", "/bin/true"}, "rbee-hive: usage error: unknown flag --memory-limt: did you mean --memory-limit?\n"},
		{hive, []string{"lsit"}, "rbee-hive: unknown command \"lsit\": did you mean \"list\"?\n"},
		{queen, []string{"wacth"}, "queen-rbee: unknown command \"wacth\": did you mean \"watch\"?\n"},
		{queen, []string{"--listn", "x"}, "queen-rbee: usage error: unknown flag --listn: did you mean --listen?\n"},
		{hive, []string{"frobnicate"}, "rbee-hive: unknown command \"frobnicate\" (rbee-hive help lists the commands)\n"},
	} {
		out, errOut, code := runCLI(t, tc.bin, tc.args...)
		if code != 2 || errOut != tc.want || out != "" {
			t.Errorf("%q: status %d, stderr %q, stdout %q; want status 2 and stderr %q", tc.args, code, errOut, out, tc.want)
		}
	}
}
