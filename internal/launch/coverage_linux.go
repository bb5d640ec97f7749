package launch

import (
	"os"
	"runtime/coverage"
)

// shimEnviron is the shim's environment: its marker, and GOCOVERDIR when
// the hive has one (a coverage build under test), so the shim's own code
// counts. The worker's environment is the spec's, passed apart.
func shimEnviron() []string {
	env := []string{shimEnv + "=1"}
	if d := os.Getenv("GOCOVERDIR"); d != "" {
		env = append(env, "GOCOVERDIR="+d)
	}
	return env
}

// flushCoverage writes the shim's coverage counters before it execs the
// worker (an exec never runs the exit hook that would). Nothing happens in
// a build without coverage or without GOCOVERDIR.
func flushCoverage() {
	if d := os.Getenv("GOCOVERDIR"); d != "" {
		_ = coverage.WriteCountersDir(d)
	}
}
