//go:build mage

// rbee's build and test targets. Run `go tool mage -l` for the list; every
// target needs nothing installed beyond Go (mage and benchstat are pinned
// as tool dependencies in go.mod).
package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/magefile/mage/mg"
	"github.com/magefile/mage/sh"

	"github.com/rbee-dev/rbee/internal/benchgate"
	"github.com/rbee-dev/rbee/internal/covmerge"
)

// Default is what `go tool mage` runs with no target.
var Default = Build.All

// Aliases make the namespaces' main targets callable by the namespace's
// name: `go tool mage test` runs every suite, `go tool mage build` builds.
var Aliases = map[string]any{
	"build": Build.All,
	"test":  Test.All,
	"bench": Bench.Run,
}

// Build compiles the binaries.
type Build mg.Namespace

// Test runs the test suites.
type Test mg.Namespace

// GPU runs the checks that need an NVIDIA GPU.
type GPU mg.Namespace

var binaries = []string{"rbee-hive", "queen-rbee"}

// All builds rbee-hive and queen-rbee into bin/.
func (Build) All() error {
	for _, b := range binaries {
		if err := sh.RunV("go", "build", "-o", filepath.Join("bin", b), "./cmd/"+b); err != nil {
			return fmt.Errorf("build %s: %w", b, err)
		}
	}
	return nil
}

func init() {
	// go-nvml's header marks calls rbee never makes as deprecated; cgo
	// would print a page of warnings on every fresh build.
	if os.Getenv("CGO_CFLAGS") == "" {
		os.Setenv("CGO_CFLAGS", "-O2 -g -Wno-deprecated-declarations")
	}
}

// Cross checks that both binaries compile for darwin/amd64, darwin/arm64
// and windows/amd64, and for linux/amd64 without cgo (NVML compiled out),
// all with cgo off as a cross build has it.
func (Build) Cross() error {
	dir, err := os.MkdirTemp("", "rbee-cross-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for _, target := range []string{"linux/amd64", "darwin/amd64", "darwin/arm64", "windows/amd64"} {
		goos, goarch, _ := strings.Cut(target, "/")
		env := map[string]string{"GOOS": goos, "GOARCH": goarch, "CGO_ENABLED": "0"}
		for _, b := range binaries {
			out := filepath.Join(dir, goos+"-"+goarch+"-"+b)
			if err := sh.RunWithV(env, "go", "build", "-o", out, "./cmd/"+b); err != nil {
				return fmt.Errorf("build %s for %s: %w", b, target, err)
			}
		}
		fmt.Printf("build:cross %s ok\n", target)
	}
	return nil
}

// Release builds the release binaries into dist/ with the version stamped
// (RBEE_VERSION, default the module's base version plus the commit) and
// writes dist/SHA256SUMS. For linux/amd64 and linux/arm64: the hive most
// hosts want, rbee-hive-linux-<arch>, built with cgo so that it loads
// NVML (libnvidia-ml) at run time and falls back to nvidia-smi where the
// library is absent (it links glibc dynamically, as every GPU host has
// it); rbee-hive-linux-<arch>-static, without cgo, for hosts without
// glibc (its hive reads GPUs through nvidia-smi alone); and a static
// queen-rbee. The arm64 hive needs a cross C compiler: CC_ARM64, default
// aarch64-linux-gnu-gcc (Debian: apt-get install gcc-aarch64-linux-gnu).
func Release() error {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		return fmt.Errorf("release: build it on linux/amd64 (this is %s/%s): the NVML hives need cgo", runtime.GOOS, runtime.GOARCH)
	}
	ccArm := os.Getenv("CC_ARM64")
	if ccArm == "" {
		ccArm = "aarch64-linux-gnu-gcc"
	}
	for _, cc := range []string{"gcc", ccArm} {
		if _, err := exec.LookPath(cc); err != nil {
			return fmt.Errorf("release: no %s: the NVML hives are cgo builds (Debian: apt-get install gcc gcc-aarch64-linux-gnu; or set CC_ARM64)", cc)
		}
	}
	if err := os.RemoveAll("dist"); err != nil {
		return err
	}
	if err := os.MkdirAll("dist", 0o755); err != nil {
		return err
	}
	ver := os.Getenv("RBEE_VERSION")
	if ver == "" {
		out, err := sh.Output("git", "describe", "--always", "--dirty")
		if err != nil {
			out = "unknown"
		}
		ver = "0.1.0-dev+" + out
	}
	ldflags := "-s -w -X github.com/rbee-dev/rbee/internal/version.Base=" + ver
	build := func(env map[string]string, out, pkg string) error {
		if err := sh.RunWithV(env, "go", "build", "-trimpath", "-ldflags="+ldflags, "-o", filepath.Join("dist", out), pkg); err != nil {
			return fmt.Errorf("build %s: %w", out, err)
		}
		return nil
	}
	for _, arch := range []string{"amd64", "arm64"} {
		static := map[string]string{"GOOS": "linux", "GOARCH": arch, "CGO_ENABLED": "0"}
		cgo := map[string]string{"GOOS": "linux", "GOARCH": arch, "CGO_ENABLED": "1"}
		if arch == "arm64" {
			cgo["CC"] = ccArm
		}
		for _, b := range []struct {
			env      map[string]string
			out, pkg string
		}{
			{cgo, "rbee-hive-linux-" + arch, "./cmd/rbee-hive"},
			{static, "rbee-hive-linux-" + arch + "-static", "./cmd/rbee-hive"},
			{static, "queen-rbee-linux-" + arch, "./cmd/queen-rbee"},
		} {
			if err := build(b.env, b.out, b.pkg); err != nil {
				return err
			}
		}
	}
	ents, err := os.ReadDir("dist")
	if err != nil {
		return err
	}
	var sums strings.Builder
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("dist", e.Name()))
		if err != nil {
			return err
		}
		fmt.Fprintf(&sums, "%x  %s\n", sha256.Sum256(b), e.Name())
	}
	if err := os.WriteFile(filepath.Join("dist", "SHA256SUMS"), []byte(sums.String()), 0o644); err != nil {
		return err
	}
	fmt.Printf("release %s:\n%s", ver, sums.String())
	return nil
}

// Demo is the README's main job: it builds everything, starts a queen and a
// hive on loopback (workers in cgroups below the hive's own when it has the
// rights, plain processes with a notice when not), spawns three test
// workers with different models and loads, prints where to look and a live
// view until Ctrl-C, then stops everything and checks that no process or
// cgroup is left. The demo is its own program (internal/demo/cmd): the
// magefile imports none of rbee's packages. Env: RBEE_DEMO_SECONDS stops
// it after that many seconds.
func Demo(ctx context.Context) error {
	mg.Deps(Build.All)
	for _, p := range []struct{ out, pkg string }{{"testworker", "./harness/testworker"}, {"fakesmi", "./harness/fakesmi"}, {"rbee-demo", "./internal/demo/cmd"}} {
		if err := sh.RunV("go", "build", "-o", filepath.Join("bin", p.out), p.pkg); err != nil {
			return err
		}
	}
	args := []string{"--bin-dir", "bin", "--log-dir", filepath.Join("bin", "demo-logs")}
	if s := os.Getenv("RBEE_DEMO_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return fmt.Errorf("RBEE_DEMO_SECONDS=%q: want a positive number of seconds", s)
		}
		args = append(args, "--seconds", s)
	}
	return sh.RunV(filepath.Join("bin", "rbee-demo"), args...)
}

// Unit runs every package's tests with -race, except the integration suite,
// one package at a time: the telemetry tests check CPU readings against
// the load their workers were told to make, and on a 2-core machine other
// packages' tests running alongside starve those workers.
// Env: RBEE_TEST_RUN (a -run pattern), RBEE_TEST_V=1 (verbose).
func (Test) Unit() error {
	pkgs, err := packages(func(p string) bool { return !strings.Contains(p, "/harness/integration") })
	if err != nil {
		return err
	}
	return goTest(append([]string{"-p=1"}, pkgs...))
}

// Integration runs the end-to-end suite in harness/integration with real
// binaries, processes and cgroups (as root). Env: RBEE_TEST_RUN, RBEE_TEST_V.
func (Test) Integration() error {
	return goTest([]string{"./harness/integration/..."})
}

// V2 runs the cgroup v2 lane (harness/v2vm) as root: Debian's cloud kernel
// under qemu (TCG) runs the cgroup, launch, monitor and hive tests, the
// integration suite and the benchmarks as static binaries, each test alone
// in a cgroup below the root (step a) and beside another process in a
// session scope (b); then a hive restarted into its unit's cgroup as
// systemd does (c); then deploy/systemd/rbee-hive.service restarted under
// systemd 252 (systemd) and 254+ from bookworm-backports (systemd-bpo).
// It needs qemu-system-x86 and debootstrap (.ci/deps v2 installs them) and
// Debian's apt for the kernel, busybox and root file systems, all cached
// in ~/.cache/rbee/v2vm. Each VM's console goes to the terminal and to
// artifacts/v2vm/<step>.log; the summary names every failed step, package,
// test and check. Env: RBEE_V2_STEPS (e.g. c,systemd; default all),
// RBEE_V2_PKGS (suites of a and b, e.g. internal/monitor), RBEE_V2_RUN
// (a test name pattern), RBEE_V2_TIMEOUT (per step), RBEE_V2_CACHE,
// RBEE_V2_MIRROR, RBEE_V2_ACCEL (qemu's -accel, default tcg),
// RBEE_ARTIFACTS.
func (Test) V2() error {
	bin := filepath.Join("bin", "rbee-v2vm")
	if err := sh.RunV("go", "build", "-o", bin, "./harness/v2vm/cmd"); err != nil {
		return err
	}
	return sh.RunV(bin)
}

// Fuzz runs every fuzz target of the module for a short time each
// (RBEE_FUZZTIME, default 10s), one after another, starting from its
// seeds in testdata/fuzz/<Target>/ and the f.Add seeds, and prints how
// long each ran and how many inputs it tried. A failing input is saved
// under testdata/fuzz/ by go test; commit it with the fix.
// Env: RBEE_FUZZTIME (a duration), RBEE_FUZZ (a regexp of target names).
func (Test) Fuzz() error {
	fuzzTime := os.Getenv("RBEE_FUZZTIME")
	if fuzzTime == "" {
		fuzzTime = "10s"
	}
	if _, err := time.ParseDuration(fuzzTime); err != nil {
		return fmt.Errorf("RBEE_FUZZTIME=%q: want a duration such as 10s", fuzzTime)
	}
	only := regexp.MustCompile(".")
	if v := os.Getenv("RBEE_FUZZ"); v != "" {
		re, err := regexp.Compile(v)
		if err != nil {
			return fmt.Errorf("RBEE_FUZZ=%q: %w", v, err)
		}
		only = re
	}
	targets, err := fuzzTargets()
	if err != nil {
		return err
	}
	type result struct {
		pkg, name, execs string
		took             time.Duration
	}
	var results []result
	execsRE := regexp.MustCompile(`execs: (\d+)`)
	for _, tg := range targets {
		if !only.MatchString(tg.name) {
			continue
		}
		start := time.Now()
		var out string
		for attempt := 1; ; attempt++ {
			out, err = sh.Output("go", "test", "-run", "^$", "-fuzz", "^"+tg.name+"$", "-fuzztime", fuzzTime, tg.pkg)
			if err == nil {
				break
			}
			// Go 1.26's fuzz coordinator can report its own -fuzztime
			// deadline as a failure (go.dev/issue/75804, fixed in 1.27).
			// A real failure always writes its input under testdata/fuzz,
			// so only a bare deadline with no input written is run again.
			if attempt < 3 && coordinatorDeadline(out) {
				fmt.Printf("test:fuzz %s: the fuzz coordinator's own deadline race (go.dev/issue/75804), no input written; running it again\n", tg.name)
				continue
			}
			fmt.Println(out)
			return fmt.Errorf("fuzz %s in %s: %w", tg.name, tg.pkg, err)
		}
		execs := "?"
		if m := execsRE.FindAllStringSubmatch(out, -1); len(m) > 0 {
			execs = m[len(m)-1][1]
		}
		results = append(results, result{tg.pkg, tg.name, execs, time.Since(start)})
		fmt.Printf("test:fuzz %-28s %-44s %12s inputs in %v\n", tg.name, strings.TrimPrefix(tg.pkg, "github.com/rbee-dev/rbee/"), execs, time.Since(start).Round(100*time.Millisecond))
	}
	if len(results) == 0 {
		return errors.New("test:fuzz: no fuzz target matched")
	}
	fmt.Printf("test:fuzz: %d targets, %s each, no failure\n", len(results), fuzzTime)
	return nil
}

// coordinatorDeadline reports whether a failed fuzz run's output is the
// coordinator's deadline race and nothing else: "context deadline
// exceeded" as the only failure, and no failing input written.
func coordinatorDeadline(out string) bool {
	return strings.Contains(out, "context deadline exceeded") &&
		!strings.Contains(out, "Failing input written") &&
		!strings.Contains(out, "panic:") &&
		strings.Count(out, "--- FAIL") == 1
}

type fuzzTarget struct{ pkg, name string }

// fuzzTargets lists every Fuzz function of the module with its package.
func fuzzTargets() ([]fuzzTarget, error) {
	out, err := sh.Output("go", "test", "-list", "^Fuzz", "./...")
	if err != nil {
		return nil, fmt.Errorf("go test -list: %w\n%s", err, out)
	}
	var pending []string
	var targets []fuzzTarget
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 1 && strings.HasPrefix(f[0], "Fuzz"):
			pending = append(pending, f[0])
		case len(f) >= 2 && f[0] == "ok":
			for _, n := range pending {
				targets = append(targets, fuzzTarget{f[1], n})
			}
			pending = nil
		}
	}
	return targets, nil
}

// All runs the unit and then the integration tests.
func (Test) All() error {
	mg.SerialDeps(Test.Unit, Test.Integration)
	return nil
}

// Coverage runs every suite with -race and coverage over all of rbee's
// packages, the daemons the integration tests start included (built with
// -cover, their counters in coverage/daemons, converted with go tool
// covdata), merges the two into coverage/cover.out with an HTML report
// in coverage/index.html, and prints each package's figure and the total
// of the product packages (cmd/ and internal/, less the demo, which is a
// program for people, run by its own smoke test). Env: RBEE_TEST_RUN.
func Coverage() error {
	if err := os.RemoveAll("coverage"); err != nil {
		return err
	}
	daemons, err := filepath.Abs(filepath.Join("coverage", "daemons"))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(daemons, 0o755); err != nil {
		return err
	}
	// The hive's shims write their counters after switching to the
	// worker's user (nobody): the directory is theirs to write to, as /tmp.
	if err := os.Chmod(daemons, 0o1777); err != nil {
		return err
	}
	args := []string{"test", "-race", "-count=1", "-p=1", "-timeout=20m", "-coverpkg=./...", "-coverprofile=coverage/unit.out"}
	if run := os.Getenv("RBEE_TEST_RUN"); run != "" {
		args = append(args, "-run", run)
	}
	env := map[string]string{"RBEE_COVERDIR": daemons}
	if err := sh.RunWithV(env, "go", append(args, "./...")...); err != nil {
		return err
	}
	profiles := [][]byte{}
	unit, err := os.ReadFile("coverage/unit.out")
	if err != nil {
		return err
	}
	profiles = append(profiles, unit)
	if ents, _ := os.ReadDir(daemons); len(ents) > 0 {
		if err := sh.Run("go", "tool", "covdata", "textfmt", "-i="+daemons, "-o=coverage/daemons.out"); err != nil {
			return fmt.Errorf("covdata: %w", err)
		}
		d, err := os.ReadFile("coverage/daemons.out")
		if err != nil {
			return err
		}
		profiles = append(profiles, d)
	}
	merged, err := covmerge.Merge(profiles...)
	if err != nil {
		return err
	}
	if err := os.WriteFile("coverage/cover.out", merged.Bytes(), 0o644); err != nil {
		return err
	}
	if err := sh.Run("go", "tool", "cover", "-html=coverage/cover.out", "-o=coverage/index.html"); err != nil {
		return err
	}
	per := merged.PerPackage()
	var total covmerge.Coverage
	for _, pkg := range slices.Sorted(maps.Keys(per)) {
		c := per[pkg]
		name := strings.TrimPrefix(pkg, "github.com/rbee-dev/rbee/")
		product := (strings.HasPrefix(name, "cmd/") || strings.HasPrefix(name, "internal/")) && !strings.HasPrefix(name, "internal/demo")
		mark := ""
		if product {
			total.Covered += c.Covered
			total.Total += c.Total
		} else {
			mark = " (not counted)"
		}
		fmt.Printf("coverage %-36s %6.1f%% of %5d statements%s\n", name, c.Percent(), c.Total, mark)
	}
	fmt.Printf("coverage: %.1f%% of %d statements in cmd/ and internal/ (unit and integration runs, daemons included); coverage/cover.out, coverage/index.html\n",
		total.Percent(), total.Total)
	if s := os.Getenv("GITHUB_STEP_SUMMARY"); s != "" {
		f, err := os.OpenFile(s, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
		if err == nil {
			fmt.Fprintf(f, "### Coverage\n\n%.1f%% of %d statements in cmd/ and internal/\n", total.Percent(), total.Total)
			f.Close()
		}
	}
	return nil
}

// Lint fails on unformatted files, go vet findings, a go.mod/go.sum that
// `go mod tidy` would change, or an actionlint finding in the workflows.
func Lint() error {
	out, err := sh.Output("gofmt", "-l", ".")
	if err != nil {
		return err
	}
	if out != "" {
		return fmt.Errorf("gofmt would change:\n%s", out)
	}
	if err := sh.RunV("go", "vet", "./..."); err != nil {
		return fmt.Errorf("go vet: %w", err)
	}
	if err := sh.RunV("go", "mod", "tidy", "-diff"); err != nil {
		return fmt.Errorf("go.mod/go.sum are not tidy (run go mod tidy): %w", err)
	}
	// The workflows, checked as GitHub would run them.
	if err := sh.RunV("go", "tool", "actionlint"); err != nil {
		return fmt.Errorf("actionlint: %w", err)
	}
	return nil
}

// Bench runs the benchmarks and gates regressions.
type Bench mg.Namespace

// benchPattern is the -bench pattern: RBEE_BENCH, else def.
func benchPattern(def string) string {
	if p := os.Getenv("RBEE_BENCH"); p != "" {
		return p
	}
	return def
}

// gatePattern is what bench:gate compares by default: the benchmarks that
// run in-process and repeat within a few percent on a shared machine.
// The daemon benchmarks (hive overhead, latency, ingest, fan-out, fleet)
// measure whole processes over seconds; their numbers are tracked in
// BENCHMARKS.md, not gated.
const gatePattern = "HeartbeatDecode|HeartbeatPayloadSize|HeartbeatInflate|RegistryIngest|Collection10Workers|CollectionFloor100|GPUQuery"

// Run runs the benchmarks in benchmarks/ and prints them through
// benchstat (medians with their spread). Env: RBEE_BENCH (a -bench
// pattern, default all), RBEE_BENCH_COUNT (runs, default 6),
// RBEE_BENCHTIME (-benchtime, default 1s). The output is kept in
// bin/bench-run.txt.
func (Bench) Run() error {
	count, err := envInt("RBEE_BENCH_COUNT", 6)
	if err != nil {
		return err
	}
	benchtime := os.Getenv("RBEE_BENCHTIME")
	if benchtime == "" {
		benchtime = "1s"
	}
	out, err := sh.Output("go", "test", "-run", "^$", "-bench", benchPattern("."), "-benchtime", benchtime, "-count", strconv.Itoa(count), "-timeout", "2h", "./benchmarks/")
	if err != nil {
		fmt.Println(out)
		return fmt.Errorf("benchmarks: %w", err)
	}
	f := filepath.Join("bin", "bench-run.txt")
	if err := os.MkdirAll("bin", 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(f, []byte(out), 0o644); err != nil {
		return err
	}
	return sh.RunV("go", "tool", "benchstat", f)
}

// Smoke runs every benchmark once, short (-short -benchtime 1x: smaller
// fleets, shorter windows), so none can rot; CI runs it. It checks that
// each runs and asserts what it asserts, not its numbers.
func (Bench) Smoke() error {
	return sh.RunV("go", "test", "-short", "-run", "^$", "-bench", benchPattern("."), "-benchtime", "1x", "-timeout", "30m", "./benchmarks/")
}

// Profile writes CPU and memory profiles of the 100-worker collection
// pass under load (BenchmarkStress100Workers) and of the queen's
// heartbeat decoding and registry ingest to bin/profiles/, and prints
// the top of each. Read them with go tool pprof.
func (Bench) Profile() error {
	dir := filepath.Join("bin", "profiles")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, p := range []struct{ name, pattern, benchtime string }{
		{"stress100", "^BenchmarkStress100Workers$", "300x"},
		{"ingest", "^BenchmarkHeartbeatDecode$/segmentio|^BenchmarkRegistryIngest$", "3000x"},
	} {
		cpu, mem := filepath.Join(dir, p.name+".cpu.pprof"), filepath.Join(dir, p.name+".mem.pprof")
		bin := filepath.Join(dir, p.name+".test")
		if err := sh.RunV("go", "test", "-run", "^$", "-bench", p.pattern, "-benchtime", p.benchtime, "-cpuprofile", cpu, "-memprofile", mem, "-o", bin, "./benchmarks/"); err != nil {
			return err
		}
		if err := sh.RunV("go", "tool", "pprof", "-top", "-nodecount", "25", bin, cpu); err != nil {
			return err
		}
	}
	return nil
}

// Gate benchmarks a base commit and this tree in turns (one run of each
// per round, so machine noise hits both alike), prints benchstat's table,
// and fails when a benchmark got slower or bigger (sec/op, B/op,
// allocs/op) by more than the threshold with p < 0.05 (Mann-Whitney U).
// Env: RBEE_BENCH_BASE (git ref, default HEAD~1), RBEE_BENCH (pattern,
// default gatePattern), RBEE_BENCH_COUNT (rounds, default 6),
// RBEE_BENCH_THRESHOLD (default 0.10).
func (Bench) Gate() error {
	base := os.Getenv("RBEE_BENCH_BASE")
	if base == "" {
		base = "HEAD~1"
	}
	rounds, err := envInt("RBEE_BENCH_COUNT", 6)
	if err != nil {
		return err
	}
	threshold := 0.10
	if v := os.Getenv("RBEE_BENCH_THRESHOLD"); v != "" {
		if threshold, err = strconv.ParseFloat(v, 64); err != nil || threshold <= 0 {
			return fmt.Errorf("RBEE_BENCH_THRESHOLD=%q: want a positive fraction such as 0.1", v)
		}
	}
	wt, err := os.MkdirTemp("", "rbee-bench-base-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(wt)
	if err := sh.RunV("git", "worktree", "add", "--detach", wt, base); err != nil {
		return fmt.Errorf("check out %s: %w", base, err)
	}
	defer sh.Run("git", "worktree", "remove", "--force", wt)
	var oldOut, newOut strings.Builder
	for i := range rounds {
		fmt.Printf("bench:gate round %d/%d\n", i+1, rounds)
		for _, side := range []struct {
			dir string
			out *strings.Builder
		}{{wt, &oldOut}, {".", &newOut}} {
			cmd := exec.Command("go", "test", "-run", "^$", "-bench", benchPattern(gatePattern), "-count", "1", "./benchmarks/")
			cmd.Dir = side.dir
			b, err := cmd.CombinedOutput()
			if err != nil {
				return fmt.Errorf("benchmarks in %s: %w\n%s", side.dir, err, b)
			}
			side.out.Write(b)
		}
	}
	if err := os.MkdirAll("bin", 0o755); err != nil {
		return err
	}
	oldF, newF := filepath.Join("bin", "bench-base.txt"), filepath.Join("bin", "bench-new.txt")
	if err := os.WriteFile(oldF, []byte(oldOut.String()), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(newF, []byte(newOut.String()), 0o644); err != nil {
		return err
	}
	_ = sh.RunV("go", "tool", "benchstat", "base="+oldF, "new="+newF)
	vs, err := benchgate.Compare(strings.NewReader(oldOut.String()), strings.NewReader(newOut.String()), benchgate.Config{Threshold: threshold})
	if err != nil {
		return err
	}
	for _, v := range vs {
		fmt.Println(v)
	}
	if regs := benchgate.Regressions(vs); len(regs) > 0 {
		return fmt.Errorf("%d benchmark regressions against %s (threshold %.0f%%)", len(regs), base, 100*threshold)
	}
	fmt.Printf("bench:gate: no regression against %s beyond %.0f%%\n", base, 100*threshold)
	return nil
}

func envInt(key string, def int) (int, error) {
	v := os.Getenv(key)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s=%q: want a positive whole number", key, v)
	}
	return n, nil
}

// Check runs the GPU acceptance check on this machine (it needs an NVIDIA
// GPU, python3 with PyTorch, and root for cgroups): two CUDA workers
// spawned through the hive's spawn path, measured through NVML and
// nvidia-smi, printed beside nvidia-smi's own view; then the cgroup and
// monitor suites, which run on real cgroup v2 there.
func (GPU) Check() error {
	if err := sh.RunV("go", "test", "-count=1", "-v", "-run", "TestGPUAcceptance", "./harness/integration/"); err != nil {
		return err
	}
	return sh.RunV("go", "test", "-count=1", "./internal/cgroups/", "./internal/launch/", "./internal/monitor/", "./internal/gpu/", "./internal/hive/")
}

// Bundle prepares gpu:check for a machine without Go: test binaries, the
// helper programs and worker.py in .gpucheck/, and .gpucheck/run.sh to run
// there (it prints everything and exits non-zero on a failure).
func (GPU) Bundle() error {
	dir := ".gpucheck"
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		return err
	}
	strip := "-ldflags=-s -w" // the bundle travels under a 64 MiB limit
	for _, pkg := range []string{"harness/testworker", "harness/fakesmi", "harness/cgexec"} {
		if err := sh.RunV("go", "build", strip, "-o", filepath.Join(dir, "bin", filepath.Base(pkg)), "./"+pkg); err != nil {
			return err
		}
	}
	// One directory per package, holding its test binary and testdata, so
	// each runs where its relative paths point.
	pkgs := map[string]string{"integration": "harness/integration", "cgroups": "internal/cgroups", "monitor": "internal/monitor",
		"gpu": "internal/gpu", "hive": "internal/hive", "launch": "internal/launch"}
	for name, pkg := range pkgs {
		pdir := filepath.Join(dir, name)
		if err := sh.RunV("go", "test", "-c", strip, "-o", filepath.Join(pdir, name+".test"), "./"+pkg); err != nil {
			return err
		}
		if _, err := os.Stat(filepath.Join(pkg, "testdata")); err == nil {
			if err := sh.RunV("cp", "-r", filepath.Join(pkg, "testdata"), pdir); err != nil {
				return err
			}
		}
	}
	if err := sh.Copy(filepath.Join(dir, "integration", "worker.py"), "harness/cudaworker/worker.py"); err != nil {
		return err
	}
	// The binaries travel gzipped: 106 MiB as built, 47 MiB so, under
	// the GPU machine's 64 MiB. run.sh unpacks them with gzip, which
	// every host has.
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(p, ".test") || filepath.Dir(p) == filepath.Join(dir, "bin")) {
			return err
		}
		if err := sh.Run("gzip", "-9", p); err != nil {
			return err
		}
		fi, err := os.Stat(p + ".gz")
		if err == nil {
			total += fi.Size()
		}
		return err
	})
	if err != nil {
		return err
	}
	script := `#!/usr/bin/env bash
# GPU acceptance check, prebuilt by 'go tool mage gpu:bundle'. Run it as
# root from any shell: each test binary runs alone in a new cgroup right
# below the cgroup v2 root (cgexec), whatever else shares this shell's.
set -u -o pipefail
cd "$(dirname "$0")"
[ "$(id -u)" = 0 ] || { echo "run.sh: run it as root (the tests make cgroups)" >&2; exit 1; }
# The binaries travel gzipped.
for gz in bin/*.gz */*.test.gz; do
  [ -e "${gz%.gz}" ] || { gzip -dc "$gz" >"${gz%.gz}.tmp" && chmod 755 "${gz%.gz}.tmp" && mv "${gz%.gz}.tmp" "${gz%.gz}"; } || exit 1
done
export RBEE_HARNESS_BIN_DIR="$PWD/bin"
run() { # package, then test flags
  local p=$1; shift
  (cd "$p" && exec ../bin/cgexec "gpucheck-$p" -- "./$p.test" "$@")
}
rc=0
echo "== GPU acceptance: NVML and nvidia-smi against two CUDA workers"
run integration -test.v -test.count=1 -test.run TestGPUAcceptance || rc=1
for p in cgroups launch monitor gpu hive; do
  echo "== $p tests on this machine's kernel and cgroups"
  run "$p" -test.count=1 -test.v 2>&1 | grep -Ev '^=== (RUN|PAUSE|CONT)' || rc=1
done
echo "== exit $rc"
exit $rc
`
	if err := os.WriteFile(filepath.Join(dir, "run.sh"), []byte(script), 0o755); err != nil {
		return err
	}
	fmt.Printf("gpu:bundle: %.1f MiB in %s; carry it and run: bash %s/run.sh\n", float64(total)/(1<<20), dir, dir)
	return nil
}

func goTest(pkgs []string) error {
	args := []string{"test", "-race", "-count=1", "-timeout=15m"}
	if run := os.Getenv("RBEE_TEST_RUN"); run != "" {
		args = append(args, "-run", run)
	}
	if os.Getenv("RBEE_TEST_V") == "1" {
		args = append(args, "-v")
	}
	return sh.RunV("go", append(args, pkgs...)...)
}

// packages lists the module's packages that keep returns true for.
func packages(keep func(string) bool) ([]string, error) {
	out, err := exec.Command("go", "list", "./...").Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %w", err)
	}
	var pkgs []string
	for _, p := range strings.Fields(string(out)) {
		if keep(p) {
			pkgs = append(pkgs, p)
		}
	}
	return pkgs, nil
}
