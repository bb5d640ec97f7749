package launch

import (
	"slices"
	"testing"
)

// The shim's checks that need no privilege, run in process: the shim
// itself runs in a re-executed process that becomes the worker.
func TestSameGroups(t *testing.T) {
	for _, tc := range []struct {
		have []int
		want []uint32
		same bool
	}{
		{nil, nil, true},
		{[]int{65534}, []uint32{65534}, true},
		{[]int{10, 20}, []uint32{20, 10}, true},
		{[]int{10}, []uint32{10, 20}, false},
		{[]int{10, 30}, []uint32{10, 20}, false},
	} {
		if got := sameGroups(tc.have, tc.want); got != tc.same {
			t.Errorf("sameGroups(%v, %v) = %v", tc.have, tc.want, got)
		}
	}
}

func TestMountsBelow(t *testing.T) {
	ms, err := mountsBelow("/proc")
	if err != nil || !slices.Contains(ms, "/proc") {
		t.Fatalf("mounts below /proc: %v %v", ms, err)
	}
	for _, m := range ms {
		if m != "/proc" && !slices.Contains([]string{"/proc/"}, m[:6]) {
			t.Errorf("%s is not below /proc", m)
		}
	}
	if ms, err := mountsBelow("/no/such/mount"); err != nil || len(ms) != 0 {
		t.Fatalf("mounts below a path that is none: %v %v", ms, err)
	}
}
