package counter

import "testing"

func TestRate(t *testing.T) {
	tests := []struct {
		prev, cur uint64
		secs      float64
		want      float64
		ok        bool
	}{
		{100, 350, 0.5, 500, true},
		{0, 0, 1, 0, true},
		{350, 100, 1, 0, false}, // reset
		{100, 200, 0, 0, false}, // no time
		{100, 200, -1, 0, false},
	}
	for _, tc := range tests {
		if got, ok := Rate(tc.prev, tc.cur, tc.secs); got != tc.want || ok != tc.ok {
			t.Errorf("Rate(%d, %d, %v) = %v, %v; want %v, %v", tc.prev, tc.cur, tc.secs, got, ok, tc.want, tc.ok)
		}
	}
}

func TestShare(t *testing.T) {
	if got, ok := Share(10, 40, 100, 200); !ok || got != 30 {
		t.Fatalf("Share = %v, %v", got, ok)
	}
	for _, c := range [][4]float64{{10, 40, 200, 200}, {40, 10, 100, 200}, {10, 40, 200, 100}} {
		if _, ok := Share(c[0], c[1], c[2], c[3]); ok {
			t.Errorf("Share%v ok", c)
		}
	}
}
