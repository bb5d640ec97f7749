//go:build linux

package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rbee-dev/rbee/harness"
)

// The systemd units in deploy/systemd pass systemd-analyze verify, with
// the binaries where the units expect them, and every flag they pass is
// one the daemon has.
func TestSystemdUnits(t *testing.T) {
	bin, err := exec.LookPath("systemd-analyze")
	if err != nil {
		harness.Cannot(t, "no systemd-analyze on PATH (Debian's systemd package): it checks deploy/systemd")
	}
	root := harness.ModuleRoot(t)
	for unit, pkg := range map[string]string{"queen-rbee.service": "cmd/queen-rbee", "rbee-hive.service": "cmd/rbee-hive"} {
		t.Run(unit, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(root, "deploy", "systemd", unit))
			if err != nil {
				t.Fatal(err)
			}
			daemon := harness.Build(t, pkg)
			text := strings.ReplaceAll(string(b), "/usr/local/bin/"+filepath.Base(pkg), daemon)
			path := filepath.Join(t.TempDir(), unit)
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(bin, "verify", "--man=no", "--recursive-errors=no", path).CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != "" {
				t.Fatalf("systemd-analyze verify %s: %v\n%s", unit, err, out)
			}
			// Every --flag of ExecStart is the daemon's.
			help, _ := exec.Command(daemon, "--help").CombinedOutput()
			var cmdline []string
			in := false
			for _, line := range strings.Split(text, "\n") {
				in = in || strings.HasPrefix(line, "ExecStart=")
				if in {
					cmdline = append(cmdline, strings.Fields(line)...)
					in = strings.HasSuffix(line, "\\")
				}
			}
			if len(cmdline) < 3 {
				t.Fatalf("no ExecStart in %s", unit)
			}
			for _, f := range cmdline {
				if strings.HasPrefix(f, "--") {
					if name, _, _ := strings.Cut(f[2:], "="); !strings.Contains(string(help), "  -"+name+" ") && !strings.Contains(string(help), "  -"+name+"\n") {
						t.Errorf("%s passes %s, which %s does not know", unit, f, filepath.Base(pkg))
					}
				}
			}
		})
	}
}
