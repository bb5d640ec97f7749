package covmerge

import (
	"strings"
	"testing"
)

func TestMergeSumsAndCountsPerPackage(t *testing.T) {
	unit := []byte("mode: atomic\nm/a/x.go:1.1,2.2 3 0\nm/a/x.go:3.1,4.2 2 5\nm/b/y.go:1.1,1.9 4 0\n")
	daemons := []byte("mode: atomic\nm/a/x.go:1.1,2.2 3 7\nm/b/y.go:1.1,1.9 4 0\nm/c/z.go:1.1,1.2 1 1\n")
	p, err := Merge(unit, daemons)
	if err != nil {
		t.Fatal(err)
	}
	want := "mode: atomic\nm/a/x.go:1.1,2.2 3 7\nm/a/x.go:3.1,4.2 2 5\nm/b/y.go:1.1,1.9 4 0\nm/c/z.go:1.1,1.2 1 1\n"
	if got := string(p.Bytes()); got != want {
		t.Fatalf("merged:\n%s\nwant:\n%s", got, want)
	}
	pk := p.PerPackage()
	if pk["m/a"] != (Coverage{5, 5}) || pk["m/b"] != (Coverage{0, 4}) || pk["m/c"].Percent() != 100 {
		t.Fatalf("per package %+v", pk)
	}
}

func TestMergeRefusesGarbage(t *testing.T) {
	for _, bad := range []string{"mode: atomic\nnonsense\n", "mode: atomic\nx.go:1.1,2.2 a 1\n", "mode: count\nx 1 1\n"} {
		if _, err := Merge([]byte(bad)); err == nil {
			t.Errorf("Merge(%q) accepted", bad)
		}
	}
	if _, err := Merge([]byte("mode: atomic\n"), []byte("mode: count\n")); err == nil || !strings.Contains(err.Error(), "mode") {
		t.Errorf("mixed modes: %v", err)
	}
}

func FuzzMerge(f *testing.F) {
	f.Add([]byte("mode: atomic\nm/a/x.go:1.1,2.2 3 0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Merge(b)
		if err != nil {
			return
		}
		// What it writes, it reads back the same.
		q, err := Merge(p.Bytes())
		if err != nil || string(q.Bytes()) != string(p.Bytes()) {
			t.Fatalf("round trip: %v\n%s\n%s", err, p.Bytes(), q.Bytes())
		}
	})
}
