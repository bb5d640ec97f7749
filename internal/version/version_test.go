package version

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestWithVCS(t *testing.T) {
	for _, tc := range []struct {
		settings []debug.BuildSetting
		want     string
	}{
		{nil, "1.2.3"},
		{[]debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}}, "1.2.3+0123456789ab"},
		{[]debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "true"}}, "1.2.3+abc+dirty"},
		{[]debug.BuildSetting{{Key: "vcs.modified", Value: "true"}}, "1.2.3"},
	} {
		if got := withVCS("1.2.3", tc.settings); got != tc.want {
			t.Errorf("withVCS(%v) = %q, want %q", tc.settings, got, tc.want)
		}
	}
	if s := String(); !strings.HasPrefix(s, Base) || String() != s {
		t.Fatalf("String() = %q, want %s first, the same each time", s, Base)
	}
}
