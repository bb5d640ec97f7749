//go:build linux

package integration

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/internal/cgroups"
	"github.com/rbee-dev/rbee/internal/monitor"
)

func TestMain(m *testing.M) { harness.Main(m) }

// syncBuffer is a bytes.Buffer safe to write from a process's output
// copier while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A hive started after a worker finds it in the cgroup tree, reports it,
// and on SIGTERM exits 0 leaving the worker running.
func TestHiveAdoptsAndSurvivesRestart(t *testing.T) {
	parent := harness.CgroupParent(t)
	m := monitor.New(monitor.Config{Platform: monitor.DetectPlatform(cgroups.Config{Parent: parent})})
	defer m.Close()
	w, err := m.Spawn(context.Background(), monitor.Spec{Group: "llm", Instance: "a", Binary: harness.TestWorker(t), Args: []string{"--model", "qwen", "--cpu", "20"}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.StopAll(context.Background())

	var out syncBuffer
	hive := exec.Command(harness.Build(t, "cmd/rbee-hive"), "--cgroup-parent", parent, "--interval", "200ms")
	hive.Stdout, hive.Stderr = &out, &out
	if err := hive.Start(); err != nil {
		t.Fatal(err)
	}
	defer hive.Process.Kill()
	harness.WaitFor(t, 10*time.Second, func() error {
		if s := out.String(); !strings.Contains(s, "id=llm-a state=running pid="+fmt.Sprint(w.PID)) {
			return fmt.Errorf("hive has not reported llm-a as running yet:\n%s", s)
		}
		return nil
	})
	if err := hive.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := hive.Wait(); err != nil {
		t.Fatalf("hive exit on SIGTERM: %v\n%s", err, out.String())
	}
	if err := syscall.Kill(w.PID, 0); err != nil {
		t.Fatalf("worker died with the hive: %v", err)
	}
}
