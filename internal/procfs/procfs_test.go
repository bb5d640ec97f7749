package procfs

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// fields 3.. after comm: state ppid pgrp session tty tpgid flags minflt
	// cminflt majflt cmajflt utime stime cutime cstime priority nice
	// num_threads itrealvalue starttime vsize rss
	tail := " S 1 100 100 0 -1 4194560 10 0 0 0 42 7 0 0 20 0 1 0 123456 1000000 2048 18446744073709551615"
	tests := []struct {
		name     string
		line     string
		wantComm string
		wantErr  bool
	}{
		{name: "plain", line: "4242 (worker)" + tail, wantComm: "worker"},
		{name: "spaces in comm", line: "4242 (my worker 1)" + tail, wantComm: "my worker 1"},
		{name: "paren in comm", line: "4242 (a) b (c))" + tail, wantComm: "a) b (c)"},
		{name: "only parens", line: "4242 ())))" + tail, wantComm: ")))"},
		{name: "empty comm", line: "4242 ()" + tail, wantComm: ""},
		{name: "no comm", line: "4242 worker" + tail, wantErr: true},
		{name: "truncated", line: "4242 (worker) S 1 100", wantErr: true},
		{name: "bad pid", line: "x (worker)" + tail, wantErr: true},
		{name: "empty", line: "", wantErr: true},
		{name: "bad starttime", line: strings.Replace("4242 (w)"+tail, "123456", "-9", 1), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := ParseStat([]byte(tc.line))
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParseStat(%q) = %+v, want error", tc.line, st)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := Stat{PID: 4242, Comm: tc.wantComm, State: 'S', PPID: 1, UTime: 42, STime: 7, StartTime: 123456, RSSPages: 2048}
			if st != want {
				t.Fatalf("ParseStat = %+v, want %+v", st, want)
			}
		})
	}
}

func TestParseStatRealCapture(t *testing.T) {
	b, err := os.ReadFile("testdata/stat-cat")
	if err != nil {
		t.Fatal(err)
	}
	st, err := ParseStat(b)
	if err != nil {
		t.Fatal(err)
	}
	if st.Comm != "cat" || st.State != 'R' || st.StartTime == 0 {
		t.Fatalf("ParseStat(real capture) = %+v", st)
	}
}

// The library-read files, against a fake /proc tree: host CPU and
// memory, a process's command line and cgroups.
func TestLibraryReads(t *testing.T) {
	root := t.TempDir()
	for _, f := range []string{"stat", "meminfo"} {
		b, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(root, f), string(b))
	}
	os.MkdirAll(filepath.Join(root, "77"), 0o755)
	write(t, filepath.Join(root, "77", "cmdline"), "python3\x00worker.py\x00--model\x00qwen\x00")
	write(t, filepath.Join(root, "77", "cgroup"), "4:memory:/a/b\n3:cpu,cpuacct:/a\n1:name=systemd:/\n0::/unified\n")
	fs := &FS{Root: root}
	ct, err := fs.CPUTimes()
	if err != nil || ct.Total <= ct.Busy || ct.Busy <= 0 {
		t.Fatalf("CPUTimes = %+v, %v", ct, err)
	}
	mi, err := fs.Meminfo()
	if err != nil || mi.Total == 0 || mi.Available == 0 || mi.Available > mi.Total {
		t.Fatalf("Meminfo = %+v, %v", mi, err)
	}
	args, err := fs.Cmdline(77)
	if err != nil || !reflect.DeepEqual(args, []string{"python3", "worker.py", "--model", "qwen"}) {
		t.Fatalf("Cmdline = %q, %v", args, err)
	}
	cgs, err := fs.Cgroups(77)
	want := map[string]string{"memory": "/a/b", "cpu": "/a", "cpuacct": "/a", "name=systemd": "/", "": "/unified"}
	if err != nil || !reflect.DeepEqual(cgs, want) {
		t.Fatalf("Cgroups = %v, %v", cgs, err)
	}
	if _, err := fs.Cmdline(78); err == nil {
		t.Fatal("Cmdline of a missing pid succeeded")
	}
	if self, err := SelfCgroups(); err != nil || len(self) == 0 {
		t.Fatalf("SelfCgroups = %v, %v", self, err)
	}
}

func TestParseIO(t *testing.T) {
	b, err := os.ReadFile("testdata/io")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseIO(b)
	if err != nil || got != (IO{ReadBytes: 8192, WriteBytes: 4194304}) {
		t.Fatalf("ParseIO = %+v, %v", got, err)
	}
	for _, bad := range []string{"", "read_bytes: 1\n", "read_bytes: x\nwrite_bytes: 1\n"} {
		if _, err := ParseIO([]byte(bad)); err == nil {
			t.Errorf("ParseIO(%q) succeeded, want error", bad)
		}
	}
}

func TestStartTimeFromFakeProc(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "77"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Started 900 ticks (9 s at USER_HZ=100) after boot; uptime is 19.5 s.
	stat := "77 (w (x)) S 1 77 77 0 -1 0 0 0 0 0 5 5 0 0 20 0 1 0 900 1 10"
	write(t, filepath.Join(root, "77", "stat"), stat)
	write(t, filepath.Join(root, "uptime"), "19.50 3.00\n")
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	got, ticks, err := (&FS{Root: root}).StartedAt(77, 100, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := now.Add(-10500 * time.Millisecond); !got.Equal(want) || ticks != 900 {
		t.Fatalf("StartedAt = %v, want %v", got, want)
	}
	// With USER_HZ=250 the same 900 ticks are 3.6 s after boot.
	got, _, _ = (&FS{Root: root}).StartedAt(77, 250, now)
	if want := now.Add(-15900 * time.Millisecond); !got.Equal(want) {
		t.Fatalf("StartedAt(tick 250) = %v, want %v", got, want)
	}
	if _, _, err := (&FS{Root: root}).StartedAt(78, 100, now); err == nil {
		t.Fatal("StartedAt of a missing pid succeeded")
	}
}

func TestStartedAtOfSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no procfs on this platform: /proc/self/stat is missing")
	}
	now := time.Now()
	got, _, err := Default.StartedAt(os.Getpid(), ClockTick(), now)
	if err != nil {
		t.Fatal(err)
	}
	// This test binary started before now and, surely, within the hour.
	if got.After(now) || now.Sub(got) > time.Hour {
		t.Fatalf("StartedAt(self) = %v, now %v", got, now)
	}
}

func TestClockTick(t *testing.T) {
	if tick := ClockTick(); tick == 0 || tick > 10000 {
		t.Fatalf("ClockTick() = %d", tick)
	}
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("4242 (a) b (c)) S 1 100 100 0 -1 4194560 10 0 0 0 42 7 0 0 20 0 1 0 123456 1000000 2048 0"))
	f.Add([]byte("1 () R"))
	f.Add([]byte(")("))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseStat(b)
		if err == nil && st.PID < 0 && !strings.HasPrefix(strings.TrimSpace(string(b)), "-") {
			t.Fatalf("negative pid from %q", b)
		}
	})
}

func FuzzParseIO(f *testing.F) {
	f.Add([]byte("read_bytes: 1\nwrite_bytes: 2\n"))
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = ParseIO(b) })
}

func FuzzParseUptime(f *testing.F) {
	f.Add([]byte("1.5 2.5\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if v, err := ParseUptime(b); err == nil && v < 0 {
			t.Fatalf("negative uptime %v", v)
		}
	})
}
