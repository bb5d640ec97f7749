package monitor

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
)

// A kept spawn request applies only to the process it was written for,
// never through a link, and requests of workers no longer held go.
func TestKeptSpawnRequests(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "workers")
	m := New(Config{SpecDir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer m.Close()
	started := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	spec := api.SpawnRequest{Group: "llm", Instance: "a", Binary: "/bin/true", Args: []string{"--model", "m"},
		Restart: &api.RestartPolicy{Policy: api.RestartAlways}}
	w := &worker{id: spec.ID(), spec: spec, pid: 4242, startedAt: started}
	m.saveSpec(w)
	if st, err := os.Stat(filepath.Join(dir, "llm-a.json")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("kept request: %v", err)
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("request directory: %v", err)
	}
	for _, tc := range []struct {
		name    string
		pid     int
		started time.Time
		want    bool
	}{
		{"the same process", 4242, started, true},
		{"a tick later", 4242, started.Add(10 * time.Millisecond), true},
		{"start time unknown", 4242, time.Time{}, true},
		{"another pid", 4243, started, false},
		{"a reused pid", 4242, started.Add(time.Hour), false},
	} {
		got, err := m.loadSpec("llm-a", tc.pid, tc.started)
		if err != nil || (got != nil) != tc.want || got != nil && (got.Restart == nil || got.Args[1] != "m") {
			t.Errorf("%s: %+v, %v; want found %v", tc.name, got, err, tc.want)
		}
	}
	if got, err := m.loadSpec("llm-b", 1, started); got != nil || err != nil {
		t.Fatalf("no request kept for llm-b: %+v, %v", got, err)
	}
	// A request under another worker's name, or a bad one, is refused.
	os.WriteFile(filepath.Join(dir, "llm-b.json"), []byte(`{"spec":{"group":"llm","instance":"a","binary":"/bin/true"},"pid":1}`), 0o600)
	if _, err := m.loadSpec("llm-b", 1, started); err == nil {
		t.Fatal("a request written for llm-a applied to llm-b")
	}
	os.WriteFile(filepath.Join(dir, "llm-c.json"), []byte(`{"spec":{"group":"llm","instance":"c","binary":"relative"},"pid":1}`), 0o600)
	if _, err := m.loadSpec("llm-c", 1, started); err == nil {
		t.Fatal("an invalid kept request was applied")
	}
	os.Symlink(filepath.Join(dir, "llm-a.json"), filepath.Join(dir, "llm-d.json"))
	if _, err := m.loadSpec("llm-d", 4242, started); err == nil {
		t.Fatal("a kept request read through a link")
	}
	// None of these workers is held: pruning removes every request.
	m.pruneSpecs()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("left after pruning: %v", ents)
	}
}
