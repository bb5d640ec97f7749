package httpx

import (
	"strings"
	"testing"
)

func TestAcceptsGzip(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   bool
	}{
		{"", false},
		{"gzip", true},
		{"GZip", true},
		{"x-gzip", true},
		{"gzip, deflate, br, zstd", true}, // chromium
		{"br;q=1.0, gzip;q=0.8, *;q=0.1", true},
		{"deflate, br", false},
		{"identity", false},
		{"*", true},
		{"*;q=0", false},
		{"gzip;q=0", false},
		{"gzip;q=0, *", false}, // named beats the wildcard
		{"*, gzip;q=0.000", false},
		{"gzip;q=0.001", true},
		{"gzip; q=0.5 ", true},
		{"gzip;q=abc", false}, // a weight that is not one refuses
		{"gzip;q=2", false},
		{"gzip;q=NaN, *", false},
		{"gzip;level=1", true},
		{" , ,gzip", true},
	} {
		if got := AcceptsGzip(tc.header); got != tc.want {
			t.Errorf("AcceptsGzip(%q) = %v, want %v", tc.header, got, tc.want)
		}
	}
}

// FuzzAcceptsGzip: any header is answered without a panic, and a header
// that names no gzip and no wildcard never takes it.
func FuzzAcceptsGzip(f *testing.F) {
	for _, s := range []string{"gzip", "gzip;q=0, *", "br;q=1.0, gzip;q=0.8", "*;q=0.5;q=0", ";;,,=;q"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		got := AcceptsGzip(h)
		l := strings.ToLower(h)
		if got && !strings.Contains(l, "gzip") && !strings.Contains(l, "*") {
			t.Fatalf("AcceptsGzip(%q) took gzip, which it does not name", h)
		}
	})
}
