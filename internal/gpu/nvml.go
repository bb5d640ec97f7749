package gpu

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/ids"
)

// NVML error classes the logic must tell apart. The driver maps NVML's
// return codes onto them (errors.Is), keeping the code in the message.
var (
	ErrNVMLUnavailable  = errors.New("NVML not available")
	ErrNVMLNotFound     = errors.New("NVML: not found")
	ErrNVMLNotSupported = errors.New("NVML: not supported")
)

// nvmlError is a failed NVML call: its name, NVML's text and code, and
// the class errors.Is matches (nil when none applies).
type nvmlError struct {
	op, text string
	code     int
	class    error
}

// Error names the call; NVML's text comes from the driver library, so it
// is cleaned like any text from the host before it reaches an error list.
func (e *nvmlError) Error() string {
	return fmt.Sprintf("%s: %s (code %d)", e.op, ids.Clean(e.text, maxErrText), e.code)
}

func (e *nvmlError) Unwrap() error { return e.class }

// nvmlLib is the thin driver over NVML: each method is one NVML call, and
// Init must succeed before any other is called (calling into NVML without
// it kills the process).
type nvmlLib interface {
	Init() error
	Shutdown() error
	DeviceCount() (int, error)
	Device(index int) (nvmlDevice, error)
}

// nvmlDevice is one device handle's calls.
type nvmlDevice interface {
	UUID() (string, error)
	Name() (string, error)
	Memory() (total, used uint64, err error)
	Utilization() (gpuPct uint32, err error)
	Temperature() (celsius uint32, err error)
	Power() (milliwatts uint32, err error)
	ComputeProcesses() ([]nvmlProc, error)
	// ProcessUtilization returns the SM samples newer than sinceUS
	// (microseconds since the epoch).
	ProcessUtilization(sinceUS uint64) ([]nvmlSample, error)
}

type nvmlProc struct {
	PID       uint32
	UsedBytes uint64
}

type nvmlSample struct {
	PID         uint32
	TimestampUS uint64
	SMUtil      uint32
}

// NVML is the NVML backend.
type NVML struct {
	lib nvmlLib
	now func() time.Time

	mu       sync.Mutex
	lastSeen map[int]uint64 // per device index: newest sample timestamp read
	noSMUtil map[int]bool   // devices that do not support per-process SM use
}

// newNVML initialises lib and returns the backend, or the reason it cannot
// be used (ErrNVMLUnavailable wrapped, for example without a driver).
func newNVML(lib nvmlLib) (*NVML, error) {
	if err := lib.Init(); err != nil {
		if errors.Is(err, ErrNVMLUnavailable) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrNVMLUnavailable, err)
	}
	return &NVML{lib: lib, now: time.Now, lastSeen: map[int]uint64{}, noSMUtil: map[int]bool{}}, nil
}

// Name returns "nvml".
func (*NVML) Name() string { return "nvml" }

// Close shuts NVML down.
func (n *NVML) Close() error { return n.lib.Shutdown() }

// Query reads every device and its compute processes. NVML calls cannot
// be interrupted, so ctx only stops the loop between calls; the Sampler's
// deadline keeps a hung call from holding up a pass.
func (n *NVML) Query(ctx context.Context) (Snapshot, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	count, err := n.lib.DeviceCount()
	if err != nil {
		return Snapshot{}, fmt.Errorf("nvml: device count: %w", err)
	}
	var snap Snapshot
	now := uint64(n.now().UnixMicro())
	for i := range count {
		if err := ctx.Err(); err != nil {
			return Snapshot{}, fmt.Errorf("nvml: %w", err)
		}
		dev, err := n.lib.Device(i)
		if err != nil {
			return Snapshot{}, fmt.Errorf("nvml: device %d: %w", i, err)
		}
		g, procs, partial, err := n.device(i, dev, now)
		if err != nil {
			return Snapshot{}, err
		}
		snap.Devices = append(snap.Devices, g)
		snap.Procs = append(snap.Procs, procs...)
		snap.Partial = append(snap.Partial, partial...)
	}
	return snap, nil
}

func (n *NVML) device(i int, dev nvmlDevice, nowUS uint64) (api.GPU, []Process, []string, error) {
	g := api.GPU{Index: i}
	var err error
	if g.UUID, err = dev.UUID(); err != nil {
		return g, nil, nil, fmt.Errorf("nvml: device %d uuid: %w", i, err)
	}
	// The UUID and name are the driver's text, checked and cleaned as
	// nvidia-smi's are (see validUUID and gpuName).
	if err := validUUID(g.UUID); err != nil {
		return g, nil, nil, fmt.Errorf("nvml: device %d uuid %q: %w", i, clip(g.UUID), err)
	}
	var partial []string
	// Device-level values are optional: a GPU that does not report one
	// (ERROR_NOT_SUPPORTED) leaves it nil; any other failure is named.
	note := func(what string, err error) {
		if !errors.Is(err, ErrNVMLNotSupported) {
			partial = append(partial, ids.Clean(fmt.Sprintf("nvml: device %d %s: %v", i, what, err), 2*maxErrText))
		}
	}
	if name, err := dev.Name(); err == nil {
		g.Name = gpuName(name)
	} else {
		note("name", err)
	}
	if total, used, err := dev.Memory(); err == nil {
		g.VRAMTotalBytes, g.VRAMUsedBytes = &total, &used
	} else {
		note("memory", err)
	}
	if u, err := dev.Utilization(); err == nil {
		g.UtilPct = api.Ptr(float64(u))
	} else {
		note("utilization", err)
	}
	if c, err := dev.Temperature(); err == nil {
		g.TempC = api.Ptr(float64(c))
	} else {
		note("temperature", err)
	}
	if mw, err := dev.Power(); err == nil {
		g.PowerW = api.Ptr(float64(mw) / 1000)
	} else {
		note("power", err)
	}

	procs, err := dev.ComputeProcesses()
	if err != nil {
		// Without the process list no worker's VRAM is known: fail, so no
		// worker reads as holding none.
		return g, nil, nil, fmt.Errorf("nvml: device %d compute processes: %w", i, err)
	}
	sm, smErr := n.smUtil(i, dev, nowUS)
	if smErr != nil {
		partial = append(partial, ids.Clean(smErr.Error(), 2*maxErrText))
	}
	out := make([]Process, 0, len(procs))
	for _, p := range procs {
		if p.PID == 0 {
			continue
		}
		used := p.UsedBytes
		pr := Process{PID: int(p.PID), GPUIndex: i, UUID: g.UUID, VRAMBytes: &used}
		if v, ok := sm[p.PID]; ok {
			pr.SMUtilPct = api.Ptr(float64(v))
		}
		out = append(out, pr)
	}
	return g, out, partial, nil
}

// smUtil returns the newest SM sample per pid since the last query.
// ERROR_NOT_FOUND means no process used the SMs in the window: an empty
// answer, whatever the samples slice holds (after processes exit NVML
// returns it together with zeroed samples). ERROR_NOT_SUPPORTED means the
// device never reports it: nil without complaint.
func (n *NVML) smUtil(i int, dev nvmlDevice, nowUS uint64) (map[uint32]uint32, error) {
	if n.noSMUtil[i] {
		return nil, nil
	}
	since := n.lastSeen[i]
	if since == 0 || since > nowUS {
		since = nowUS - uint64(5*time.Second/time.Microsecond)
	}
	samples, err := dev.ProcessUtilization(since)
	switch {
	case errors.Is(err, ErrNVMLNotFound):
		n.lastSeen[i] = nowUS
		return map[uint32]uint32{}, nil
	case errors.Is(err, ErrNVMLNotSupported):
		n.noSMUtil[i] = true
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("nvml: device %d process utilization: %w", i, err)
	}
	out := map[uint32]uint32{}
	newest := map[uint32]uint64{}
	for _, s := range samples {
		if s.PID == 0 || s.TimestampUS == 0 {
			continue
		}
		if s.TimestampUS >= newest[s.PID] {
			newest[s.PID] = s.TimestampUS
			out[s.PID] = s.SMUtil
		}
		n.lastSeen[i] = max(n.lastSeen[i], s.TimestampUS)
	}
	return out, nil
}
