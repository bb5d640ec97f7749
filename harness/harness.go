// Package harness is rbee's reusable test harness. It
//
//   - builds the project's binaries once per test process (Build,
//     TestWorker), with -race and -cover when the test binary has them;
//   - starts daemons on free ports and stops them cleanly (StartQueen,
//     StartHive, StartDaemon; Stop, Kill, Restart), capturing their logs
//     and failing the test on a data race or panic in them;
//   - fakes the world around them: nvidia-smi (FakeNvidiaSMI), a queen
//     (StartFakeQueen), a stalled client (StalledReader), hosts on a
//     network (NewNet);
//   - reads SSE streams and waits for events (Subscribe, WaitFor);
//   - gives each test its own cgroup subtree, removed with every process
//     in it (CgroupParent), and checks that say exactly why a test cannot
//     run (RequireRoot, RequireCgroups, RequireIP, RequireNft,
//     RequireChromium).
//
// Everything takes a TB: a *testing.T, or a Scope outside tests.
// In CI (CI=true) a missing capability fails the test instead of skipping
// it, so a misconfigured CI machine cannot turn the suite green by skipping.
package harness

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// InCI reports whether the tests run in CI, where only GPU tests may skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// Main runs the tests of a package that uses the harness, fails the run if
// goroutines leaked, and removes the binaries it built. Call it from
// TestMain:
//
//	func TestMain(m *testing.M) { harness.Main(m) }
//
// A test binary started by RunHelper runs the helper instead of the tests.
func Main(m *testing.M) {
	if code, ok := runHelper(); ok {
		os.Exit(code)
	}
	code := m.Run()
	cleanupBuilds()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: goroutines leaked after the tests:\n%v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// Cannot skips t with the reason, or fails it in CI: for a test that needs
// something the machine lacks.
func Cannot(t TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("cannot run in CI: "+format, args...)
	}
	t.Skipf(format, args...)
}
