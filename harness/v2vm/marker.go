package v2vm

import (
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// MarkerPrefix starts every result line the VM prints on its console:
//
//	@@rbee-v2 KIND key=value ... [:: free text]
//
// with KIND one of step-begin, step-end (rc, secs), pkg-begin, pkg-end
// (rc, secs), run and run-end (test, rc, secs: one test's run of a
// package's binary), check (name, result=ok|fail) and note. A marker may sit
// anywhere in a console line: systemd's journal+console output prefixes
// its lines with the unit's name.
const MarkerPrefix = "@@rbee-v2 "

// Marker is one parsed result line.
type Marker struct {
	Kind   string
	Fields map[string]string
	// Text is what follows " :: ", if anything.
	Text string
}

// ParseMarker finds a marker in a console line.
func ParseMarker(line string) (Marker, bool) {
	i := strings.Index(line, MarkerPrefix)
	if i < 0 {
		return Marker{}, false
	}
	rest := line[i+len(MarkerPrefix):]
	m := Marker{Fields: map[string]string{}}
	if head, text, ok := strings.Cut(rest, " :: "); ok {
		rest, m.Text = head, strings.TrimSpace(text)
	} else if strings.HasSuffix(rest, " ::") {
		rest = strings.TrimSuffix(rest, " ::")
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return Marker{}, false
	}
	m.Kind = f[0]
	for _, kv := range f[1:] {
		k, v, _ := strings.Cut(kv, "=")
		m.Fields[k] = v
	}
	return m, true
}

// Report gathers what a VM's console says about its steps: each step's
// result, each test package's exit status and time, the tests that failed
// in it with their output, and the checks of the scripted steps. Feed it
// every console line, in order.
type Report struct {
	Steps []*StepResult

	step *StepResult
	pkg  *PackageResult
	fail *Failure
	// run is the test of the current run (a run marker), "" outside one;
	// runFails counts the package's failures when it began.
	run      string
	runFails int
	// failIndent is the indentation of the current failure's "--- FAIL"
	// line; its own output is indented deeper. -1 takes any indented line
	// (after a panic).
	failIndent int
}

// StepResult is one step as the VM reported it.
type StepResult struct {
	Name string
	// Ended is whether the step printed its step-end marker.
	Ended bool
	RC    int
	// Secs is the step's time inside the VM.
	Secs     float64
	Packages []*PackageResult
	Checks   []Check
	Notes    []string
	// Wall is the host's time for the whole step (building the image,
	// booting, the tests, power-off); set by whoever ran it.
	Wall time.Duration
	// Err says what went wrong outside the VM's own report (a timeout,
	// qemu failing, no result marker), set by whoever ran it.
	Err string
}

// PackageResult is one test binary's run.
type PackageResult struct {
	Name     string
	Ended    bool
	RC       int
	Secs     float64
	Failures []*Failure
}

// Failure is a failed test (or a panic, or a goroutine leak) with the
// lines it printed.
type Failure struct {
	Test  string
	Lines []string
}

// Check is one verdict of a scripted step.
type Check struct {
	Name    string
	OK      bool
	Message string
}

// maxFailureLines bounds what is kept of one failure's output (the
// console log has all of it).
const maxFailureLines = 200

var (
	failLine = regexp.MustCompile(`^(\s*)--- FAIL: (\S+)`)
	passLine = regexp.MustCompile(`^\s*--- (PASS|SKIP): `)
	fileLine = regexp.MustCompile(`\S+\.go:\d+: `)
)

// Feed takes one console line ("\r" already stripped).
func (r *Report) Feed(line string) {
	if m, ok := ParseMarker(line); ok {
		r.marker(m)
		return
	}
	if r.pkg == nil {
		return
	}
	switch {
	case strings.HasPrefix(line, "panic: "), strings.HasPrefix(line, "fatal error: "):
		r.addFailure(r.inRun("panic"), -1, line)
	case strings.HasPrefix(line, "goleak: "):
		r.addFailure(r.inRun("goleak"), -1, line)
	case failLine.MatchString(line):
		m := failLine.FindStringSubmatch(line)
		r.addFailure(m[2], len(m[1]), "")
	case passLine.MatchString(line), line == "FAIL", line == "PASS", strings.HasPrefix(line, "ok "):
		r.fail = nil
	case r.fail != nil:
		text := strings.TrimSpace(line)
		indent := len(line) - len(strings.TrimLeft(line, " \t"))
		deeper := indent > r.failIndent
		if r.failIndent < 0 {
			deeper = indent > 0
		}
		switch {
		case text == "":
		case !deeper:
			r.fail = nil
		case len(r.fail.Lines) < maxFailureLines:
			r.fail.Lines = append(r.fail.Lines, text)
		}
	}
}

// inRun names a failure that is no test's own after the current run's
// test, when there is one.
func (r *Report) inRun(what string) string {
	if r.run == "" {
		return what
	}
	return r.run + " (" + what + ")"
}

func (r *Report) addFailure(test string, indent int, first string) {
	f := &Failure{Test: test}
	if first != "" {
		f.Lines = append(f.Lines, first)
	}
	r.pkg.Failures = append(r.pkg.Failures, f)
	r.fail, r.failIndent = f, indent
}

func (r *Report) marker(m Marker) {
	name := m.Fields["step"]
	if r.step == nil || r.step.Name != name {
		r.step = r.Step(name)
	}
	s := r.step
	r.fail = nil
	switch m.Kind {
	case "step-end":
		s.Ended, s.RC, s.Secs = true, atoi(m.Fields["rc"]), atof(m.Fields["secs"])
		r.pkg = nil
	case "pkg-begin":
		r.pkg = &PackageResult{Name: m.Fields["pkg"]}
		s.Packages = append(s.Packages, r.pkg)
	case "run":
		r.run = m.Fields["test"]
		if r.pkg != nil {
			r.runFails = len(r.pkg.Failures)
		}
	case "run-end":
		// A run that failed without saying which test (TestMain, a
		// leak check, a crash before the first test) still counts.
		if rc := atoi(m.Fields["rc"]); rc != 0 && r.pkg != nil && len(r.pkg.Failures) == r.runFails {
			r.pkg.Failures = append(r.pkg.Failures, &Failure{Test: m.Fields["test"],
				Lines: []string{fmt.Sprintf("the run exited %d without a --- FAIL line (see the console log)", rc)}})
		}
		r.run = ""
	case "pkg-end":
		p := r.pkg
		if p == nil || p.Name != m.Fields["pkg"] {
			p = &PackageResult{Name: m.Fields["pkg"]}
			s.Packages = append(s.Packages, p)
		}
		p.Ended, p.RC, p.Secs = true, atoi(m.Fields["rc"]), atof(m.Fields["secs"])
		r.pkg, r.run = nil, ""
	case "check":
		s.Checks = append(s.Checks, Check{Name: m.Fields["name"], OK: m.Fields["result"] == "ok", Message: m.Text})
	case "note":
		s.Notes = append(s.Notes, m.Text)
	}
}

// Step returns the result of the named step, adding it if it is new.
func (r *Report) Step(name string) *StepResult {
	for _, s := range r.Steps {
		if s.Name == name {
			return s
		}
	}
	s := &StepResult{Name: name}
	r.Steps = append(r.Steps, s)
	return s
}

// Failed reports whether the step did not pass, and why, in short.
func (s *StepResult) Failed() (bool, string) {
	var why []string
	if s.Err != "" {
		why = append(why, s.Err)
	}
	if !s.Ended && s.Err == "" {
		why = append(why, "no step-end marker: the VM stopped before the step finished")
	}
	for _, p := range s.Packages {
		switch {
		case !p.Ended:
			why = append(why, p.Name+" did not finish")
		case p.RC != 0:
			why = append(why, fmt.Sprintf("%s exit %d", p.Name, p.RC))
		}
	}
	for _, c := range s.Checks {
		if !c.OK {
			why = append(why, "check "+c.Name)
		}
	}
	if s.Ended && s.RC != 0 && len(why) == 0 {
		why = append(why, fmt.Sprintf("rc %d", s.RC))
	}
	return len(why) > 0, strings.Join(why, ", ")
}

// errorWords mark a line as an error rather than a log line: go test's
// text output does not tell t.Error from t.Log, so First goes by them.
var errorWords = regexp.MustCompile(`(?i)error|fail|want|expected|\bgot\b|busy|denied|refused|timed out|timeout|cannot|can't|no such|\bnot\b|panic|invalid|unexpected|missing|leak`)

// First returns the failure's most telling line. go test's output does
// not say which lines came from t.Error or t.Fatal and which from t.Log,
// so it takes, in order: a "cannot run in CI" line; the first file:line
// line that reads like an error (errorWords), leaving out the harness's
// dumps of daemon logs (daemon.go); the first file:line line; the first
// line.
func (f *Failure) First() string {
	for _, l := range f.Lines {
		if strings.Contains(l, "cannot run in CI") {
			return l
		}
	}
	for _, l := range f.Lines {
		if loc := fileLine.FindString(l); loc != "" && !strings.HasPrefix(loc, "daemon.go:") && errorWords.MatchString(strings.TrimPrefix(l, loc)) {
			return l
		}
	}
	for _, l := range f.Lines {
		if fileLine.MatchString(l) {
			return l
		}
	}
	if len(f.Lines) > 0 {
		return f.Lines[0]
	}
	return "(no output)"
}

// Summary writes the report: per step its verdict and time, per package
// its exit and time, each failed test with its first telling line, and
// the checks. A test that failed only through its subtests is left out
// in favour of the subtests.
func (r *Report) Summary(w io.Writer) {
	for _, s := range r.Steps {
		failed, why := s.Failed()
		verdict := "ok"
		if failed {
			verdict = "FAIL: " + why
		}
		fmt.Fprintf(w, "step %-11s %-8s in the VM %-8s %s\n", s.Name, s.Wall.Round(time.Second), fmtSecs(s.Secs), verdict)
		for _, p := range s.Packages {
			state := "ok"
			switch {
			case !p.Ended:
				state = "DID NOT FINISH"
			case p.RC != 0:
				state = fmt.Sprintf("FAIL (exit %d)", p.RC)
			}
			fmt.Fprintf(w, "    %-22s %-8s %s\n", p.Name, fmtSecs(p.Secs), state)
			for _, f := range p.Failures {
				if len(f.Lines) == 0 && hasSubtestFailure(p.Failures, f.Test) {
					continue
				}
				fmt.Fprintf(w, "        %s: %s\n", f.Test, clip(f.First(), 300))
			}
		}
		for _, c := range s.Checks {
			v := "ok  "
			if !c.OK {
				v = "FAIL"
			}
			fmt.Fprintf(w, "    check %-20s %s %s\n", c.Name, v, c.Message)
		}
		for _, n := range s.Notes {
			fmt.Fprintf(w, "    note: %s\n", n)
		}
	}
}

// clip shortens s to n bytes, saying so.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + " …"
}

func hasSubtestFailure(fs []*Failure, test string) bool {
	for _, f := range fs {
		if strings.HasPrefix(f.Test, test+"/") {
			return true
		}
	}
	return false
}

func fmtSecs(s float64) string {
	if s == 0 {
		return "-"
	}
	return (time.Duration(s * float64(time.Second))).Round(time.Second / 10).String()
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

func atof(s string) float64 {
	f, _ := strconv.ParseFloat(s, 64)
	return f
}
