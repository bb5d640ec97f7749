package cli

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rbee-dev/rbee/internal/auth"
)

// A daemon always has a credential unless told otherwise, says where it
// is, and warns loudly when told otherwise.
func TestDaemonTokens(t *testing.T) {
	t.Setenv(auth.EnvToken, "")
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	toks, err := DaemonTokens(log, TokenFlags{Insecure: true, StateDir: t.TempDir()})
	if err != nil || toks.Operator != "" || !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "every web page") {
		t.Fatalf("--insecure-no-auth: %+v, %v, log %q", toks, err, logs.String())
	}

	logs.Reset()
	dir := t.TempDir()
	toks, err = DaemonTokens(log, TokenFlags{StateDir: dir, ReadInStateDir: true})
	if err != nil || len(toks.Operator) < 32 || len(toks.Reader) < 32 || toks.Operator == toks.Reader {
		t.Fatalf("generated tokens: %+v, %v", toks, err)
	}
	for _, name := range []string{auth.TokenFileName, auth.ReadTokenFileName} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, mode %v; want 0600", name, err, st.Mode())
		}
	}
	if !strings.Contains(logs.String(), dir) || strings.Contains(logs.String(), toks.Operator) {
		t.Fatalf("the log must name the file, never the token: %q", logs.String())
	}
	// The next start finds the same ones and creates nothing.
	again, err := DaemonTokens(log, TokenFlags{StateDir: dir, ReadInStateDir: true})
	if err != nil || again.Operator != toks.Operator || again.Reader != toks.Reader {
		t.Fatalf("second start: %+v, %v; want %+v", again, err, toks)
	}
}
