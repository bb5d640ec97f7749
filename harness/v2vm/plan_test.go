//go:build linux

package v2vm

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestExclusionsNameRealTests keeps the exclusion list true: each entry
// names a test function of its package, with a reason.
func TestExclusionsNameRealTests(t *testing.T) {
	for _, e := range Excluded {
		if e.Why == "" {
			t.Errorf("%s %s: no reason", e.Pkg, e.Test)
		}
		files, err := filepath.Glob(filepath.Join("..", "..", e.Pkg, "*_test.go"))
		if err != nil || len(files) == 0 {
			t.Errorf("%s: no test files (%v)", e.Pkg, err)
			continue
		}
		found := false
		re := regexp.MustCompile(`(?m)^func ` + regexp.QuoteMeta(e.Test) + `\(`)
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			found = found || re.Match(b)
		}
		if !found {
			t.Errorf("%s: no func %s in its tests: remove it from Excluded", e.Pkg, e.Test)
		}
	}
}

func TestSkipPatternAndPlan(t *testing.T) {
	if got := SkipPattern("internal/launch"); got != "^(TestShimIgnoresWorkerLoaderEnv)$" {
		t.Errorf("launch: %q", got)
	}
	if got := SkipPattern("internal/cgroups"); got != "" {
		t.Errorf("cgroups: %q", got)
	}
	re := regexp.MustCompile(SkipPattern("harness/integration"))
	if !re.MatchString("TestMultiHost") || re.MatchString("TestMultiHostX") || re.MatchString("TestHiveAdoptsAndSurvivesRestart") {
		t.Errorf("integration pattern %s", re)
	}
	list := func(s Suite) ([]string, error) {
		return []string{"TestA", "TestShimIgnoresWorkerLoaderEnv", "BenchmarkB", "ExampleC", "FuzzD"}, nil
	}
	runs, err := Plan([]Suite{Suites[1], Suites[len(Suites)-1]}, list)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := PlanFile(runs)
	if err != nil {
		t.Fatal(err)
	}
	want := `# package test flags... (written by harness/v2vm)
internal/launch TestA -test.count=1 -test.timeout=5m0s -test.run ^TestA$
internal/launch ExampleC -test.count=1 -test.timeout=5m0s -test.run ^ExampleC$
internal/launch FuzzD -test.count=1 -test.timeout=5m0s -test.run ^FuzzD$
benchmarks - -test.count=1 -test.timeout=30m0s -test.run ^$ -test.bench Collection|Stress|HiveOverhead|SSELatency -test.benchtime 1x -test.short
`
	if plan != want {
		t.Errorf("plan:\n%s\nwant:\n%s", plan, want)
	}
	if _, err := PlanFile([]TestRun{{Pkg: "x", Args: []string{"-test.run", "a b"}}}); err == nil {
		t.Error("an argument with a space was accepted")
	}
	if _, err := Plan([]Suite{{Pkg: "x"}}, func(Suite) ([]string, error) { return nil, nil }); err == nil {
		t.Error("a suite without tests was accepted")
	}
}

func TestSelectSteps(t *testing.T) {
	all, err := SelectSteps("")
	if err != nil || len(all) != len(Steps) {
		t.Fatalf("%v, %v", all, err)
	}
	got, err := SelectSteps("c, systemd,c")
	if err != nil || len(got) != 2 || got[0].Name != "c" || got[1].Name != "systemd" {
		t.Fatalf("%v, %v", got, err)
	}
	if _, err := SelectSteps("a,d"); err == nil || !strings.Contains(err.Error(), `no step "d"`) {
		t.Fatalf("error %v", err)
	}
}

// TestScriptsParse checks the VM's shell scripts' syntax with the host's
// sh and bash (the VMs run busybox ash and bash).
func TestScriptsParse(t *testing.T) {
	for _, s := range []struct{ shell, file string }{
		{"sh", "vm/init"}, {"sh", "vm/lib.sh"}, {"sh", "vm/placement.sh"}, {"sh", "vm/restart.sh"},
		{"bash", "vm/systemd/ci-test.sh"},
	} {
		if _, err := exec.LookPath(s.shell); err != nil {
			t.Skipf("no %s", s.shell)
		}
		if out, err := exec.Command(s.shell, "-n", s.file).CombinedOutput(); err != nil {
			t.Errorf("%s -n %s: %v\n%s", s.shell, s.file, err, out)
		}
		if _, err := vmFiles.ReadFile(s.file); err != nil {
			t.Errorf("%s is not embedded: %v", s.file, err)
		}
	}
}
