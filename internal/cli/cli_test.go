package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
)

func TestFlagsEnvFallback(t *testing.T) {
	t.Setenv("RBEE_TEST_LISTEN", "127.0.0.1:1")
	t.Setenv("RBEE_TEST_INTERVAL", "250ms")
	t.Setenv("RBEE_TEST_FLAG", "true")
	fs := NewFlags("x", "x", "")
	fs.SetOutput(io.Discard)
	listen := fs.String("listen", "RBEE_TEST_LISTEN", "127.0.0.1:7833", "")
	iv := fs.Duration("interval", "RBEE_TEST_INTERVAL", time.Second, "")
	b := fs.Bool("flag", "RBEE_TEST_FLAG", false, "")
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if *listen != "127.0.0.1:1" || *iv != 250*time.Millisecond || !*b {
		t.Fatalf("env not used: %s %v %v", *listen, *iv, *b)
	}
	// A flag beats the environment.
	fs2 := NewFlags("x", "x", "")
	l2 := fs2.String("listen", "RBEE_TEST_LISTEN", "d", "")
	if err := fs2.Parse([]string{"--listen", "127.0.0.1:2"}); err != nil || *l2 != "127.0.0.1:2" {
		t.Fatalf("flag lost to env: %s %v", *l2, err)
	}
}

func TestFlagsBadEnvIsAnError(t *testing.T) {
	t.Setenv("RBEE_TEST_INTERVAL", "soon")
	fs := NewFlags("x", "x", "")
	fs.Duration("interval", "RBEE_TEST_INTERVAL", time.Second, "")
	if err := fs.Parse(nil); err == nil || !strings.Contains(err.Error(), "RBEE_TEST_INTERVAL") {
		t.Fatalf("Parse = %v, want an error naming the variable", err)
	}
}

func TestParseArgs(t *testing.T) {
	mk := func() *Flags {
		f := NewFlags("x", "x", "")
		f.SetOutput(io.Discard)
		f.Bool("json", "", false, "")
		return f
	}
	if err := ParseArgs(mk(), []string{"a"}, 0); !errors.Is(err, ErrUsage) {
		t.Fatalf("extra argument: %v", err)
	}
	if err := ParseArgs(mk(), []string{"--nope"}, 0); !errors.Is(err, ErrUsage) {
		t.Fatalf("unknown flag: %v", err)
	}
	if err := ParseArgs(mk(), []string{"-h"}, 0); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("help: %v", err)
	}
	if err := ParseArgs(mk(), []string{"--json", "id"}, 1); err != nil {
		t.Fatal(err)
	}
	// Flags after the arguments count; after "--" nothing is a flag.
	for _, tc := range []struct {
		args []string
		json bool
		pos  string
	}{
		{[]string{"a", "--json", "b"}, true, "a b"},
		{[]string{"a", "--", "--json", "b"}, false, "a --json b"},
		{[]string{"--json"}, true, ""},
	} {
		f := mk()
		if err := ParseArgs(f, tc.args, -1); err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if got := strings.Join(f.Args(), " "); got != tc.pos || f.Lookup("json").Value.String() != strconv.FormatBool(tc.json) || f.NArg() != len(f.Args()) {
			t.Errorf("%q: args %q json %s; want %q %v", tc.args, got, f.Lookup("json").Value, tc.pos, tc.json)
		}
	}
	// A command line after the flags is the command's own.
	f := mk()
	if err := ParseCommand(f, []string{"--json", "/bin/worker", "--json", "x"}); err != nil || f.NArg() != 3 || f.Arg(1) != "--json" {
		t.Fatalf("ParseCommand: %v, args %q", err, f.Args())
	}
}

func TestFormat(t *testing.T) {
	u := func(v uint64) *uint64 { return &v }
	f := func(v float64) *float64 { return &v }
	model, evil := "qwen", "m\x1b[2J"
	tests := []struct{ got, want string }{
		{Bytes(nil), "-"}, {Bytes(u(512)), "512B"}, {Bytes(u(200 << 20)), "200.0MiB"}, {Bytes(u(3 << 40)), "3.0TiB"},
		{Secs(f(59)), "59s"}, {Secs(f(61)), "1m1s"}, {Secs(f(7200)), "2h0m"}, {Secs(f(90000)), "1d1h"},
		{Pct(nil), "-"}, {Pct(f(12.34)), "12.3"},
		{Str(nil), "-"}, {Str(&model), "qwen"}, {Str(&evil), `"m\x1b[2J"`},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	sig, yes := "SIGKILL", true
	code := 3
	for _, tc := range []struct {
		w    api.Worker
		want string
	}{
		{api.Worker{State: api.StateExited, WorkerExit: api.WorkerExit{OOMKilled: &yes, Signal: &sig}}, "OOM-killed"},
		{api.Worker{State: api.StateExited, WorkerExit: api.WorkerExit{Signal: &sig}}, "killed by SIGKILL"},
		{api.Worker{State: api.StateExited, WorkerExit: api.WorkerExit{ExitCode: &code}}, "exit 3"},
		{api.Worker{State: api.StateReady, Errors: []string{"gpu: x"}}, "gpu: x"},
		{api.Worker{State: api.StateReady, Errors: []string{"\x1b]0;owned\x07"}}, `"\x1b]0;owned\a"`},
	} {
		if got := Note(tc.w); got != tc.want {
			t.Errorf("Note = %q, want %q", got, tc.want)
		}
	}
}

// Whatever a daemon sends reaches the terminal with its control
// characters escaped: the table, the spawn summary and error messages.
func TestHostileTextEscaped(t *testing.T) {
	const esc = "\x1b]0;owned\x07"
	var b strings.Builder
	w := api.Worker{ID: "llm-" + esc, State: api.State(esc), PID: 7, WorkerStatic: api.WorkerStatic{LimitsEnforced: true, Cgroup: "/rbee/" + esc}}
	if err := WorkerTable(&b, []api.FleetWorker{{HiveID: "h" + esc, Worker: w}}, true); err != nil {
		t.Fatal(err)
	}
	b.WriteString(SpawnSummary(w))
	b.WriteString(safeError(fmt.Errorf("queen said: %s\nsecond line", esc)))
	out := b.String()
	if strings.ContainsAny(out, "\x1b\x07") {
		t.Fatalf("control characters reach the terminal:\n%q", out)
	}
	for _, want := range []string{`"h\x1b]0;owned\a"`, `"llm-\x1b]0;owned\a"`, `"/rbee/\x1b]0;owned\a"`, "\nsecond line"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestSuggest(t *testing.T) {
	flags := []string{"memory-limit", "cpu-limit", "instance", "group", "listen", "json"}
	for _, tc := range []struct{ typed, want string }{
		{"memory-limt", "memory-limit"},  // a letter left out
		{"memroy-limit", "memory-limit"}, // two swapped
		{"listn", "listen"},
		{"mem", "memory-limit"}, // a prefix
		{"jsno", "json"},
		{"instanse", "instance"},
		{"frobnicate", ""}, // nothing like it
		{"x", ""},
		{"cpu", "cpu-limit"},
	} {
		if got := Suggest(tc.typed, flags); got != tc.want {
			t.Errorf("Suggest(%q) = %q, want %q", tc.typed, got, tc.want)
		}
	}
}

// A bad command line is one line naming the problem, never the whole
// help; --help goes to the help writer (stdout) and says ErrHelp.
func TestParseWordsErrors(t *testing.T) {
	mk := func(help io.Writer) *Flags {
		f := NewFlags("rbee-hive spawn", "rbee-hive spawn [flags]", "Spawns a worker.")
		f.SetOutput(help)
		f.String("memory-limit", "", "", "memory limit")
		f.Int("tail", "", 10, "lines")
		return f
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--memory-limt", "1Gi"}, "unknown flag --memory-limt: did you mean --memory-limit?"},
		{[]string{"--zzz"}, "unknown flag --zzz (rbee-hive spawn --help lists the flags)"},
		{[]string{"--tail", "x"}, `invalid value "x" for flag --tail`},
		{[]string{"--tail"}, "flag needs an argument: --tail"},
	} {
		var help strings.Builder
		err := mk(&help).Parse(tc.args)
		if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Parse(%q) = %v, want a one-line usage error with %q", tc.args, err, tc.want)
		}
		if help.Len() > 0 {
			t.Errorf("Parse(%q) printed help on an error:\n%s", tc.args, help.String())
		}
	}
	var help strings.Builder
	if err := mk(&help).Parse([]string{"--help"}); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	for _, want := range []string{"Usage: rbee-hive spawn [flags]", "Spawns a worker.", "-memory-limit", "(default 10)"} {
		if !strings.Contains(help.String(), want) {
			t.Errorf("--help lacks %q:\n%s", want, help.String())
		}
	}
}

func TestFlagsGiven(t *testing.T) {
	mk := func() (*Flags, *string) {
		f := NewFlags("x", "x", "")
		return f, f.String("log-dir", "RBEE_TEST_LOG_DIR", "", "")
	}
	f, v := mk()
	if err := f.Parse(nil); err != nil || f.Given("log-dir") {
		t.Fatalf("not given: Given = true (%v)", err)
	}
	f, v = mk()
	if err := f.Parse([]string{"--log-dir", ""}); err != nil || !f.Given("log-dir") || *v != "" {
		t.Fatalf(`--log-dir "": Given false or value %q (%v)`, *v, err)
	}
	t.Setenv("RBEE_TEST_LOG_DIR", "")
	f, _ = mk()
	if err := f.Parse(nil); err != nil || !f.Given("log-dir") {
		t.Fatalf(`RBEE_TEST_LOG_DIR="": Given false (%v)`, err)
	}
}

// Whatever a queen sends, watch's words hold no control character but
// the line breaks of a log tail: a daemon's text must not drive the
// terminal.
func FuzzEventText(f *testing.F) {
	f.Add("worker_removed", []byte(`{"hive_id":"h\u001b]0;x\u0007","worker_id":"llm-1","reason":"exited","signal":"SIGKILL","oom_killed":true,"log_tail":"a\n\u001b[31mb\r\n"}`))
	f.Add("worker_added", []byte(`{"hive_id":"h","worker":{"id":"llm-1","model":"m\u009b","pid":3}}`))
	f.Add("snapshot", []byte(`{"resync":true,"hives":[{"id":"a","workers":[{"id":"x","state":"ready"}]}]}`))
	f.Add("hive_telemetry", []byte(`{"hive_id":"h","node":{"cpu_pct":1,"gpus":[[0,1,2,3,4]]}}`))
	f.Add("queen", []byte(`{"version":"v","uptime_s":1e300}`))
	f.Fuzz(func(t *testing.T, typ string, data []byte) {
		text, ok := EventText(typ, data)
		if !ok {
			return
		}
		for _, r := range text {
			if r != '\n' && (r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0)) {
				t.Fatalf("EventText(%q, %q) = %q: control character %U", typ, data, text, r)
			}
		}
	})
}
