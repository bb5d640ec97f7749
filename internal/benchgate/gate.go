// Package benchgate decides whether benchmark results regressed against a
// baseline. benchstat only prints and always exits 0, so a gate has to do
// the comparison itself: for each benchmark and each lower-is-better unit
// (sec/op, B/op, allocs/op) it compares the two samples with benchmath's
// Mann-Whitney U test and calls it a regression when the median got worse
// by more than a threshold and the difference is significant.
package benchgate

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"

	"golang.org/x/perf/benchfmt"
	"golang.org/x/perf/benchmath"
)

// Config sets the gate's thresholds. The zero value means 10 % and 0.05.
type Config struct {
	// Threshold is the relative worsening of the median that counts
	// (0.10 = 10 % slower or bigger).
	Threshold float64
	// Alpha is the significance level of the U test.
	Alpha float64
}

// Verdict is one benchmark and unit compared.
type Verdict struct {
	Benchmark, Unit string
	// OldMedian and NewMedian are the samples' medians; Delta is
	// NewMedian/OldMedian - 1.
	OldMedian, NewMedian, Delta float64
	P                           float64
	N1, N2                      int
	// Significant: P below Alpha. Regressed: significant, worse by more
	// than the threshold, and in a unit where lower is better.
	Significant, Regressed bool
	// Note explains a verdict that could not be reached (too few runs,
	// only in one side).
	Note string
}

func (v Verdict) String() string {
	if v.Note != "" {
		return fmt.Sprintf("%s %s: %s", v.Benchmark, v.Unit, v.Note)
	}
	mark := "~"
	switch {
	case v.Regressed:
		mark = "REGRESSION"
	case v.Significant:
		mark = "changed"
	}
	return fmt.Sprintf("%s %s: %.4g -> %.4g (%+.1f%%, p=%.3f n=%d+%d) %s", v.Benchmark, v.Unit, v.OldMedian, v.NewMedian, 100*v.Delta, v.P, v.N1, v.N2, mark)
}

// lowerIsBetter are the units the gate judges.
var lowerIsBetter = map[string]bool{"sec/op": true, "B/op": true, "allocs/op": true}

type key struct{ name, unit string }

// read collects every value per benchmark (full name, GOMAXPROCS suffix
// included) and unit.
func read(r io.Reader, file string) (map[key][]float64, error) {
	out := map[key][]float64{}
	br := benchfmt.NewReader(r, file)
	for br.Scan() {
		res, ok := br.Result().(*benchfmt.Result)
		if !ok {
			continue // syntax errors in non-benchmark lines are not ours
		}
		for _, v := range res.Values {
			k := key{res.Name.String(), v.Unit}
			out[k] = append(out[k], v.Value)
		}
	}
	if err := br.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	return out, nil
}

// Compare reads two sets of `go test -bench` output and returns a verdict
// per benchmark and unit, sorted by name.
func Compare(old, new io.Reader, cfg Config) ([]Verdict, error) {
	if cfg.Threshold == 0 {
		cfg.Threshold = 0.10
	}
	if cfg.Alpha == 0 {
		cfg.Alpha = 0.05
	}
	o, err := read(old, "old")
	if err != nil {
		return nil, err
	}
	n, err := read(new, "new")
	if err != nil {
		return nil, err
	}
	th := benchmath.DefaultThresholds
	th.CompareAlpha = cfg.Alpha
	var out []Verdict
	for k, nv := range n {
		v := Verdict{Benchmark: k.name, Unit: k.unit, N2: len(nv)}
		ov, ok := o[k]
		if !ok {
			v.Note = "new benchmark, no baseline"
			out = append(out, v)
			continue
		}
		v.N1 = len(ov)
		s1, s2 := benchmath.NewSample(ov, &th), benchmath.NewSample(nv, &th)
		v.OldMedian = benchmath.AssumeNothing.Summary(s1, 0.95).Center
		v.NewMedian = benchmath.AssumeNothing.Summary(s2, 0.95).Center
		if v.OldMedian != 0 {
			v.Delta = v.NewMedian/v.OldMedian - 1
		}
		c := benchmath.AssumeNothing.Compare(s1, s2)
		v.P = c.P
		if len(c.Warnings) > 0 && c.P == 1 && (len(ov) < 4 || len(nv) < 4) {
			v.Note = fmt.Sprintf("too few runs to judge (%d+%d; want at least 4 each)", len(ov), len(nv))
			out = append(out, v)
			continue
		}
		v.Significant = c.P < cfg.Alpha
		v.Regressed = v.Significant && lowerIsBetter[k.unit] && v.Delta > cfg.Threshold
		out = append(out, v)
	}
	for k := range o {
		if _, ok := n[k]; !ok {
			out = append(out, Verdict{Benchmark: k.name, Unit: k.unit, N1: len(o[k]), Note: "gone from the new results"})
		}
	}
	slices.SortFunc(out, func(a, b Verdict) int {
		return cmp.Or(strings.Compare(a.Benchmark, b.Benchmark), strings.Compare(a.Unit, b.Unit))
	})
	return out, nil
}

// Regressions returns the verdicts that fail the gate.
func Regressions(vs []Verdict) []Verdict {
	var out []Verdict
	for _, v := range vs {
		if v.Regressed {
			out = append(out, v)
		}
	}
	return out
}
