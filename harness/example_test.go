package harness_test

import (
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/harness/gpufake"
	"github.com/rbee-dev/rbee/internal/api"
)

func TestMain(m *testing.M) { harness.Main(m) }

// In a test, pass t instead of a Scope.
func ExampleStartQueen() {
	s := harness.NewScope("example")
	defer s.Close()
	queen := harness.StartQueen(s) // port 0; stopped (and its log checked) at Close
	var hives []api.Hive
	harness.Get(s, queen.URL+"/v1/hives", &hives)
	fmt.Println("hives:", len(hives))
	queen.Stop() // SIGTERM, and fail unless it exits 0
	// Output: hives: 0
}

func ExampleSubscribe() {
	s := harness.NewScope("example")
	defer s.Close()
	queen := harness.StartQueen(s)
	events := harness.Subscribe(s, queen.URL+"/v1/heartbeats/stream", harness.SSEOptions{})
	harness.Call(s, "POST", queen.URL+"/v1/hive-heartbeat", api.Heartbeat{HiveID: "gpu-1", SessionID: "a", Seq: 1, Node: api.Node{CPUCores: 8}})
	ev, _ := events.WaitType(5*time.Second, 0, api.EventHiveOnline)
	var d api.HiveOnline
	_ = ev.Decode(&d)
	fmt.Println(ev.Type, d.HiveID)
	// Output: hive_online gpu-1
}

func ExampleFakeNvidiaSMI() {
	s := harness.NewScope("example")
	defer s.Close()
	fake := harness.FakeNvidiaSMI(s, gpufake.H200Busy()) // the captured H200 with two workers
	out, _ := exec.Command(fake.Path, "--query-compute-apps=pid,process_name,used_memory,gpu_uuid", "--format=csv,noheader,nounits").Output()
	fmt.Print(string(out))
	// Output:
	// 670, python3, 3786, GPU-263ebfcc-c477-a4dc-c4c5-bc4f9337309e
	// 671, python3, 1576, GPU-263ebfcc-c477-a4dc-c4c5-bc4f9337309e
}

func ExampleStartFakeQueen() {
	s := harness.NewScope("example")
	defer s.Close()
	fq := harness.StartFakeQueen(s)
	fq.Set(harness.QueenError, 0) // every heartbeat now gets a 500
	hb := api.Heartbeat{HiveID: "h", SessionID: "s", Seq: 1, Node: api.Node{CPUCores: 4}}
	code, _ := harness.Call(s, "POST", fq.URL+"/v1/hive-heartbeat", hb)
	fq.Set(harness.QueenOK, 0)
	harness.Call(s, "POST", fq.URL+"/v1/hive-heartbeat", hb)
	fmt.Println(code, len(fq.Heartbeats()), fq.Attempts())
	// Output: 500 1 2
}

func ExamplePoll() {
	start := time.Now()
	err := harness.Poll(time.Second, func() error {
		if time.Since(start) < 100*time.Millisecond {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	fmt.Println(err)
	// Output: <nil>
}
