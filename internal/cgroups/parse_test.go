package cgroups

import (
	"os"
	"reflect"
	"testing"
)

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseKeyedFixtures(t *testing.T) {
	tests := []struct {
		name  string
		file  string
		keys  []string
		want  []uint64
		found uint64
	}{
		{"v2 cpu.stat", "v2/cpu.stat", []string{"usage_usec", "system_usec"}, []uint64{855, 0}, 3},
		{"v2 memory.stat", "v2/memory.stat", []string{"anon", "inactive_file"}, []uint64{12288000, 3072000}, 3},
		{"v2 memory.events", "v2/memory.events", []string{"oom_kill"}, []uint64{2}, 1},
		{"v1 memory.stat", "v1/memory.stat", []string{"rss", "total_rss", "nope"}, []uint64{2265088, 0, 0}, 3},
		{"v1 oom_control", "v1/memory.oom_control", []string{"oom_kill", "under_oom"}, []uint64{0, 0}, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := make([]uint64, len(tc.keys))
			found, err := ParseKeyed(readFixture(t, tc.file), tc.keys, got)
			if err != nil {
				t.Fatal(err)
			}
			if found != tc.found {
				t.Fatalf("found mask %b, want %b", found, tc.found)
			}
			// total_rss is in the real v1 capture; its value varies, so only
			// keys with fixed values are compared.
			for i, k := range tc.keys {
				if k == "total_rss" {
					continue
				}
				if got[i] != tc.want[i] {
					t.Errorf("%s = %d, want %d", k, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestParseKeyedBad(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"negative", "anon -1\n"},
		{"word", "anon lots\n"},
		{"overflow", "anon 99999999999999999999999\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var v [1]uint64
			if _, err := ParseKeyed([]byte(tc.in), []string{"anon"}, v[:]); err == nil {
				t.Fatalf("ParseKeyed(%q) succeeded", tc.in)
			}
		})
	}
	var v [1]uint64
	if f, err := ParseKeyed([]byte("anonymous 5\nanon\n\n 7\n"), []string{"anon"}, v[:]); err != nil || f != 0 {
		t.Fatalf("lookalike keys: found %b, err %v", f, err)
	}
}

func TestParseUint(t *testing.T) {
	tests := []struct {
		in      string
		want    uint64
		ok      bool
		wantErr bool
	}{
		{"237568\n", 237568, true, false},
		{"max\n", 0, false, false},
		{"", 0, false, true},
		{"-1", 0, false, true},
		{"12 34", 0, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			v, ok, err := ParseUint([]byte(tc.in))
			if (err != nil) != tc.wantErr || v != tc.want || ok != tc.ok {
				t.Fatalf("ParseUint(%q) = %d, %v, %v", tc.in, v, ok, err)
			}
		})
	}
	v, _, err := ParseUint(readFixture(t, "v1/cpuacct.usage"))
	if err != nil || v == 0 {
		t.Fatalf("ParseUint(v1 cpuacct.usage) = %d, %v", v, err)
	}
}

func TestParseIOStat(t *testing.T) {
	got, err := ParseIOStat(readFixture(t, "v2/io.stat"))
	if err != nil {
		t.Fatal(err)
	}
	if want := (IOCounters{ReadBytes: 8192 + 4096, WriteBytes: 4194304 + 1048576}); got != want {
		t.Fatalf("ParseIOStat = %+v, want %+v", got, want)
	}
	tests := []struct {
		name    string
		in      string
		want    IOCounters
		wantErr bool
	}{
		{name: "empty (no I/O yet)", in: ""},
		{name: "unknown keys ignored", in: "8:0 rbytes=1 wbytes=2 cost.usage=5\n", want: IOCounters{1, 2}},
		{name: "bad device", in: "sda rbytes=1\n", wantErr: true},
		{name: "not key=value", in: "8:0 rbytes\n", wantErr: true},
		{name: "bad number", in: "8:0 rbytes=x\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseIOStat([]byte(tc.in))
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("ParseIOStat(%q) = %+v, %v", tc.in, got, err)
			}
		})
	}
}

func TestParsePids(t *testing.T) {
	got, err := ParsePids([]byte("12\n7\n\n99\n"), nil)
	if err != nil || !reflect.DeepEqual(got, []int{12, 7, 99}) {
		t.Fatalf("ParsePids = %v, %v", got, err)
	}
	for _, bad := range []string{"0\n", "-3\n", "x\n"} {
		if _, err := ParsePids([]byte(bad), nil); err == nil {
			t.Errorf("ParsePids(%q) succeeded", bad)
		}
	}
}

func TestParseCPUMax(t *testing.T) {
	tests := []struct {
		in      string
		quota   int64
		period  uint64
		ok      bool
		wantErr bool
	}{
		{in: "50000 100000\n", quota: 50000, period: 100000, ok: true},
		{in: "max 100000\n", period: 100000},
		{in: "max", wantErr: true},
		{in: "0 100000", wantErr: true},
		{in: "5 0", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			q, p, ok, err := ParseCPUMax([]byte(tc.in))
			if (err != nil) != tc.wantErr || q != tc.quota || p != tc.period || ok != tc.ok {
				t.Fatalf("ParseCPUMax(%q) = %d, %d, %v, %v", tc.in, q, p, ok, err)
			}
		})
	}
}

func FuzzParseKeyed(f *testing.F) {
	f.Add([]byte("usage_usec 855\nuser_usec 855\n"))
	f.Add([]byte("anon 1\ninactive_file 2"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var v [2]uint64
		_, _ = ParseKeyed(b, []string{"anon", "inactive_file"}, v[:])
	})
}

func FuzzParseIOStat(f *testing.F) {
	f.Add([]byte("254:0 rbytes=8192 wbytes=4194304 rios=2 wios=64 dbytes=0 dios=0\n"))
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = ParseIOStat(b) })
}

func FuzzParsePids(f *testing.F) {
	f.Add([]byte("1\n2\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pids, err := ParsePids(b, nil)
		for _, p := range pids {
			if err == nil && p <= 0 {
				t.Fatalf("non-positive pid %d", p)
			}
		}
	})
}

func FuzzParseCPUMax(f *testing.F) {
	f.Add([]byte("50000 100000"))
	f.Add([]byte("max 100000"))
	f.Fuzz(func(t *testing.T, b []byte) {
		q, p, ok, err := ParseCPUMax(b)
		if err == nil && (p == 0 || ok && q <= 0) {
			t.Fatalf("ParseCPUMax(%q) = %d %d %v", b, q, p, ok)
		}
	})
}

func FuzzParseUint(f *testing.F) {
	f.Add([]byte("237568\n"))
	f.Fuzz(func(t *testing.T, b []byte) { _, _, _ = ParseUint(b) })
}
