package monitor

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/ids"
	"github.com/rbee-dev/rbee/internal/launch"
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
		lim, err := ValidateSpec(s)
		if err != nil {
			return
		}
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

// A worker's log is never opened through a link: whoever can write the log
// directory cannot make the hive (root) write another file.
func TestOpenLogRefusesLinks(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "llm-1.log")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	if f, err := openLog(link); err == nil {
		f.Close()
		t.Fatal("opened a worker log through a symbolic link")
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "llm-2.log"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A FIFO neither hangs an open (for writing: no reader; for reading,
	// the logs API: no writer) nor is taken as a log.
	fifo := filepath.Join(dir, "llm-2.log")
	if f, err := openLog(fifo); err == nil {
		f.Close()
		t.Fatal("a fifo taken as a worker log")
	}
	if f, err := openLogFile(fifo, os.O_RDONLY, 0); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		if f != nil {
			f.Close()
		}
		t.Fatalf("a fifo read as a worker log: %v", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
		t.Fatalf("the link's target was written: %q", b)
	}
	f, err := openLog(filepath.Join(dir, "llm-3.log"))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
}
