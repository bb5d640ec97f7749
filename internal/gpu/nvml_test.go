package gpu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// captureDevice is one device of an nvml-*.json capture.
type captureDevice struct {
	Index        int    `json:"index"`
	Name         string `json:"name"`
	UUID         string `json:"uuid"`
	MemTotal     uint64 `json:"mem_total"`
	MemUsed      uint64 `json:"mem_used"`
	GPUUtil      uint32 `json:"gpu_util"`
	TempC        uint32 `json:"temp_c"`
	PowerMW      uint32 `json:"power_mw"`
	ComputeProcs []struct {
		PID  uint32 `json:"pid"`
		Used uint64 `json:"used_gpu_memory_bytes"`
	} `json:"compute_procs"`
	ComputeRet string `json:"compute_procs_ret"`
	ProcUtil   []struct {
		PID uint32 `json:"pid"`
		TS  uint64 `json:"timestamp_us"`
		SM  uint32 `json:"sm_util"`
	} `json:"proc_util"`
	ProcUtilRet string `json:"proc_util_ret"`
}

// fakeLib is nvmlLib over captured or hand-made devices; its return codes
// use the capture's spelling ("Success", "Not Found", "Not Supported").
type fakeLib struct {
	initErr error
	devs    []*fakeDev
	inited  bool
}

type fakeDev struct {
	d        captureDevice
	powerErr error
	since    []uint64 // ProcessUtilization arguments seen
}

func retErr(op, ret string) error {
	switch ret {
	case "", "Success":
		return nil
	case "Not Found":
		return fmt.Errorf("%s: %w", op, ErrNVMLNotFound)
	case "Not Supported":
		return fmt.Errorf("%s: %w", op, ErrNVMLNotSupported)
	}
	return fmt.Errorf("%s: %s", op, ret)
}

func (l *fakeLib) Init() error     { l.inited = l.initErr == nil; return l.initErr }
func (l *fakeLib) Shutdown() error { l.inited = false; return nil }
func (l *fakeLib) check() {
	if !l.inited {
		panic("NVML call without a successful Init: the real library would kill the process")
	}
}
func (l *fakeLib) DeviceCount() (int, error) { l.check(); return len(l.devs), nil }
func (l *fakeLib) Device(i int) (nvmlDevice, error) {
	l.check()
	if i >= len(l.devs) {
		return nil, ErrNVMLNotFound
	}
	return l.devs[i], nil
}
func (f *fakeDev) UUID() (string, error)           { return f.d.UUID, nil }
func (f *fakeDev) Name() (string, error)           { return f.d.Name, nil }
func (f *fakeDev) Memory() (uint64, uint64, error) { return f.d.MemTotal, f.d.MemUsed, nil }
func (f *fakeDev) Utilization() (uint32, error)    { return f.d.GPUUtil, nil }
func (f *fakeDev) Temperature() (uint32, error)    { return f.d.TempC, nil }
func (f *fakeDev) Power() (uint32, error)          { return f.d.PowerMW, f.powerErr }
func (f *fakeDev) ComputeProcesses() ([]nvmlProc, error) {
	var out []nvmlProc
	for _, p := range f.d.ComputeProcs {
		out = append(out, nvmlProc{PID: p.PID, UsedBytes: p.Used})
	}
	return out, retErr("procs", f.d.ComputeRet)
}
func (f *fakeDev) ProcessUtilization(since uint64) ([]nvmlSample, error) {
	f.since = append(f.since, since)
	// Like the real call, samples come back even with an error code.
	var out []nvmlSample
	for _, s := range f.d.ProcUtil {
		out = append(out, nvmlSample{PID: s.PID, TimestampUS: s.TS, SMUtil: s.SM})
	}
	return out, retErr("proc_util", f.d.ProcUtilRet)
}

func loadCapture(t *testing.T, name string) *fakeLib {
	t.Helper()
	var c struct {
		Devices []captureDevice `json:"devices"`
	}
	if err := json.Unmarshal(capture(t, name), &c); err != nil {
		t.Fatal(err)
	}
	l := &fakeLib{}
	for _, d := range c.Devices {
		l.devs = append(l.devs, &fakeDev{d: d})
	}
	return l
}

func query(t *testing.T, l *fakeLib) Snapshot {
	t.Helper()
	n, err := newNVML(l)
	if err != nil {
		t.Fatal(err)
	}
	n.now = func() time.Time { return time.UnixMicro(1795774670000000) }
	snap, err := n.Query(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func TestNVMLBusyCapture(t *testing.T) {
	snap := query(t, loadCapture(t, "nvml-busy.json"))
	if len(snap.Devices) != 1 || len(snap.Partial) != 0 {
		t.Fatalf("devices %+v partial %v", snap.Devices, snap.Partial)
	}
	d := snap.Devices[0]
	if d.UUID != h200 || *d.VRAMTotalBytes != 150754820096 || *d.UtilPct != 100 || *d.PowerW != 693.166 || *d.TempC != 59 {
		t.Fatalf("device %+v", d)
	}
	if len(snap.Procs) != 2 {
		t.Fatalf("procs %+v", snap.Procs)
	}
	busy, idle := snap.Procs[0], snap.Procs[1]
	if busy.PID != 670 || *busy.VRAMBytes != 3969908736 || busy.SMUtilPct == nil || *busy.SMUtilPct != 99 {
		t.Fatalf("busy worker %+v", busy)
	}
	// The idle worker is absent from the utilisation samples: no SM value,
	// not a made-up one.
	if idle.PID != 671 || *idle.VRAMBytes != 1652555776 || idle.SMUtilPct != nil {
		t.Fatalf("idle worker %+v", idle)
	}
}

// After the workers exit NVML answers ERROR_NOT_FOUND together with 72
// zeroed samples: they must be ignored, not read as pid 0 at 0 %.
func TestNVMLAfterExitCapture(t *testing.T) {
	l := loadCapture(t, "nvml-after-exit.json")
	if n := len(l.devs[0].d.ProcUtil); n != 72 {
		t.Fatalf("capture has %d samples, want the 72 zeroed ones", n)
	}
	snap := query(t, l)
	if len(snap.Procs) != 0 || len(snap.Partial) != 0 {
		t.Fatalf("procs %+v partial %v, want none", snap.Procs, snap.Partial)
	}
	if *snap.Devices[0].VRAMUsedBytes != 644939776 {
		t.Fatalf("device %+v", snap.Devices[0])
	}
}

func TestNVMLNotSupported(t *testing.T) {
	l := loadCapture(t, "nvml-busy.json")
	l.devs[0].d.ProcUtilRet = "Not Supported"
	l.devs[0].powerErr = fmt.Errorf("power: %w", ErrNVMLNotSupported)
	n, err := newNVML(l)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		snap, err := n.Query(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if snap.Devices[0].PowerW != nil || snap.Procs[0].SMUtilPct != nil || len(snap.Partial) != 0 {
			t.Fatalf("unsupported values must be nil without complaint: %+v %+v %v", snap.Devices[0], snap.Procs[0], snap.Partial)
		}
	}
	if calls := len(l.devs[0].since); calls != 1 {
		t.Fatalf("ProcessUtilization called %d times; once unsupported it is not asked again", calls)
	}
}

func TestNVMLErrorsAreNamed(t *testing.T) {
	l := loadCapture(t, "nvml-busy.json")
	l.devs[0].d.ProcUtilRet = "Unknown Error"
	snap := query(t, l)
	if len(snap.Partial) != 1 || !strings.Contains(snap.Partial[0], "process utilization") || snap.Procs[0].VRAMBytes == nil {
		t.Fatalf("a failed utilisation call must be partial, keeping VRAM: %+v", snap)
	}
	l = loadCapture(t, "nvml-busy.json")
	l.devs[0].d.ComputeRet = "GPU is lost"
	n, _ := newNVML(l)
	if _, err := n.Query(context.Background()); err == nil || !strings.Contains(err.Error(), "GPU is lost") {
		t.Fatalf("a failed process list must fail the query: %v", err)
	}
}

func TestNVMLInitFailureNeverCallsIn(t *testing.T) {
	l := &fakeLib{initErr: errors.New("ERROR_LIBRARY_NOT_FOUND")}
	if _, err := newNVML(l); !errors.Is(err, ErrNVMLUnavailable) {
		t.Fatalf("newNVML = %v, want ErrNVMLUnavailable", err)
	}
}

func TestNVMLMultiGPU(t *testing.T) {
	mk := func(i int, uuid string) *fakeDev {
		d := captureDevice{Index: i, Name: "NVIDIA H100", UUID: uuid, MemTotal: 80 << 30, MemUsed: 30 << 30, GPUUtil: 50, TempC: 40, PowerMW: 300000}
		d.ComputeProcs = append(d.ComputeProcs, struct {
			PID  uint32 `json:"pid"`
			Used uint64 `json:"used_gpu_memory_bytes"`
		}{PID: 100, Used: 20 << 30})
		d.ProcUtil = append(d.ProcUtil, struct {
			PID uint32 `json:"pid"`
			TS  uint64 `json:"timestamp_us"`
			SM  uint32 `json:"sm_util"`
		}{PID: 100, TS: 1795774669000000, SM: uint32(10 * (i + 1))})
		return &fakeDev{d: d}
	}
	l := &fakeLib{devs: []*fakeDev{mk(0, "GPU-a"), mk(1, "GPU-b")}}
	snap := query(t, l)
	if len(snap.Devices) != 2 || len(snap.Procs) != 2 {
		t.Fatalf("snap %+v", snap)
	}
	for i, p := range snap.Procs {
		if p.PID != 100 || p.GPUIndex != i || *p.SMUtilPct != float64(10*(i+1)) || *p.VRAMBytes != 20<<30 {
			t.Fatalf("proc %d: %+v", i, p)
		}
	}
	// The next query asks only for samples newer than those seen.
	n, _ := newNVML(l)
	n.now = func() time.Time { return time.UnixMicro(1795774670000000) }
	_, _ = n.Query(context.Background())
	_, _ = n.Query(context.Background())
	if s := l.devs[0].since; len(s) < 2 || s[len(s)-1] != 1795774669000000 {
		t.Fatalf("since = %v, want the newest seen timestamp", s)
	}
}

// BenchmarkNVMLQuery measures the NVML backend's own logic over the busy
// capture (the driver calls themselves took 20 us to 3 ms each on the H200,
// see testdata/h200-driver-580/nvml-busy.json).
func BenchmarkNVMLQuery(b *testing.B) {
	var c struct {
		Devices []captureDevice `json:"devices"`
	}
	if err := json.Unmarshal(mustRead("nvml-busy.json"), &c); err != nil {
		b.Fatal(err)
	}
	l := &fakeLib{}
	for range 8 {
		l.devs = append(l.devs, &fakeDev{d: c.Devices[0]})
	}
	n, err := newNVML(l)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := n.Query(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}
