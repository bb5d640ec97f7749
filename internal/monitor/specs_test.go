package monitor

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/cgroups"
	"github.com/rbee-dev/rbee/internal/procfs"
)

// someCgroups stands for a host with cgroups: kept requests are only for
// workers a later hive can adopt. The spec functions call none of it.
type someCgroups struct{ cgroups.Manager }

func specMonitor(t *testing.T, dir string) *Monitor {
	m := New(Config{SpecDir: dir, Platform: Platform{Cgroups: someCgroups{}, Proc: procfs.Default},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(m.Close)
	return m
}

// A kept spawn request applies only to the process it was written for,
// only from a private directory, never through a link; and requests of
// workers without a cgroup go.
func TestKeptSpawnRequests(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "workers")
	m := specMonitor(t, dir)
	spec := api.SpawnRequest{Group: "llm", Instance: "a", Binary: "/bin/true", Args: []string{"--model", "m", "--url", "http://x/?a=1&b=<2>"},
		Restart: &api.RestartPolicy{Policy: api.RestartAlways}}
	self := os.Getpid() // a real process, with a real start time
	_, ticks := m.processStart(self)
	m.saveSpec(&worker{id: spec.ID(), spec: spec, pid: self, startTicks: ticks})
	file := filepath.Join(dir, "llm-a.json")
	if st, err := os.Stat(file); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("kept request: %v", err)
	}
	if b, _ := os.ReadFile(file); !strings.Contains(string(b), "a=1&b=<2>") {
		t.Fatalf("kept request escaped: %s", b)
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("request directory: %v", err)
	}
	got, _, err := m.loadSpec("llm-a", self, ticks)
	if err != nil || got == nil || got.Restart == nil || got.Args[3] != spec.Args[3] {
		t.Fatalf("the same process: %+v, %v", got, err)
	}
	if got, _, err := m.loadSpec("llm-a", self+1, ticks); got != nil || err != nil {
		t.Fatalf("another pid: %+v, %v", got, err)
	}
	if got, _, err := m.loadSpec("llm-b", self, ticks); got != nil || err != nil {
		t.Fatalf("no request kept for llm-b: %+v, %v", got, err)
	}
	// The same pid, started at another time: a reused pid.
	os.WriteFile(file, []byte(`{"spec":{"group":"llm","instance":"a","binary":"/bin/true"},"pid":`+strconv.Itoa(self)+`,"start_ticks":1}`), 0o600)
	if got, _, err := m.loadSpec("llm-a", self, ticks); got != nil || err == nil {
		t.Fatalf("a reused pid got the request: %+v, %v", got, err)
	}
	for name, body := range map[string]string{
		"llm-b.json": `{"spec":{"group":"llm","instance":"a","binary":"/bin/true"},"pid":1}`, // another worker's
		"llm-c.json": `{"spec":{"group":"llm","instance":"c","binary":"relative"},"pid":1}`,  // invalid
	} {
		os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600)
		if got, _, err := m.loadSpec(strings.TrimSuffix(name, ".json"), 1, 0); got != nil || err == nil {
			t.Errorf("%s applied: %+v, %v", name, got, err)
		}
	}
	os.Symlink(file, filepath.Join(dir, "llm-d.json"))
	if _, _, err := m.loadSpec("llm-d", self, ticks); err == nil {
		t.Fatal("a kept request read through a link")
	}
	// Written by another run of the same id: an old run's end leaves it.
	m.saveSpec(&worker{id: spec.ID(), spec: spec, pid: self, startTicks: ticks})
	m.dropSpec("llm-a", self+1)
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("an earlier run removed the request of the current one: %v", err)
	}
	// Only llm-a still has a cgroup: the rest go.
	m.pruneSpecs(map[string]bool{"llm-a": true})
	if ents, _ := os.ReadDir(dir); len(ents) != 1 || ents[0].Name() != "llm-a.json" {
		t.Fatalf("after pruning: %v", ents)
	}
	m.dropSpec("llm-a", self)
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("the run's end left its request: %v", err)
	}
}

// A directory others may write is not trusted: whoever writes a request
// there chooses what the hive runs when it restarts that worker.
func TestKeptSpawnRequestsNeedAPrivateDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "workers")
	m := specMonitor(t, dir)
	_, ticks := m.processStart(os.Getpid())
	spec := api.SpawnRequest{Group: "llm", Instance: "a", Binary: "/bin/true"}
	m.saveSpec(&worker{id: spec.ID(), spec: spec, pid: os.Getpid(), startTicks: ticks})
	os.Chmod(dir, 0o777)
	if got, _, err := m.loadSpec("llm-a", os.Getpid(), ticks); got != nil || err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Fatalf("from a world-writable directory: %+v, %v", got, err)
	}
	os.Chmod(dir, 0o700)
	os.Chmod(filepath.Join(dir, "llm-a.json"), 0o666)
	if got, _, err := m.loadSpec("llm-a", os.Getpid(), ticks); got != nil || err == nil {
		t.Fatalf("a world-writable request: %+v, %v", got, err)
	}
	if os.Geteuid() == 0 {
		os.Chmod(filepath.Join(dir, "llm-a.json"), 0o600)
		os.Chown(filepath.Join(dir, "llm-a.json"), 65534, 65534)
		if got, _, err := m.loadSpec("llm-a", os.Getpid(), ticks); got != nil || err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
			t.Fatalf("a request owned by another user: %+v, %v", got, err)
		}
	}
	// Without cgroups nothing can be adopted: nothing is kept.
	plain := New(Config{SpecDir: filepath.Join(t.TempDir(), "plain"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer plain.Close()
	plain.saveSpec(&worker{id: spec.ID(), spec: spec, pid: os.Getpid(), startTicks: ticks})
	if _, err := os.Stat(plain.cfg.SpecDir); !os.IsNotExist(err) {
		t.Fatalf("a hive without cgroups kept a request: %v", err)
	}
}
