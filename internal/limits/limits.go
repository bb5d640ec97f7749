// Package limits parses the CPU and memory limits a worker is spawned with.
//
// CPU limits are written as a percentage of one core ("250%") or as a number
// of cores ("2.5"); memory limits as bytes, optionally with a decimal
// (K, M, G, T) or binary (Ki, Mi, Gi, Ti) suffix. Both parsers reject zero,
// negative, malformed and absurd values with an *Error naming the field.
package limits

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/rbee-dev/rbee/internal/errdefs"
)

const (
	// MinCPUPercent is the smallest CPU limit: the kernel refuses a CFS quota
	// below 1 ms per 100 ms period.
	MinCPUPercent = 1.0
	// MaxCPUPercent bounds a CPU limit at 4096 cores, far beyond any host, so a
	// typo such as "25000000%" is caught instead of silently meaning "no limit".
	MaxCPUPercent = 4096 * 100.0
	// MinMemoryBytes is the smallest memory limit: below 1 MiB no worker can
	// even exec, so such a limit is a typo, not a wish.
	MinMemoryBytes = 1 << 20
	// maxLen bounds the text of a limit; longer input is refused unread.
	maxLen = 64
)

// Error reports a limit that could not be accepted. Field is the request
// field ("cpu_limit", "memory_limit") so API callers can name it.
type Error struct {
	Field  string
	Value  string
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("invalid %s %q: %s", e.Field, e.Value, e.Reason)
}

// Unwrap makes a bad limit an errdefs.ErrInvalid: a 400.
func (e *Error) Unwrap() error { return errdefs.ErrInvalid }

// CPU is a CPU limit in percent of one core; 0 means no limit.
type CPU float64

// Percent returns the limit as percent of one core.
func (c CPU) Percent() float64 { return float64(c) }

// QuotaUS returns the CFS quota in microseconds for the given period, the
// value written to cpu.max (v2) or cpu.cfs_quota_us (v1).
func (c CPU) QuotaUS(periodUS uint64) int64 {
	return int64(math.Round(float64(c) / 100 * float64(periodUS)))
}

// ParseCPU parses a CPU limit. The empty string means no limit (0, nil).
func ParseCPU(field, s string) (CPU, error) {
	if s == "" {
		return 0, nil
	}
	bad := func(reason string) (CPU, error) {
		return 0, &Error{Field: field, Value: truncate(s), Reason: reason}
	}
	if len(s) > maxLen {
		return bad("too long")
	}
	num, pct := strings.CutSuffix(strings.TrimSpace(s), "%")
	v, err := parseDecimal(num)
	if err != nil {
		return bad(`want percent of one core ("250%") or cores ("2.5")`)
	}
	if !pct {
		v *= 100
	}
	switch {
	case v <= 0:
		return bad("must be greater than zero")
	case v < MinCPUPercent:
		return bad(fmt.Sprintf("below the minimum of %g%% of one core", MinCPUPercent))
	case v > MaxCPUPercent:
		return bad(fmt.Sprintf("above the maximum of %g cores", MaxCPUPercent/100))
	}
	return CPU(v), nil
}

var memSuffixes = []struct {
	suffix string
	mult   float64
}{
	// Longest first so "Mi" is not read as "M" followed by junk.
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
	{"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12},
}

// ParseMemory parses a memory limit into bytes. The empty string means no
// limit (0, nil). Decimal suffixes are powers of 1000, binary ones of 1024,
// as in Kubernetes quantities.
func ParseMemory(field, s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	bad := func(reason string) (int64, error) {
		return 0, &Error{Field: field, Value: truncate(s), Reason: reason}
	}
	if len(s) > maxLen {
		return bad("too long")
	}
	num := strings.TrimSpace(s)
	mult := 1.0
	for _, sfx := range memSuffixes {
		if n, ok := strings.CutSuffix(num, sfx.suffix); ok {
			num, mult = n, sfx.mult
			break
		}
	}
	v, err := parseDecimal(num)
	if err != nil {
		return bad("want bytes, optionally with K, M, G, T, Ki, Mi, Gi or Ti")
	}
	b := v * mult
	switch {
	case b <= 0:
		return bad("must be greater than zero")
	case b < MinMemoryBytes:
		return bad("below the minimum of 1Mi")
	case b >= math.MaxInt64/2:
		return bad("too large")
	}
	return int64(b), nil
}

// parseDecimal accepts plain non-exponent decimal numbers ("2", "2.5",
// "-1"); strconv.ParseFloat alone would also take "Inf", "NaN", "1e9" and
// hex, none of which an operator means in a limit.
func parseDecimal(s string) (float64, error) {
	if s == "" {
		return 0, fmt.Errorf("empty number")
	}
	digits := 0
	for i, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == '.':
		case r == '-' && i == 0:
		default:
			return 0, fmt.Errorf("bad character %q", r)
		}
	}
	if digits == 0 {
		return 0, fmt.Errorf("no digits")
	}
	return strconv.ParseFloat(s, 64)
}

func truncate(s string) string {
	if len(s) > maxLen {
		return s[:maxLen] + "…"
	}
	return s
}
