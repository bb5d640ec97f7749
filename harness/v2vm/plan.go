package v2vm

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Suite is one test binary the busybox VM runs in steps a and b, built
// with CGO_ENABLED=0 go test -c and run from its package's directory
// (beside its testdata) in a copy of the module's layout.
type Suite struct {
	// Pkg is the package's directory in the module.
	Pkg string
	// Args are test flags beyond -test.count, -test.timeout, -test.run
	// and the exclusions.
	Args []string
	// Timeout is each run's -test.timeout: several times what a test
	// takes on the host, as TCG runs code ~3.5 times slower.
	Timeout time.Duration
	// Whole runs the binary once for the whole package. Otherwise each
	// top-level test (and example, and fuzz target's seeds) runs in a run
	// of its own, as -test.list names them, so that a panic or a timeout
	// in one test cannot hide the results of the others.
	Whole bool
}

// Suites are the test binaries of steps a and b: the packages whose tests
// touch cgroups, the end-to-end suite, and the benchmarks that measure a
// hive on real cgroups (collection passes, spawn to stream), once each as
// bench:smoke runs them. The queen's benchmarks touch no cgroup and stay
// on the host.
var Suites = []Suite{
	{Pkg: "internal/cgroups", Timeout: 5 * time.Minute},
	{Pkg: "internal/launch", Timeout: 5 * time.Minute},
	{Pkg: "internal/monitor", Timeout: 10 * time.Minute},
	{Pkg: "internal/hive", Timeout: 5 * time.Minute},
	{Pkg: "harness/integration", Timeout: 10 * time.Minute},
	{Pkg: "benchmarks", Timeout: 30 * time.Minute, Whole: true,
		Args: []string{"-test.run", "^$", "-test.bench", "Collection|Stress|HiveOverhead|SSELatency", "-test.benchtime", "1x", "-test.short"}},
}

// Helpers are the programs the harness starts, built with go build into
// the VM's RBEE_HARNESS_BIN_DIR (harness/build.go takes them from there
// by their base name instead of compiling).
var Helpers = []string{"cmd/rbee-hive", "cmd/queen-rbee", "harness/testworker", "harness/fakesmi", "harness/cgexec"}

// SourceFiles are the parts of the source tree copied into the VM for the
// tests that read them (harness.ModuleRoot finds go.mod; the docs tests
// read docs/).
var SourceFiles = []string{"go.mod", "docs"}

// Exclusion is a test the VM cannot run, and why.
type Exclusion struct {
	Pkg, Test, Why string
}

// Excluded lists every test the VM leaves out. The VM runs the suites with
// CI=true, so that a test that cannot run there fails instead of skipping
// (harness.Cannot): what is left out is left out here, by name, with the
// reason, and nothing else can quietly skip. Each is a matter of a tool
// the busybox VM does not have, or of timing that an emulated CPU cannot
// keep, never of cgroups: those stay in.
var Excluded = []Exclusion{
	{"harness/integration", "TestDashboardInBrowser", "drives Debian's chromium, not in the VM"},
	{"harness/integration", "TestDashboardFleetFrameTime", "drives Debian's chromium, not in the VM"},
	{"harness/integration", "TestPrometheusScrapesQueenAndHive", "runs prometheus and promtool, not in the VM"},
	{"harness/integration", "TestStreamEventSourceClientAcrossQueenRestart", "runs node and npm's eventsource client, not in the VM"},
	{"harness/integration", "TestMultiHost", "network namespaces through iproute2's ip netns and nft; busybox ip has neither"},
	{"harness/integration", "TestLossyLink", "network namespaces through iproute2's ip netns and nft; busybox ip has neither"},
	{"harness/integration", "TestSecurityLoaderVariables", "builds an LD_PRELOAD library with gcc, not in the VM"},
	{"harness/integration", "TestSystemdUnits", "runs systemd-analyze verify; the systemd steps boot the unit instead"},
	{"harness/integration", "TestContributingLayoutOrder", "runs go list over the source tree; nothing of the kernel's"},
	{"harness/integration", "TestCLICompletion", "runs the completion script in bash; the busybox VM has ash"},
	{"harness/integration", "TestSecuritySlowlorisHive", slowlorisWhy},
	{"harness/integration", "TestSecuritySlowlorisQueen", slowlorisWhy},
	{"harness/integration", "TestGPUAcceptance", "needs an NVIDIA GPU (it skips without one, even in CI)"},
	{"internal/launch", "TestShimIgnoresWorkerLoaderEnv", "builds an LD_PRELOAD library with gcc, not in the VM"},
}

// slowlorisWhy: the connection limiter gives a newcomer
// httpx.EvictMinAge (20 ms) to send its request while a flood churns;
// under TCG a Go client beside 300 flooding goroutines takes longer than
// that to write, and the operator's GET was evicted three tries running
// (CI, 2026-12-05). The tests are of the listener, nothing of the
// kernel's cgroups; they run in the host lane.
const slowlorisWhy = "the listener's 20 ms grace for a newcomer is measured in real time; an emulated CPU misses it (host lane runs it)"

// TestRun is one run of a test binary in the VM.
type TestRun struct {
	Pkg string
	// Test is the one test the run runs; "" for a Whole suite.
	Test string
	Args []string
}

// Plan returns the runs of the suites in order. list returns a suite's
// tests as its binary's -test.list prints them; the excluded ones are
// left out.
func Plan(suites []Suite, list func(Suite) ([]string, error)) ([]TestRun, error) {
	var runs []TestRun
	for _, s := range suites {
		base := []string{"-test.count=1", fmt.Sprintf("-test.timeout=%s", s.Timeout)}
		if s.Whole {
			args := base
			if skip := SkipPattern(s.Pkg); skip != "" {
				args = append(args, "-test.skip", skip)
			}
			runs = append(runs, TestRun{Pkg: s.Pkg, Args: append(args, s.Args...)})
			continue
		}
		tests, err := list(s)
		if err != nil {
			return nil, fmt.Errorf("list the tests of %s: %w", s.Pkg, err)
		}
		n := 0
		for _, t := range tests {
			if !strings.HasPrefix(t, "Test") && !strings.HasPrefix(t, "Example") && !strings.HasPrefix(t, "Fuzz") {
				continue // benchmarks, and anything -test.list adds
			}
			if slices.ContainsFunc(Excluded, func(e Exclusion) bool { return e.Pkg == s.Pkg && e.Test == t }) {
				continue
			}
			args := append(slices.Clone(base), "-test.run", "^"+regexp.QuoteMeta(t)+"$")
			runs = append(runs, TestRun{Pkg: s.Pkg, Test: t, Args: append(args, s.Args...)})
			n++
		}
		if n == 0 {
			return nil, fmt.Errorf("%s: no tests to run (did -test.list print nothing?)", s.Pkg)
		}
	}
	return runs, nil
}

// SkipPattern returns the -test.skip pattern of pkg's exclusions, "" when
// it has none.
func SkipPattern(pkg string) string {
	var names []string
	for _, e := range Excluded {
		if e.Pkg == pkg {
			names = append(names, regexp.QuoteMeta(e.Test))
		}
	}
	if len(names) == 0 {
		return ""
	}
	slices.Sort(names)
	return "^(" + strings.Join(names, "|") + ")$"
}

// PlanFile returns /rbee/vm/plan for the VM: one run a line, the package
// directory, the test ("-" for the whole package), then the flags; none
// holds white space.
func PlanFile(runs []TestRun) (string, error) {
	var b strings.Builder
	b.WriteString("# package test flags... (written by harness/v2vm)\n")
	for _, r := range runs {
		test := r.Test
		if test == "" {
			test = "-"
		}
		for _, a := range append([]string{r.Pkg, test}, r.Args...) {
			if strings.ContainsAny(a, " \t\n") {
				return "", fmt.Errorf("plan: %s: argument %q holds white space", r.Pkg, a)
			}
		}
		fmt.Fprintf(&b, "%s %s %s\n", r.Pkg, test, strings.Join(r.Args, " "))
	}
	return b.String(), nil
}

// Step is one thing test:v2 can run (RBEE_V2_STEPS names them).
type Step struct {
	Name string
	// Doc says what the step does, for the summary and -h.
	Doc string
	// Timeout bounds the step's VM run.
	Timeout time.Duration
	// Systemd marks the steps that boot a Debian root file system with
	// systemd as PID 1 instead of the busybox initramfs.
	Systemd bool
	// Backports lists what the step installs from bookworm-backports.
	Backports []string
}

// Steps are test:v2's steps, in the order they run.
var Steps = []Step{
	{Name: "a", Timeout: 120 * time.Minute,
		Doc: "the test binaries, each alone in a fresh cgroup right below the root (/ci-a)"},
	{Name: "b", Timeout: 120 * time.Minute,
		Doc: "the test binaries, each beside another process in /user.slice/session-1.scope"},
	{Name: "c", Timeout: 10 * time.Minute,
		Doc: "a hive restarted into /system.slice/rbee-hive.service as systemd does, re-adopting its worker"},
	{Name: "systemd", Timeout: 10 * time.Minute, Systemd: true,
		Doc: "deploy/systemd/rbee-hive.service under systemd (bookworm): start, spawn, restart, re-adopt"},
	{Name: "systemd-bpo", Timeout: 10 * time.Minute, Systemd: true,
		Backports: []string{"systemd", "systemd-sysv", "udev", "libsystemd0", "libsystemd-shared", "libudev1"},
		Doc:       "the same under systemd 254+ from bookworm-backports"},
}

// SelectSteps returns the steps a comma-separated list names, all when
// list is empty.
func SelectSteps(list string) ([]Step, error) {
	if strings.TrimSpace(list) == "" {
		return Steps, nil
	}
	var out []Step
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		i := slices.IndexFunc(Steps, func(s Step) bool { return s.Name == name })
		if i < 0 {
			var names []string
			for _, s := range Steps {
				names = append(names, s.Name)
			}
			return nil, fmt.Errorf("no step %q (the steps: %s)", name, strings.Join(names, ","))
		}
		if !slices.ContainsFunc(out, func(s Step) bool { return s.Name == name }) {
			out = append(out, Steps[i])
		}
	}
	return out, nil
}
