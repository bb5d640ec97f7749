package httpx_test

import (
	"testing"

	"github.com/rbee-dev/rbee/harness"
)

// TestMain fails the package's tests on leaked goroutines (the listener's
// timers and connections included).
func TestMain(m *testing.M) { harness.Main(m) }
