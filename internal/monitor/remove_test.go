package monitor

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
)

// An exit is news before its cgroup is removed, so `rbee-hive rm` right
// after the exit shows must wait for the cleanup rather than answer
// "retry" (a v2 VM under TCG took longer than the user's next request).
func TestRemoveWaitsForCleanup(t *testing.T) {
	m := New(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	plant := func(id string, state api.State, cleaned bool, pending bool) *worker {
		w := &worker{id: id, state: state, done: make(chan struct{}), runs: &runs{pending: pending}}
		if cleaned {
			close(w.done)
		}
		m.mu.Lock()
		m.workers[id] = w
		m.mu.Unlock()
		return w
	}
	slow := plant("llm-slow", api.StateExited, false, false)
	go func() {
		time.Sleep(50 * time.Millisecond)
		close(slow.done)
	}()
	if err := m.Remove(context.Background(), "llm-slow"); err != nil {
		t.Fatalf("remove while the cleanup ends: %v", err)
	}
	if _, ok := m.workers["llm-slow"]; ok {
		t.Fatal("the record is still held")
	}

	plant("llm-stuck", api.StateExited, false, false)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if err := m.Remove(ctx, "llm-stuck"); !errors.Is(err, ErrRunning) {
		t.Errorf("remove of a cleanup that outlives the request: %v; want ErrRunning", err)
	}

	for _, tc := range []struct {
		id, want string
		state    api.State
		pending  bool
	}{
		{"llm-up", "stop it first", api.StateReady, false},
		{"llm-again", "restart pending", api.StateExited, true},
	} {
		plant(tc.id, tc.state, true, tc.pending)
		err := m.Remove(context.Background(), tc.id)
		if !errors.Is(err, ErrRunning) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("remove %s: %v; want ErrRunning saying %q", tc.id, err, tc.want)
		}
	}
	if err := m.Remove(context.Background(), "llm-none"); !errors.Is(err, ErrNotFound) {
		t.Errorf("remove of an unknown id: %v", err)
	}
}
