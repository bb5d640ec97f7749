package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Net is a set of network namespaces standing in for hosts, joined by veth
// links on private addresses that exist only inside them. Everything is
// removed when the test ends, also when it fails.
type Net struct {
	t      TB
	prefix string
	links  int
}

// Host is one network namespace.
type Host struct {
	net  *Net
	Name string // as given to NewHost
	NS   string // the namespace's name for ip netns
}

// NewNet prepares namespaces for t (it needs root and iproute2).
func NewNet(t TB) *Net {
	t.Helper()
	RequireIP(t)
	var b [3]byte
	_, _ = rand.Read(b[:])
	return &Net{t: t, prefix: "rb" + hex.EncodeToString(b[:])}
}

func (n *Net) ip(args ...string) {
	n.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		n.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// NewHost makes a namespace with loopback up.
func (n *Net) NewHost(name string) *Host {
	n.t.Helper()
	h := &Host{net: n, Name: name, NS: n.prefix + "-" + name}
	n.ip("netns", "add", h.NS)
	n.t.Cleanup(func() {
		// Killing what still runs inside first lets the namespace go.
		if out, err := exec.Command("ip", "netns", "pids", h.NS).Output(); err == nil {
			for _, p := range strings.Fields(string(out)) {
				var pid int
				if _, err := fmt.Sscan(p, &pid); err == nil {
					_ = unix.Kill(pid, unix.SIGKILL)
				}
			}
		}
		if out, err := exec.Command("ip", "netns", "del", h.NS).CombinedOutput(); err != nil {
			n.t.Errorf("remove netns %s: %v: %s", h.NS, err, out)
		}
	})
	h.Exec("ip", "link", "set", "lo", "up")
	return h
}

// Link joins a and b with a veth pair on 10.77.N.0/24 (a is .1, b is .2)
// and returns their addresses and a's interface, which SetLink takes.
func (n *Net) Link(a, b *Host) (aIP, bIP, aDev string) {
	n.t.Helper()
	n.links++
	i := n.links
	aDev, bDev := fmt.Sprintf("%s%da", n.prefix, i), fmt.Sprintf("%s%db", n.prefix, i)
	n.ip("link", "add", aDev, "netns", a.NS, "type", "veth", "peer", "name", bDev, "netns", b.NS)
	aIP, bIP = fmt.Sprintf("10.77.%d.1", i), fmt.Sprintf("10.77.%d.2", i)
	a.Exec("ip", "addr", "add", aIP+"/24", "dev", aDev)
	b.Exec("ip", "addr", "add", bIP+"/24", "dev", bDev)
	a.Exec("ip", "link", "set", aDev, "up")
	b.Exec("ip", "link", "set", bDev, "up")
	return aIP, bIP, aDev
}

// Exec runs a command inside the namespace and fails the test if it fails.
func (h *Host) Exec(name string, args ...string) {
	h.net.t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		h.net.t.Fatalf("in %s: %s %s: %v: %s", h.Name, name, strings.Join(args, " "), err, out)
	}
}

// SetLink takes the host's interface dev down or up, like pulling and
// replugging a cable.
func (h *Host) SetLink(dev string, up bool) {
	h.net.t.Helper()
	state := "down"
	if up {
		state = "up"
	}
	h.Exec("ip", "link", "set", dev, state)
}

// DropPercent makes the host drop pct % of the packets it sends, chosen at
// random (nftables numgen); 0 removes the rule.
func (h *Host) DropPercent(pct int) {
	h.net.t.Helper()
	RequireNft(h.net.t)
	_ = exec.Command("ip", "netns", "exec", h.NS, "nft", "delete", "table", "inet", "rbee_loss").Run()
	if pct <= 0 {
		return
	}
	h.Exec("nft", "add", "table", "inet", "rbee_loss")
	h.Exec("nft", "add", "chain", "inet", "rbee_loss", "out", "{ type filter hook output priority 0; }")
	h.Exec("nft", "add", "rule", "inet", "rbee_loss", "out", "numgen", "random", "mod", "100", "<", fmt.Sprint(pct), "drop")
}

// Client returns an HTTP client whose connections are made inside the
// host's namespace, so the test can talk to daemons there; it sends the
// harness Token.
func (h *Host) Client() *http.Client {
	return WithToken(&http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var conn net.Conn
			err := inNetns(h.NS, func() error {
				var err error
				conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return conn, err
		}},
	}, Token)
}

// inNetns runs f on a thread switched into namespace ns. The socket a dial
// creates there stays in ns after the thread switches back.
func inNetns(ns string, f func() error) error {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	target, err := os.Open("/var/run/netns/" + ns)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns %s: %w", ns, err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns %s: %w", ns, err)
	}
	ferr := f()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: it dies with this goroutine instead of
		// running other goroutines in the wrong namespace.
		return fmt.Errorf("setns back: %w", err)
	}
	runtime.UnlockOSThread()
	return ferr
}
