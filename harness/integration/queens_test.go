//go:build linux

package integration

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/internal/api"
)

// seqAt returns the hive's last applied heartbeat sequence at queen.
func seqAt(t *testing.T, queen *harness.Daemon, hive string) (uint64, error) {
	t.Helper()
	var h api.Hive
	if err := (harness.Client{}).Get(queen.URL+"/v1/hives/"+hive, &h); err != nil {
		return 0, err
	}
	return h.Seq, nil
}

// One hive, two queens. Killing one (kill -9) changes nothing for the
// other, which keeps getting every heartbeat and answers everything; the
// killed one, restarted, has the hive and its workers back within two
// intervals.
func TestTwoQueensOneKilled(t *testing.T) {
	const interval = 500 * time.Millisecond
	qa, qb := harness.StartQueen(t), harness.StartQueen(t)
	hive := harness.StartHive(t, harness.HiveOptions{ID: "h1", Queen: qa.URL, Args: []string{"--queen", qb.URL, "--interval", interval.String()}})
	w := spawn(t, hive, "a", api.SpawnRequest{Args: []string{"--model", "m"}})
	for _, q := range []*harness.Daemon{qa, qb} {
		harness.WaitFor(t, 10*time.Second, func() error {
			if ws := queenWorkers(t, q, ""); len(ws) != 1 {
				return fmt.Errorf("%s lists %d workers", q.Name, len(ws))
			}
			return nil
		})
	}
	qa.Kill()
	before, err := seqAt(t, qb, "h1")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(6 * interval)
	after, err := seqAt(t, qb, "h1")
	if err != nil {
		t.Fatal(err)
	}
	// About one a interval; a sender waiting on the dead queen would show
	// as a gap.
	if after-before < 5 {
		t.Fatalf("the live queen got %d heartbeats in 6 intervals while the other was dead, want about 6", after-before)
	}
	var d api.Decision
	harness.Get(t, qb.URL+"/v1/schedule?model=m", &d)
	if d.Kind != "worker" || d.Worker.ID != w.ID {
		t.Fatalf("the live queen's schedule: %+v", d)
	}
	var info api.HiveInfo
	harness.Get(t, hive.URL+"/v1/info", &info)
	if len(info.Queens) != 2 || info.Queens[0].State != "failing" || info.Queens[1].State != "ok" || info.Queens[0].Failures == 0 {
		t.Fatalf("hive's view of its queens: %+v", info.Queens)
	}
	qa.Restart()
	back := time.Now()
	harness.WaitFor(t, 10*time.Second, func() error {
		if ws := queenWorkers(t, qa, ""); len(ws) != 1 || ws[0].Model == nil {
			return fmt.Errorf("restarted queen lists %+v", ws)
		}
		return nil
	})
	took := time.Since(back)
	t.Logf("the restarted queen had the hive and its worker %v after it listened", took.Round(time.Millisecond))
	if took > 2*interval+300*time.Millisecond {
		t.Errorf("the restarted queen took %v to get the hive back, want within two intervals (%v)", took, 2*interval)
	}
}

// A queen that accepts connections and never answers delays no heartbeat
// to the other queen.
func TestHungQueenDelaysNoOther(t *testing.T) {
	const interval = 300 * time.Millisecond
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hung.Close() })
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := hung.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c) // read nothing, answer nothing
		}
	}()
	qb := harness.StartQueen(t)
	harness.StartHive(t, harness.HiveOptions{ID: "h1", Queen: "http://" + hung.Addr().String(), Args: []string{"--queen", qb.URL, "--interval", interval.String()}})
	harness.WaitFor(t, 10*time.Second, func() error {
		_, err := seqAt(t, qb, "h1")
		return err
	})
	var gaps []time.Duration
	last, _ := seqAt(t, qb, "h1")
	lastAt := time.Now()
	deadline := time.Now().Add(12 * interval)
	for time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		seq, err := seqAt(t, qb, "h1")
		if err != nil {
			t.Fatal(err)
		}
		if seq != last {
			gaps = append(gaps, time.Since(lastAt))
			last, lastAt = seq, time.Now()
		}
	}
	if len(gaps) < 8 {
		t.Fatalf("%d heartbeats at the live queen in 12 intervals while the other hangs", len(gaps))
	}
	for _, g := range gaps {
		if g > 2*interval {
			t.Fatalf("a gap of %v between heartbeats to the live queen (interval %v): the hung queen holds it up; gaps %v", g, interval, gaps)
		}
	}
}
