package httpx

import (
	"strconv"
	"strings"
)

// AcceptsGzip reports whether an Accept-Encoding header value (RFC 9110,
// section 12.5.3) takes gzip: named (or as x-gzip), or covered by "*",
// with a weight above zero. An explicit "gzip;q=0" refuses it even where
// "*" would take it; a malformed weight counts as refusal.
func AcceptsGzip(header string) bool {
	gzip, star := -1.0, -1.0
	for part := range strings.SplitSeq(header, ",") {
		coding, params, _ := strings.Cut(part, ";")
		coding = strings.ToLower(strings.TrimSpace(coding))
		q := 1.0
		for p := range strings.SplitSeq(params, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
			if !ok || !strings.EqualFold(strings.TrimSpace(k), "q") {
				continue
			}
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || !(f >= 0 && f <= 1) { // NaN too
				f = 0
			}
			q = f
		}
		switch coding {
		case "gzip", "x-gzip":
			gzip = max(gzip, q)
		case "*":
			star = max(star, q)
		}
	}
	if gzip >= 0 {
		return gzip > 0
	}
	return star > 0
}
