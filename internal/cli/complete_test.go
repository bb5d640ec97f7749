package cli

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// testCommands are a CLI of two commands and a daemon, each defining its
// flags as the real ones do: when run.
func testCommands() (func(context.Context, io.Writer, []string) error, []Command) {
	def := func(ctx context.Context, out io.Writer, args []string) error {
		fs := NewFlags("d", "d", "")
		fs.String("listen", "", "", "")
		fs.String("worker-log-dir", "", "", "")
		return fs.Parse(args)
	}
	spawn := func(ctx context.Context, out io.Writer, args []string) error {
		fs := NewFlags("d spawn", "d spawn", "")
		fs.String("memory-limit", "", "", "")
		fs.Bool("json", "", false, "")
		return ParseCommand(fs, args)
	}
	return def, []Command{{Name: "spawn", Run: spawn}, {Name: "stop", Run: spawn}, {Name: "list", Run: spawn}}
}

func TestComplete(t *testing.T) {
	def, cmds := testCommands()
	for _, tc := range []struct {
		words []string
		want  string
	}{
		{[]string{""}, "completion help list spawn stop version"},
		{[]string{"s"}, "spawn stop"},
		{[]string{"spawn", "--m"}, "--memory-limit"},
		{[]string{"spawn", "--"}, "--json --memory-limit"},
		{[]string{"spawn", "--memory-limit", ""}, ""}, // its value: the shell's own completion
		{[]string{"spawn", "--json", "--me"}, "--memory-limit"},
		{[]string{"--w"}, "--worker-log-dir"},
		{[]string{"nope", "--"}, ""},
		{nil, "completion help list spawn stop version"},
	} {
		var out strings.Builder
		complete(&out, def, cmds, tc.words)
		if got := strings.Join(strings.Fields(out.String()), " "); got != tc.want {
			t.Errorf("complete(%q) = %q, want %q", tc.words, got, tc.want)
		}
	}
}

// The scripts are valid in their shell (bash is checked by bash -n; zsh
// and fish where installed) and call the hidden command.
func TestCompletionScripts(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		s, err := completionScript("rbee-hive", shell)
		if err != nil || !strings.Contains(s, "rbee-hive "+completeCmd) {
			t.Fatalf("%s: %v\n%s", shell, err, s)
		}
		path, err := exec.LookPath(shell)
		if err != nil {
			if shell == "bash" {
				t.Fatalf("bash not found: %v", err)
			}
			continue // not installed here; the text is checked above
		}
		f := filepath.Join(t.TempDir(), "c")
		os.WriteFile(f, []byte(s), 0o644)
		if out, err := exec.Command(path, "-n", f).CombinedOutput(); err != nil {
			t.Errorf("%s -n: %v\n%s", shell, err, out)
		}
	}
	if _, err := completionScript("rbee-hive", "tcsh"); err == nil {
		t.Error("tcsh accepted")
	}
}
