//go:build linux

package integration

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/rbee-dev/rbee/harness"
)

// runCLI runs bin with args and returns its stdout, stderr and exit code.
func runCLI(t *testing.T, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runCmd(t, exec.Command(bin, args...))
}

// runCmd runs cmd and returns its stdout, stderr and exit code.
func runCmd(t *testing.T, cmd *exec.Cmd) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s: %v", cmd, err)
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

// runWithHostname runs bin with args in a UTS namespace of its own whose
// hostname is host, as on a minimal VM (root only: a new namespace).
func runWithHostname(t *testing.T, host, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	harness.RequireRoot(t)
	cmd := exec.Command("/bin/sh", append([]string{"-c", `printf %s "$1" > /proc/sys/kernel/hostname && shift && exec "$@"`, "sh", host, bin}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUTS}
	return runCmd(t, cmd)
}

// The hive's default id is its hostname made valid; a host without one
// ("(none)", as a minimal VM has) is told to pass --hive-id, before the
// hive touches anything (issue 21: it refused "character '(' not
// allowed").
func TestHiveIDFromTheHostname(t *testing.T) {
	hive := harness.Build(t, "./cmd/rbee-hive")
	out, errOut, code := runWithHostname(t, "gpu_node#7", hive, "--help")
	if code != 0 || !strings.Contains(out, `(default "gpu_node-7")`) {
		t.Errorf("hostname gpu_node#7: status %d, --help's --hive-id default not gpu_node-7:\n%s%s", code, out, errOut)
	}
	state := t.TempDir()
	_, errOut, code = runWithHostname(t, "(none)", hive, "--listen", "127.0.0.1:0", "--queen", "", "--state-dir", state, "--gpu", "none")
	want := `rbee-hive: usage error: no hive id: the hostname "(none)" names no host in particular; name this hive with --hive-id (or RBEE_HIVE_ID), as the queen will list it` + "\n"
	if code != 2 || errOut != want {
		t.Errorf("hostname (none): status %d, stderr %q; want 2 and %q", code, errOut, want)
	}
	if ents, _ := os.ReadDir(state); len(ents) > 0 {
		t.Errorf("the refused hive wrote to its state directory: %v", ents)
	}
	// --hive-id is all it takes: the next check is the next flag's.
	_, errOut, code = runWithHostname(t, "(none)", hive, "--hive-id", "vm-1", "--state-dir", state, "--worker-pids-max", "-1")
	if code != 2 || !strings.Contains(errOut, "--worker-pids-max -1") {
		t.Errorf("hostname (none) with --hive-id: status %d, %q; want the usage error of --worker-pids-max", code, errOut)
	}
}

// The real binaries complete their commands and each command's flags in
// bash, through the script they print.
func TestCLICompletion(t *testing.T) {
	hive := harness.Build(t, "./cmd/rbee-hive")
	dir := t.TempDir()
	os.Symlink(hive, dir+"/rbee-hive")
	script, errOut, code := runCLI(t, hive, "completion", "bash")
	if code != 0 || errOut != "" {
		t.Fatalf("completion bash: %d %s", code, errOut)
	}
	complete := func(words ...string) string {
		prog := script + "\nCOMP_WORDS=(" + strings.Join(append([]string{"rbee-hive"}, quoteAll(words)...), " ") + ")\n" +
			"COMP_CWORD=" + fmt.Sprint(len(words)) + "\n_rbee_hive\necho \"${COMPREPLY[*]}\"\n"
		cmd := exec.Command("bash", "-c", prog)
		cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	for words, want := range map[string]string{"lo": "logs", "spawn --memory-l": "--memory-limit", "logs --ta": "--tail", "--worker-log-d": "--worker-log-dir"} {
		if got := complete(strings.Fields(words)...); got != want {
			t.Errorf("rbee-hive %s<TAB> = %q, want %q", words, got, want)
		}
	}
}

// quoteAll quotes words for a bash array.
func quoteAll(words []string) []string {
	out := make([]string, len(words))
	for i, w := range words {
		out[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	return out
}
