//go:build linux

package integration

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/internal/api"
)

// A queen and three hives on separate hosts (network namespaces joined by
// veth links). Cutting one hive's link makes it stale, then removed;
// restoring it brings it back without a restart.
func TestMultiHost(t *testing.T) {
	harness.RequireNft(t)
	net := harness.NewNet(t)
	qh := net.NewHost("queen")
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("multi-host-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	queen := harness.StartDaemon(t, harness.DaemonConfig{Name: "queen", Package: "cmd/queen-rbee", Netns: qh.NS,
		Client: qh.Client(), Host: "127.0.0.1",
		Args: []string{"--listen", "0.0.0.0:0", "--token-file", token, "--hive-ttl", "3s"}})
	_, port, _ := splitPort(queen.Addr)
	qc := harness.Client{HTTP: qh.Client(), Token: "multi-host-secret"}

	type hiveHost struct {
		host   *harness.Host
		daemon *harness.Daemon
		qDev   string
	}
	hives := map[string]*hiveHost{}
	for _, name := range []string{"host-1", "host-2", "host-3"} {
		hh := net.NewHost(name)
		qIP, hIP, qDev := net.Link(qh, hh)
		d := harness.StartDaemon(t, harness.DaemonConfig{Name: name, Package: "cmd/rbee-hive", Netns: hh.NS, Client: hh.Client(),
			Args: []string{"--listen", hIP + ":0", "--queen", "http://" + qIP + ":" + port, "--insecure-no-tls", "--hive-id", name, "--token-file", token,
				"--worker-bin-dir", dir, "--interval", "200ms", "--gpu", "none", "--cgroup-parent", harness.CgroupParent(t)}})
		hives[name] = &hiveHost{host: hh, daemon: d, qDev: qDev}
	}
	events := harness.Subscribe(t, queen.URL+"/v1/heartbeats/stream", harness.SSEOptions{Client: qh.Client(),
		Header: map[string][]string{"Authorization": {"Bearer multi-host-secret"}}})
	sessions := map[string]string{}
	harness.WaitFor(t, 10*time.Second, func() error {
		var hs []api.Hive
		if err := qc.Get(queen.URL+"/v1/hives", &hs); err != nil {
			return err
		}
		if len(hs) != 3 {
			return fmt.Errorf("%d hives online", len(hs))
		}
		for _, h := range hs {
			sessions[h.ID] = h.SessionID
		}
		return nil
	})

	// Cut host-2's link: stale after 3 intervals, removed after the TTL.
	cut := hives["host-2"]
	pid := cut.daemon.Pid()
	qh.SetLink(cut.qDev, false)
	_, i := events.WaitFor(5*time.Second, 0, isEvent(api.EventHiveStale, func(d api.HiveGone) bool { return d.HiveID == "host-2" }))
	_, i = events.WaitFor(10*time.Second, i, isEvent(api.EventHiveRemoved, func(d api.HiveGone) bool { return d.HiveID == "host-2" }))
	var hs []api.Hive
	if err := qc.Get(queen.URL+"/v1/hives", &hs); err != nil || len(hs) != 2 {
		t.Fatalf("hives while host-2 is cut off: %+v %v", hs, err)
	}
	for _, h := range hs {
		if h.State != api.HiveStateOnline {
			t.Fatalf("%s is %s while only host-2 was cut", h.ID, h.State)
		}
	}
	// Restore it: back, same session, same process.
	qh.SetLink(cut.qDev, true)
	events.WaitFor(10*time.Second, i, isEvent(api.EventHiveOnline, func(d api.HiveOnline) bool { return d.HiveID == "host-2" }))
	var back api.Hive
	if err := qc.Get(queen.URL+"/v1/hives/host-2", &back); err != nil {
		t.Fatal(err)
	}
	if back.SessionID != sessions["host-2"] || cut.daemon.Pid() != pid {
		t.Fatalf("host-2 came back restarted: session %s (was %s)", back.SessionID, sessions["host-2"])
	}

	for _, hh := range hives {
		hh.daemon.Stop()
	}
	queen.Stop()
}

// A hive whose link drops 15% of its packets (nftables; this kernel has no
// netem, and TCP's retransmissions supply the delay): its heartbeats get
// through late but get through, and the queen (default TTL) never drops it.
func TestLossyLink(t *testing.T) {
	harness.RequireNft(t)
	net := harness.NewNet(t)
	qh, hh := net.NewHost("queen"), net.NewHost("lossy")
	qIP, hIP, _ := net.Link(qh, hh)
	queen := harness.StartDaemon(t, harness.DaemonConfig{Name: "queen", Package: "cmd/queen-rbee", Netns: qh.NS,
		Client: qh.Client(), Args: []string{"--listen", qIP + ":0", "--insecure-no-auth"}})
	dir := t.TempDir()
	hive := harness.StartDaemon(t, harness.DaemonConfig{Name: "lossy", Package: "cmd/rbee-hive", Netns: hh.NS, Client: hh.Client(),
		Args: []string{"--listen", hIP + ":0", "--queen", queen.URL, "--hive-id", "lossy", "--insecure-no-auth",
			"--worker-bin-dir", dir, "--gpu", "none", "--cgroup-parent", harness.CgroupParent(t)}})
	qc := harness.Client{HTTP: qh.Client()}
	events := harness.Subscribe(t, queen.URL+"/v1/heartbeats/stream", harness.SSEOptions{Client: qh.Client()})
	events.WaitType(10*time.Second, 0, api.EventHiveTelemetry)
	var before, after api.Hive
	if err := qc.Get(queen.URL+"/v1/hives/lossy", &before); err != nil {
		t.Fatal(err)
	}
	hh.DropPercent(15)
	time.Sleep(10 * time.Second)
	hh.DropPercent(0)
	if err := qc.Get(queen.URL+"/v1/hives/lossy", &after); err != nil {
		t.Fatalf("the hive is gone after the lossy period: %v", err)
	}
	stale := 0
	for _, e := range events.Events() {
		switch e.Type {
		case api.EventHiveStale:
			stale++
		case api.EventHiveRemoved:
			t.Fatalf("the hive was removed over a lossy link")
		}
	}
	t.Logf("over a link dropping 15%% of packets: %d of about 10 heartbeats applied in 10s, %d stale episodes", after.Seq-before.Seq, stale)
	if after.Seq-before.Seq < 4 || after.SessionID != before.SessionID {
		t.Fatalf("seq %d -> %d: heartbeats do not get through the lossy link", before.Seq, after.Seq)
	}
	hive.Stop()
	queen.Stop()
}

func splitPort(addr string) (string, string, error) {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[:i], addr[i+1:], nil
		}
	}
	return "", "", errors.New("no port in " + addr)
}
