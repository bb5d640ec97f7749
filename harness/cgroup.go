package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/rbee-dev/rbee/internal/cgroups"
)

// RequireLinux skips (fails in CI) off Linux.
func RequireLinux(t TB) {
	t.Helper()
	if runtime.GOOS != "linux" {
		Cannot(t, "needs Linux (cgroups and procfs); this is %s", runtime.GOOS)
	}
}

// RequireRoot skips (fails in CI) unless the test runs as root.
func RequireRoot(t TB) {
	t.Helper()
	RequireLinux(t)
	if os.Geteuid() != 0 {
		Cannot(t, "needs root to create cgroups (euid is %d); run the tests with sudo", os.Geteuid())
	}
}

// RequireCgroups skips (fails in CI) unless the host has cgroup
// controllers this process may create cgroups under, and returns the layout.
func RequireCgroups(t TB) cgroups.Mode {
	t.Helper()
	RequireRoot(t)
	mode := cgroups.Detect(cgroups.DefaultRoot)
	if mode == cgroups.ModeNone {
		Cannot(t, "needs cgroup controllers mounted at %s; none found", cgroups.DefaultRoot)
	}
	return mode
}

// CgroupParent returns a parent cgroup unique to t, and removes it,
// killing every process left in it, when t ends. Use it as
// cgroups.Config.Parent. On cgroup v1 and hybrid hosts it is below this
// test process's own cgroup (per controller). On v2 it is right below the
// mount root, as a hive without systemd places its workers: a test never
// makes its own cgroup delegate controllers, which cgroup v2 forbids
// while the cgroup holds a process (this one, and maybe a shell's).
func CgroupParent(t TB) string {
	t.Helper()
	mode := RequireCgroups(t)
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "rbee-test-" + sanitize(t.Name()) + "-" + hex.EncodeToString(b[:])
	if mode == cgroups.ModeV2 {
		requireRootControllers(t)
		name = "/" + name
	}
	t.Cleanup(func() {
		m, err := cgroups.New(cgroups.Config{Parent: name})
		if err != nil {
			t.Errorf("cgroup cleanup: %v", err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.RemoveAll(ctx); err != nil {
			t.Errorf("cgroup cleanup: %v", err)
		}
	})
	return name
}

// requireRootControllers skips (fails in CI) unless the v2 root offers
// cpu and memory to its children.
func requireRootControllers(t TB) {
	t.Helper()
	b, err := os.ReadFile(cgroups.DefaultRoot + "/cgroup.subtree_control")
	have := strings.Fields(string(b))
	if err != nil || !slices.Contains(have, "cpu") || !slices.Contains(have, "memory") {
		Cannot(t, "needs the cgroup v2 root to offer cpu and memory to its children (%s/cgroup.subtree_control: %q, %v)", cgroups.DefaultRoot, have, err)
	}
}

func sanitize(s string) string {
	s = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
	if len(s) > 40 {
		s = s[:40]
	}
	return s
}

// RequireIP skips (fails in CI) unless iproute2's ip and network
// namespaces are usable, which takes root.
func RequireIP(t TB) {
	t.Helper()
	RequireRoot(t)
	if _, err := exec.LookPath("ip"); err != nil {
		Cannot(t, "needs the ip command (apt-get install iproute2) for network namespaces")
	}
}

// RequireNft skips (fails in CI) unless nft (nftables) is installed; tests
// use it to drop packets on a link.
func RequireNft(t TB) {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		Cannot(t, "needs the nft command (apt-get install nftables) to make a lossy link")
	}
}

// RequireChromium skips (fails in CI) unless a chromium binary is on PATH,
// and returns it.
func RequireChromium(t TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	Cannot(t, "needs chromium for the browser test (apt-get install chromium)")
	return ""
}
