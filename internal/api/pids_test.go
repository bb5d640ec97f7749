package api

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestPIDListUnmarshal(t *testing.T) {
	tests := []struct {
		in   string
		want []int
		err  string
	}{
		{`null`, nil, ""},
		{`[]`, []int{}, ""},
		{`[1, 2 ,3]`, []int{1, 2, 3}, ""},
		{`[-5]`, []int{-5}, ""},
		{`[1.5]`, nil, "not an integer"},
		{`["1"]`, nil, "not an integer"},
		{`[[1,2]]`, nil, "not an integer"},
		{`{"a":1}`, nil, "array"},
		{`[` + strings.TrimSuffix(strings.Repeat("1,", MaxWorkerPIDs+1), ",") + `]`, nil, "at most"},
	}
	for _, tc := range tests {
		var w struct {
			PIDs PIDList `json:"pids"`
		}
		err := json.Unmarshal([]byte(`{"pids":`+tc.in+`}`), &w)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%.40s: %v, want an error naming %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || len(w.PIDs) != len(tc.want) || (tc.want == nil) != (w.PIDs == nil) {
			t.Errorf("%s = %v, %v; want %v", tc.in, w.PIDs, err, tc.want)
			continue
		}
		for i := range tc.want {
			if w.PIDs[i] != tc.want[i] {
				t.Errorf("%s = %v", tc.in, w.PIDs)
			}
		}
	}
}

func FuzzPIDList(f *testing.F) {
	for _, s := range []string{`[1,2,3]`, `null`, `[]`, `[ 1 , -2 ]`, `[1.0]`, `["x"]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p PIDList
		if err := json.Unmarshal(b, &p); err != nil {
			return
		}
		if len(p) > MaxWorkerPIDs {
			t.Fatalf("%d pids accepted", len(p))
		}
		out, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var q PIDList
		if err := json.Unmarshal(out, &q); err != nil || len(q) != len(p) {
			t.Fatalf("round trip of %s: %v %v", out, q, err)
		}
	})
}
