package ids

import (
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestValidName(t *testing.T) {
	for _, ok := range []string{"llm", "9301", "a.b_c-d", strings.Repeat("x", MaxNameLen)} {
		if err := ValidName(ok); err != nil {
			t.Errorf("ValidName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "a/b", "%2e%2e", "a b", "é", "a\x00", "a\nb", "\u2024\u2024", strings.Repeat("x", MaxNameLen+1)} {
		if err := ValidName(bad); err == nil {
			t.Errorf("ValidName(%q) accepted", bad)
		}
	}
}

func TestValidText(t *testing.T) {
	for _, ok := range []string{"", "qwen2.5-0.5b", "meta-llama/Llama-3.1-8B-Instruct", "模型"} {
		if err := ValidText(ok, 64); err != nil {
			t.Errorf("ValidText(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"a\x1b[2J", "a\nb", "a\x7f", "\xff", "a\u202eb", "a\u0085b", strings.Repeat("x", 65)} {
		if err := ValidText(bad, 64); err == nil {
			t.Errorf("ValidText(%q) accepted", bad)
		}
	}
}

func TestCleanAndSafe(t *testing.T) {
	if got := Clean("ok\x1b[31mred\xff", 64); got != "ok\uFFFD[31mred\uFFFD" {
		t.Fatalf("Clean = %q", got)
	}
	if got := Clean(strings.Repeat("é", 10), 5); got != "éé" {
		t.Fatalf("Clean cut = %q", got)
	}
	if got := Safe("plain"); got != "plain" {
		t.Fatalf("Safe(plain) = %q", got)
	}
	if got := Safe("a\x1b]0;pwned\x07"); got != `"a\x1b]0;pwned\a"` {
		t.Fatalf("Safe(escape) = %q", got)
	}
	if got := Quote(strings.Repeat("x", 100)); !strings.HasSuffix(got, `…"`) || len(got) > 72 {
		t.Fatalf("Quote(long) = %q", got)
	}
}

func FuzzClean(f *testing.F) {
	for _, s := range []string{"", "abc", "a\x1bb", "\xff\xfe", "é\u202e"} {
		f.Add(s, 16)
	}
	f.Fuzz(func(t *testing.T, s string, max int) {
		if max < 0 || max > 1<<16 {
			return
		}
		c := Clean(s, max)
		if len(c) > max && ValidText(s, max) != nil {
			t.Fatalf("Clean(%q, %d) = %q longer than max", s, max, c)
		}
		if !utf8.ValidString(c) {
			t.Fatalf("Clean(%q) = %q not UTF-8", s, c)
		}
		if ValidText(c, len(c)) != nil {
			t.Fatalf("Clean(%q) = %q still holds control characters", s, c)
		}
		if Safe(c) != c {
			t.Fatalf("Safe changed clean text %q", c)
		}
	})
}

func FuzzValidName(f *testing.F) {
	for _, s := range []string{"llm", "..", "a/b", "x.y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidName(s) != nil {
			return
		}
		if s == "." || s == ".." || strings.ContainsAny(s, "/\\\x00 \n") || len(s) > MaxNameLen || s == "" {
			t.Fatalf("ValidName accepted %q", s)
		}
	})
}

func TestValidWorkerID(t *testing.T) {
	long := strings.Repeat("a", MaxNameLen)
	for _, tc := range []struct {
		id   string
		want string // "" when valid
	}{
		{"llm-9301", ""},
		{"embed-b-1", ""},
		{"a-b", ""},
		{"-a--b", ""}, // group "-a" and instance "-b", among other splits
		{long + "-" + long, ""},
		{"", "empty"},
		{"llm", "not <group>-<instance>"},
		{"..-x", "not <group>-<instance>"},
		{"x-..", "not <group>-<instance>"},
		{".-.", "not <group>-<instance>"},
		{"-", "not <group>-<instance>"},
		{"../secret/s", "character '/'"},
		{"..%2Fsecret", "character '%'"},
		{"a-b\x00", "character '\\x00'"},
		{"a-b\n", "character '\\n'"},
		{"a-é", "character 'é'"},
		{long + "-" + long + "x", "longer than"},
		{long + "a-b", "not <group>-<instance>"},
	} {
		err := ValidWorkerID(tc.id)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("ValidWorkerID(%q): %v", tc.id, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("ValidWorkerID(%q): %v, want %q", tc.id, err, tc.want)
		}
	}
}

// FuzzValidWorkerID: an id a route accepts is one file name that stays in
// its directory, and every id WorkerID makes of valid names is accepted.
func FuzzValidWorkerID(f *testing.F) {
	for _, s := range []string{"llm-9301", "..-..", "../etc/passwd", "a-b/../c", ".%2e-x", "x-y.log"} {
		f.Add(s, "llm", "9301")
	}
	f.Fuzz(func(t *testing.T, s, group, instance string) {
		if ValidName(group) == nil && ValidName(instance) == nil {
			if err := ValidWorkerID(WorkerID(group, instance)); err != nil {
				t.Fatalf("WorkerID(%q, %q) refused: %v", group, instance, err)
			}
		}
		if ValidWorkerID(s) != nil {
			return
		}
		if s == "." || s == ".." || strings.ContainsAny(s, "/\\\x00%") || len(s) > MaxWorkerIDLen {
			t.Fatalf("ValidWorkerID accepted %q", s)
		}
		if p := filepath.Join("/logs", s+".log"); filepath.Dir(p) != "/logs" {
			t.Fatalf("ValidWorkerID accepted %q, which leaves its directory as %s", s, p)
		}
	})
}

func TestHiveIDFromHostname(t *testing.T) {
	for _, tc := range []struct{ host, want string }{
		{"gpu-07.example.com", "gpu-07.example.com"},
		{"gpu_node#7", "gpu_node-7"},
		{"höst", "h-st"},
		{"-odd-.", "odd"},
		{strings.Repeat("a", 70), strings.Repeat("a", 64)},
		{strings.Repeat("a", 63) + ".b", strings.Repeat("a", 63)}, // no trailing dot after the cut
		{"(none)", ""},
		{"", ""},
		{"localhost", ""},
		{"###", ""},
	} {
		got, err := HiveIDFromHostname(tc.host)
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("HiveIDFromHostname(%q) = %q, %v; want %q", tc.host, got, err, tc.want)
		}
		if err == nil && ValidHiveID(got) != nil {
			t.Errorf("HiveIDFromHostname(%q) = %q, not a valid id", tc.host, got)
		}
	}
}
