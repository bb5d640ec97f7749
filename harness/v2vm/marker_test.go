package v2vm

import (
	"strings"
	"testing"
)

func TestParseMarker(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		ok         bool
		kind, text string
		fields     map[string]string
	}{
		{"plain", "@@rbee-v2 pkg-end step=a pkg=internal/monitor rc=1 secs=26.5", true, "pkg-end", "",
			map[string]string{"step": "a", "pkg": "internal/monitor", "rc": "1", "secs": "26.5"}},
		{"text", "@@rbee-v2 check step=c name=move result=fail :: could not: write error: busy", true, "check",
			"could not: write error: busy", map[string]string{"step": "c", "name": "move", "result": "fail"}},
		{"journal prefix", "[   21.4] ci-test.sh[151]: @@rbee-v2 step-end step=systemd rc=1 secs=12.6", true, "step-end", "",
			map[string]string{"step": "systemd", "rc": "1", "secs": "12.6"}},
		{"empty text", "@@rbee-v2 note step=a ::", true, "note", "", map[string]string{"step": "a"}},
		{"no marker", "--- FAIL: TestX (0.1s)", false, "", "", nil},
		{"bare prefix", "@@rbee-v2 ", false, "", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, ok := ParseMarker(tc.line)
			if ok != tc.ok {
				t.Fatalf("ok %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			if m.Kind != tc.kind || m.Text != tc.text {
				t.Errorf("kind %q text %q, want %q %q", m.Kind, m.Text, tc.kind, tc.text)
			}
			for k, v := range tc.fields {
				if m.Fields[k] != v {
					t.Errorf("field %s = %q, want %q", k, m.Fields[k], v)
				}
			}
		})
	}
}

// console is a VM transcript as the busybox steps print it: go test's
// non-verbose output between package markers.
const console = `SeaBIOS (version 1.16.2)
@@rbee-v2 step-begin step=a
@@rbee-v2 pkg-begin step=a pkg=internal/cgroups
PASS
@@rbee-v2 pkg-end step=a pkg=internal/cgroups rc=0 secs=1.5
@@rbee-v2 pkg-begin step=a pkg=internal/monitor
--- FAIL: TestSpawnAppliesMemoryLimit (1.20s)
    monitor_linux_test.go:88: memory.max = max, want 67108864
        continued detail
--- FAIL: TestTable (0.00s)
    --- FAIL: TestTable/one (0.00s)
        daemon.go:12: hive log: started
        table_test.go:40: got 1, want 2
    --- PASS: TestTable/two (0.00s)
--- FAIL: TestLogFirst (6.10s)
    faults_test.go:65: queen down: first heartbeat 160ms after it recovered (interval 300ms)
    daemon.go:240: ---- queen log ----
        time=... level=ERROR msg="heartbeat failed"
    cgroup.go:57: cgroup cleanup: write cgroup.subtree_control: device or resource busy
--- FAIL: TestSkippedInCI (0.00s)
    cgroup.go:20: cannot run in CI: needs the ip command
FAIL
@@rbee-v2 pkg-end step=a pkg=internal/monitor rc=1 secs=26.5
@@rbee-v2 pkg-begin step=a pkg=harness/integration
@@rbee-v2 run step=a pkg=harness/integration test=TestOK
@@rbee-v2 run-end step=a pkg=harness/integration test=TestOK rc=0 secs=1.0
@@rbee-v2 run step=a pkg=harness/integration test=TestQuiet
@@rbee-v2 run-end step=a pkg=harness/integration test=TestQuiet rc=1 secs=1.0
@@rbee-v2 run step=a pkg=harness/integration test=TestHiveAdoptsAndSurvivesRestart
panic: test timed out after 50m0s
	running tests:
		TestHiveAdoptsAndSurvivesRestart (50m0s)

goroutine 1 [running]:
main.main()
@@rbee-v2 pkg-end step=a pkg=harness/integration rc=2 secs=3000.0
@@rbee-v2 check step=a name=cleanup-monitor result=fail :: left behind in /ci-a: 2 cgroups
@@rbee-v2 note step=a :: kernel 6.1.0-57-cloud-amd64
@@rbee-v2 step-end step=a rc=1 secs=3030.2
[   17.08] reboot: Power down
@@rbee-v2 step-begin step=c
@@rbee-v2 check step=c name=move result=ok :: joined
@@rbee-v2 step-end step=c rc=0 secs=9.0
@@rbee-v2 step-begin step=b
@@rbee-v2 pkg-begin step=b pkg=internal/hive
`

func TestReportReadsConsole(t *testing.T) {
	var r Report
	for _, l := range strings.Split(console, "\n") {
		r.Feed(l)
	}
	if len(r.Steps) != 3 {
		t.Fatalf("%d steps, want 3", len(r.Steps))
	}
	a := r.Steps[0]
	if !a.Ended || a.RC != 1 || a.Secs != 3030.2 || len(a.Packages) != 3 || len(a.Checks) != 1 || len(a.Notes) != 1 {
		t.Fatalf("step a: %+v", a)
	}
	if p := a.Packages[0]; p.Name != "internal/cgroups" || !p.Ended || p.RC != 0 || len(p.Failures) != 0 {
		t.Errorf("cgroups: %+v", p)
	}
	mon := a.Packages[1]
	got := map[string]string{}
	for _, f := range mon.Failures {
		got[f.Test] = f.First()
	}
	want := map[string]string{
		"TestSpawnAppliesMemoryLimit": "monitor_linux_test.go:88: memory.max = max, want 67108864",
		"TestTable":                   "(no output)",
		"TestTable/one":               "table_test.go:40: got 1, want 2",
		"TestSkippedInCI":             "cgroup.go:20: cannot run in CI: needs the ip command",
		"TestLogFirst":                "cgroup.go:57: cgroup cleanup: write cgroup.subtree_control: device or resource busy",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: first line %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("failures %v, want %v", got, want)
	}
	if l := mon.Failures[0].Lines; len(l) != 2 || l[1] != "continued detail" {
		t.Errorf("lines of the first failure: %q", l)
	}
	integ := a.Packages[2]
	if len(integ.Failures) != 2 || integ.Failures[1].Test != "TestHiveAdoptsAndSurvivesRestart (panic)" ||
		strings.Join(integ.Failures[1].Lines, "|") != "panic: test timed out after 50m0s|running tests:|TestHiveAdoptsAndSurvivesRestart (50m0s)" {
		t.Errorf("panic: %+v", integ.Failures)
	}
	if f := integ.Failures[0]; f.Test != "TestQuiet" || !strings.Contains(f.First(), "exited 1 without a --- FAIL line") {
		t.Errorf("a failed run without output: %+v", f)
	}
	if failed, why := a.Failed(); !failed || why != "internal/monitor exit 1, harness/integration exit 2, check cleanup-monitor" {
		t.Errorf("step a failed %v: %q", failed, why)
	}
	if failed, why := r.Steps[1].Failed(); failed {
		t.Errorf("step c failed: %s", why)
	}
	b := r.Steps[2]
	if failed, why := b.Failed(); !failed || !strings.Contains(why, "no step-end marker") || !strings.Contains(why, "internal/hive did not finish") {
		t.Errorf("step b (cut off) failed %v: %q", failed, why)
	}
	b.Err = "the VM ran past its timeout and was killed (2h0m0s)"
	if _, why := b.Failed(); strings.Contains(why, "no step-end marker") || !strings.Contains(why, "timeout") {
		t.Errorf("step b with an error: %q", why)
	}

	var sum strings.Builder
	r.Summary(&sum)
	for _, want := range []string{
		"step a ", "FAIL: internal/monitor exit 1",
		"internal/monitor       26.5s    FAIL (exit 1)",
		"        TestTable/one: table_test.go:40: got 1, want 2",
		"check move                 ok   joined",
	} {
		if !strings.Contains(sum.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, sum.String())
		}
	}
	if strings.Contains(sum.String(), "TestTable: (no output)") {
		t.Errorf("summary lists a parent that failed only through its subtest:\n%s", sum.String())
	}
}
