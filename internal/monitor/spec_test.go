package monitor

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/ids"
	"github.com/rbee-dev/rbee/internal/launch"
	"github.com/rbee-dev/rbee/internal/privdir"
)

// FuzzSpawnSpec feeds arbitrary spawn requests through the hive's strict
// decode and Validate: nothing panics, and what passes is safe to act on
// (names that stay inside the cgroup subtree, an absolute binary, no
// loader variable, no control character in the model).
func FuzzSpawnSpec(f *testing.F) {
	f.Add([]byte(`{"group":"llm","instance":"9301","binary":"/opt/llm/worker","args":["--model","qwen2.5-0.5b","--port","9301"],"env":{"CUDA_VISIBLE_DEVICES":"0"},"cpu_limit":"150%","memory_limit":"512Mi"}`))
	f.Add([]byte(`{"group":"..","instance":"x","binary":"/bin/sh","env":{"LD_PRELOAD":"./evil.so"}}`))
	f.Add([]byte(`{"group":"a","instance":"b","binary":"rel","cpu_limit":"-1"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		var s api.SpawnRequest
		if dec.Decode(&s) != nil {
			return
		}
		parsed, err := ValidateSpec(s)
		if err != nil {
			return
		}
		lim := parsed.Limits
		if ids.ValidName(s.Group) != nil || ids.ValidName(s.Instance) != nil || strings.Contains(s.ID(), "/") {
			t.Fatalf("accepted names %q %q", s.Group, s.Instance)
		}
		if !filepath.IsAbs(s.Binary) || strings.ContainsRune(s.Binary, 0) {
			t.Fatalf("accepted binary %q", s.Binary)
		}
		for k := range s.Env {
			if launch.EnvAllowed(k) != "" {
				t.Fatalf("accepted env %q", k)
			}
		}
		if m := ModelFromArgs(s.Args); m != nil && ids.ValidText(*m, api.MaxModelLen) != nil {
			t.Fatalf("accepted model %q", *m)
		}
		if lim.CPU < 0 || lim.MemoryBytes < 0 {
			t.Fatalf("negative limits %+v", lim)
		}
	})
}

// Nothing planted in the log directory makes the hive (root) write or
// read another file: a new run refuses a link or FIFO where its log goes,
// and a rotation replaces a link planted at its target's name.
func TestLogFilesRefusePlantedFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	d, err := privdir.Open(dir, privdir.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	plant := map[string]func(string) error{
		"symlink":   func(p string) error { return os.Symlink(victim, p) },
		"hard link": func(p string) error { return os.Link(victim, p) },
		"fifo":      func(p string) error { return syscall.Mkfifo(p, 0o600) },
	}
	for kind, mk := range plant {
		for _, name := range []string{"llm-1.log", "llm-1.log.1"} {
			t.Run(kind+" "+name, func(t *testing.T) {
				p := logFiles{d, "llm-1"}
				defer func() {
					for _, f := range append(p.run(3), p.previous()) {
						os.Remove(filepath.Join(dir, f))
					}
				}()
				if err := mk(filepath.Join(dir, name)); err != nil {
					t.Fatal(err)
				}
				if name == "llm-1.log.1" {
					// A run whose log the hive made, rotated over the
					// planted name.
					w, err := p.create()
					if err != nil {
						t.Fatal(err)
					}
					w.WriteString("worker output\n")
					w.Close()
					f, err := d.Open(p.current(), os.O_RDWR)
					if err != nil {
						t.Fatal(err)
					}
					if err := p.copyTo(p.rotated(1), f, 1<<20); err != nil {
						t.Fatal(err)
					}
					f.Close()
					if b, _ := os.ReadFile(filepath.Join(dir, name)); string(b) != "worker output\n" {
						t.Errorf("%s = %q after the rotation", name, b)
					}
				}
				// The next run moves the last one aside: a planted file
				// is refused, not read into the previous log.
				err := p.startRun(3)
				if name == "llm-1.log" && err == nil {
					if f, err := p.create(); err == nil {
						f.Close()
						t.Fatal("a new run's log made over a planted " + kind)
					}
				}
				if err != nil && !errors.Is(err, privdir.ErrUnsafe) {
					t.Errorf("startRun: %v, want a refusal as unsafe", err)
				}
				if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
					t.Fatalf("the %s's target was written: %q", kind, b)
				}
				if b, err := os.ReadFile(filepath.Join(dir, p.previous())); err == nil && strings.Contains(string(b), "precious") {
					t.Fatalf("the %s's target was copied into the previous log", kind)
				}
			})
		}
	}
}
