//go:build linux

package gpu_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/harness/gpufake"
	"github.com/rbee-dev/rbee/internal/gpu"
	"github.com/rbee-dev/rbee/internal/ids"
)

func TestMain(m *testing.M) { harness.Main(m) }

func TestSMIQueryBusy(t *testing.T) {
	fake := harness.FakeNvidiaSMI(t, gpufake.H200Busy())
	snap, err := (&gpu.SMI{Path: fake.Path}).Query(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Devices) != 1 || len(snap.Procs) != 2 || len(snap.Partial) != 0 {
		t.Fatalf("snapshot %+v", snap)
	}
	if p := snap.Procs[0]; p.PID != 670 || *p.VRAMBytes != 3786<<20 || *p.SMUtilPct != 99 {
		t.Fatalf("pid 670: %+v", p)
	}
	if p := snap.Procs[1]; p.PID != 671 || p.SMUtilPct != nil {
		t.Fatalf("pid 671: %+v", p)
	}
	inv := fake.Invocations()
	if len(inv) != 3 {
		t.Fatalf("invocations %q, want exactly query-gpu, query-compute-apps and pmon", inv)
	}
}

func TestSMIFailures(t *testing.T) {
	tests := []struct {
		name string
		sc   func(*gpufake.Scenario)
		want string
	}{
		{"driver gone", func(s *gpufake.Scenario) {
			s.ExitCode = 9
		}, "exit status 9: NVIDIA-SMI has failed"},
		{"no devices", func(s *gpufake.Scenario) { s.NoDevices = true }, "exit status 6: No devices were found"},
		{"garbage", func(s *gpufake.Scenario) { s.Garbage = true }, "unexpected output"},
		// nvidia-smi's own words are quoted in the error, cleaned: they
		// reach workers' errors and terminals.
		{"hostile message", func(s *gpufake.Scenario) {
			s.ExitCode, s.Message = 9, "\x1b]0;pwned\x07NVIDIA-SMI \x1b[2Jhas \u009bfailed \u202e"
		}, "exit status 9: \ufffd]0;pwned\ufffdNVIDIA-SMI"},
		{"hostile name", func(s *gpufake.Scenario) { s.GPUs[0].Name = "\x1b]0;pwned\x07" }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sc := gpufake.H200Busy()
			tc.sc(&sc)
			fake := harness.FakeNvidiaSMI(t, sc)
			snap, err := (&gpu.SMI{Path: fake.Path}).Query(context.Background())
			if tc.want == "" {
				if err != nil || len(snap.Devices) != 1 || ids.ValidText(snap.Devices[0].Name, 1024) != nil {
					t.Fatalf("Query = %+v, %v; want the GPU with its name cleaned", snap.Devices, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Query = %v, want %q", err, tc.want)
			}
			if verr := ids.ValidText(err.Error(), 1024); verr != nil {
				t.Fatalf("error %q: %v", err, verr)
			}
		})
	}
	// pmon alone failing loses only the SM values.
	sc := gpufake.H200Busy()
	sc.Garbage, sc.Only = true, []string{"pmon"}
	fake := harness.FakeNvidiaSMI(t, sc)
	snap, err := (&gpu.SMI{Path: fake.Path}).Query(context.Background())
	if err != nil || len(snap.Partial) != 1 || !strings.Contains(snap.Partial[0], "pmon") || snap.Procs[0].SMUtilPct != nil || *snap.Procs[0].VRAMBytes != 3786<<20 {
		t.Fatalf("pmon garbage: %+v %v", snap, err)
	}
}

// A hung nvidia-smi that ignores SIGTERM and has a hung child is killed
// with its whole process group at the deadline; the pass is not held up,
// and the next pass works once the fake recovers.
func TestSMIHangIsKilled(t *testing.T) {
	sc := gpufake.H200Busy()
	sc.Hang, sc.HangChild = true, true
	fake := harness.FakeNvidiaSMI(t, sc)
	s := gpu.NewSampler(&gpu.SMI{Path: fake.Path}, 500*time.Millisecond)
	defer s.Close()
	start := time.Now()
	_, err := s.Sample(context.Background())
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "timed out after 500ms") {
		t.Fatalf("Sample = %v, want a timeout", err)
	}
	if took > 800*time.Millisecond {
		t.Fatalf("pass took %v with a 500ms deadline", took)
	}
	harness.WaitFor(t, 2*time.Second, func() error {
		if pids := fake.Running(); len(pids) > 0 {
			return fmt.Errorf("fake nvidia-smi processes still alive: %v", pids)
		}
		return nil
	})
	fake.Set(gpufake.H200Busy())
	snap, err := s.Sample(context.Background())
	if err != nil || len(snap.Procs) != 2 {
		t.Fatalf("after recovery: %+v %v", snap, err)
	}
}
