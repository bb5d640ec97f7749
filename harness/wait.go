package harness

import (
	"time"
)

// WaitFor polls cond every 20 ms until it returns nil, failing t with the
// last error if that takes longer than timeout.
func WaitFor(t TB, timeout time.Duration, cond func() error) {
	t.Helper()
	if err := Poll(timeout, cond); err != nil {
		t.Fatalf("timed out after %v: %v", timeout, err)
	}
}

// Poll polls cond every 20 ms until it returns nil or timeout passes, and
// returns the last error.
func Poll(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}
