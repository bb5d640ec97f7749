package harness_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rbee-dev/rbee/harness"
)

// A failed test leaves each daemon's whole log under the artifact
// directory, which CI uploads; a passing one leaves nothing.
func TestFailedTestKeepsDaemonLogs(t *testing.T) {
	for _, fail := range []bool{false, true} {
		dir := t.TempDir()
		t.Setenv("RBEE_ARTIFACTS", dir)
		s := harness.NewScope("TestSome/case")
		harness.StartQueen(s)
		if fail {
			s.Errorf("the test failed")
		}
		s.Close()
		got, err := os.ReadFile(filepath.Join(dir, "logs", "TestSome_case", "queen.log"))
		switch {
		case !fail && !os.IsNotExist(err):
			t.Fatalf("passing test kept a log: %v", err)
		case fail && err != nil:
			t.Fatalf("failed test's queen log: %v", err)
		case fail && !strings.Contains(string(got), "listening on"):
			t.Fatalf("kept log does not hold the queen's log:\n%s", got)
		}
	}
}
