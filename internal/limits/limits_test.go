package limits

import (
	"errors"
	"strings"
	"testing"
)

func TestParseCPU(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    float64
		wantErr string
	}{
		{name: "empty means none", in: "", want: 0},
		{name: "percent", in: "250%", want: 250},
		{name: "cores", in: "2.5", want: 250},
		{name: "one core", in: "1", want: 100},
		{name: "fractional percent", in: "12.5%", want: 12.5},
		{name: "spaces", in: " 50% ", want: 50},
		{name: "zero", in: "0", wantErr: "greater than zero"},
		{name: "zero percent", in: "0%", wantErr: "greater than zero"},
		{name: "negative", in: "-1", wantErr: "greater than zero"},
		{name: "below kernel minimum", in: "0.5%", wantErr: "below the minimum"},
		{name: "absurd", in: "99999999%", wantErr: "above the maximum"},
		{name: "garbage", in: "lots", wantErr: "want percent"},
		{name: "double percent", in: "5%%", wantErr: "want percent"},
		{name: "exponent", in: "1e3", wantErr: "want percent"},
		{name: "infinity", in: "Inf", wantErr: "want percent"},
		{name: "nan", in: "NaN", wantErr: "want percent"},
		{name: "only dot", in: ".", wantErr: "want percent"},
		{name: "too long", in: strings.Repeat("1", 100), wantErr: "too long"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseCPU("cpu_limit", tc.in)
			if tc.wantErr != "" {
				var le *Error
				if !errors.As(err, &le) {
					t.Fatalf("ParseCPU(%q) = %v, %v; want *Error", tc.in, got, err)
				}
				if le.Field != "cpu_limit" || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseCPU(%q) error = %q; want field cpu_limit and %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil || got.Percent() != tc.want {
				t.Fatalf("ParseCPU(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestCPUQuota(t *testing.T) {
	tests := []struct {
		cpu    CPU
		period uint64
		want   int64
	}{
		{20, 100000, 20000},
		{250, 100000, 250000},
		{1, 100000, 1000},
		{150, 50000, 75000},
	}
	for _, tc := range tests {
		if got := tc.cpu.QuotaUS(tc.period); got != tc.want {
			t.Errorf("CPU(%v).QuotaUS(%d) = %d, want %d", tc.cpu, tc.period, got, tc.want)
		}
	}
}

func TestParseMemory(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    int64
		wantErr string
	}{
		{name: "empty means none", in: "", want: 0},
		{name: "bytes", in: "268435456", want: 268435456},
		{name: "Mi", in: "512Mi", want: 512 << 20},
		{name: "Gi", in: "2Gi", want: 2 << 30},
		{name: "Ki", in: "2048Ki", want: 2 << 20},
		{name: "M decimal", in: "200M", want: 200e6},
		{name: "G decimal", in: "1G", want: 1e9},
		{name: "fraction", in: "1.5Gi", want: 3 << 29},
		{name: "zero", in: "0", wantErr: "greater than zero"},
		{name: "negative", in: "-5Mi", wantErr: "greater than zero"},
		{name: "tiny", in: "4096", wantErr: "below the minimum"},
		{name: "unknown suffix", in: "5Xi", wantErr: "want bytes"},
		{name: "lowercase suffix", in: "5mi", wantErr: "want bytes"},
		{name: "suffix only", in: "Gi", wantErr: "want bytes"},
		{name: "huge", in: "99999999999Ti", wantErr: "too large"},
		{name: "exponent", in: "1e9", wantErr: "want bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseMemory("memory_limit", tc.in)
			if tc.wantErr != "" {
				var le *Error
				if !errors.As(err, &le) || le.Field != "memory_limit" || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseMemory(%q) = %v, %v; want *Error with %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseMemory(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func FuzzParseCPU(f *testing.F) {
	for _, s := range []string{"250%", "2.5", "0", "-1", "1e3", "%", "NaN", "0.01"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCPU("cpu_limit", s)
		if err != nil {
			if c != 0 {
				t.Fatalf("error with non-zero value %v", c)
			}
			return
		}
		if s != "" && (c.Percent() < MinCPUPercent || c.Percent() > MaxCPUPercent) {
			t.Fatalf("ParseCPU(%q) = %v out of bounds", s, c)
		}
		if q := c.QuotaUS(100000); s != "" && q < 1000 {
			t.Fatalf("ParseCPU(%q) quota %d below kernel minimum", s, q)
		}
	})
}

func FuzzParseMemory(f *testing.F) {
	for _, s := range []string{"512Mi", "1G", "0", "-1", "1.5Gi", "Ki", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseMemory("memory_limit", s)
		if err != nil {
			return
		}
		if s != "" && b < MinMemoryBytes {
			t.Fatalf("ParseMemory(%q) = %d below minimum", s, b)
		}
	})
}
