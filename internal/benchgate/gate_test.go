package benchgate

import (
	"fmt"
	"strings"
	"testing"
)

// results renders go test -bench output with one line per value.
func results(name string, nsPerOp ...float64) string {
	var b strings.Builder
	b.WriteString("goos: linux\ngoarch: amd64\npkg: example\n")
	for _, v := range nsPerOp {
		fmt.Fprintf(&b, "Benchmark%s-2   \t100\t%.0f ns/op\t512 B/op\t4 allocs/op\n", name, v)
	}
	return b.String()
}

func TestCompare(t *testing.T) {
	base := []float64{1000, 1010, 990, 1005, 995, 1002}
	tests := []struct {
		name       string
		old, new   string
		regressed  bool
		note       string
		deltaAbove float64
	}{
		{name: "same", old: results("X", base...), new: results("X", 1001, 999, 1003, 997, 1000, 1004)},
		{name: "30% slower", old: results("X", base...), new: results("X", 1300, 1310, 1290, 1305, 1295, 1302), regressed: true, deltaAbove: 0.25},
		{name: "5% slower is under the threshold", old: results("X", base...), new: results("X", 1050, 1060, 1040, 1055, 1045, 1052)},
		{name: "faster", old: results("X", base...), new: results("X", 700, 710, 690, 705, 695, 702)},
		{name: "noisy, not significant", old: results("X", 1000, 2000, 1000, 2000, 1000, 2000), new: results("X", 1100, 2100, 1000, 1900, 1100, 2000)},
		{name: "too few runs", old: results("X", 1000), new: results("X", 5000), note: "too few runs"},
		{name: "new benchmark", old: results("Y", base...), new: results("X", base...), note: "new benchmark"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vs, err := Compare(strings.NewReader(tc.old), strings.NewReader(tc.new), Config{})
			if err != nil {
				t.Fatal(err)
			}
			var sec *Verdict
			for i := range vs {
				if vs[i].Unit == "sec/op" && vs[i].Benchmark == "X-2" {
					sec = &vs[i]
				}
			}
			if sec == nil {
				t.Fatalf("no sec/op verdict for X in %v", vs)
			}
			if sec.Regressed != tc.regressed || !strings.Contains(sec.Note, tc.note) || tc.regressed && sec.Delta < tc.deltaAbove {
				t.Fatalf("verdict %s; want regressed=%v note %q", sec, tc.regressed, tc.note)
			}
			if got := len(Regressions(vs)); got != map[bool]int{true: 1, false: 0}[tc.regressed] {
				t.Fatalf("%d regressions in %v", got, vs)
			}
		})
	}
}

func TestCompareIgnoresHigherIsBetterUnits(t *testing.T) {
	mk := func(v float64) string {
		var b strings.Builder
		for range 6 {
			fmt.Fprintf(&b, "BenchmarkT-2\t10\t100 ns/op\t%.0f MB/s\n", v)
		}
		return b.String()
	}
	vs, err := Compare(strings.NewReader(mk(500)), strings.NewReader(mk(100)), Config{})
	if err != nil {
		t.Fatal(err)
	}
	if len(Regressions(vs)) != 0 {
		t.Fatalf("a throughput drop was gated as a lower-is-better regression: %v", vs)
	}
}

func FuzzCompare(f *testing.F) {
	f.Add(results("X", 1, 2, 3, 4), results("X", 5, 6, 7, 8))
	f.Fuzz(func(t *testing.T, a, b string) {
		_, _ = Compare(strings.NewReader(a), strings.NewReader(b), Config{})
	})
}
