//go:build linux && cgo

package gpu

import (
	"fmt"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/rbee-dev/rbee/internal/ids"
)

// OpenNVML loads libnvidia-ml and initialises it.
func OpenNVML() (*NVML, error) { return newNVML(goNVML{}) }

// nvmlErr maps an NVML return code onto the error classes, keeping its
// text and code.
func nvmlErr(op string, ret nvml.Return) error {
	if ret == nvml.SUCCESS {
		return nil
	}
	e := &nvmlError{op: op, text: nvml.ErrorString(ret), code: int(ret)}
	switch ret {
	case nvml.ERROR_NOT_FOUND:
		e.class = ErrNVMLNotFound
	case nvml.ERROR_NOT_SUPPORTED:
		e.class = ErrNVMLNotSupported
	case nvml.ERROR_LIBRARY_NOT_FOUND, nvml.ERROR_DRIVER_NOT_LOADED:
		e.class = ErrNVMLUnavailable
	}
	return e
}

// goNVML is nvmlLib over go-nvml.
type goNVML struct{}

func (goNVML) Init() (err error) {
	// go-nvml panics when libnvidia-ml cannot be loaded on some versions
	// instead of returning ERROR_LIBRARY_NOT_FOUND.
	// The panic's text is the loader's (dlerror): host text, cleaned like
	// NVML's own (see nvmlError.Error).
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: nvmlInit: %s", ErrNVMLUnavailable, ids.Clean(fmt.Sprint(r), maxErrText))
		}
	}()
	return nvmlErr("nvmlInit", nvml.Init())
}

func (goNVML) Shutdown() error { return nvmlErr("nvmlShutdown", nvml.Shutdown()) }

func (goNVML) DeviceCount() (int, error) {
	n, ret := nvml.DeviceGetCount()
	return n, nvmlErr("nvmlDeviceGetCount", ret)
}

func (goNVML) Device(i int) (nvmlDevice, error) {
	d, ret := nvml.DeviceGetHandleByIndex(i)
	if err := nvmlErr("nvmlDeviceGetHandleByIndex", ret); err != nil {
		return nil, err
	}
	return goDevice{d}, nil
}

type goDevice struct{ d nvml.Device }

func (g goDevice) UUID() (string, error) {
	s, ret := g.d.GetUUID()
	return s, nvmlErr("nvmlDeviceGetUUID", ret)
}

func (g goDevice) Name() (string, error) {
	s, ret := g.d.GetName()
	return s, nvmlErr("nvmlDeviceGetName", ret)
}

func (g goDevice) Memory() (uint64, uint64, error) {
	m, ret := g.d.GetMemoryInfo()
	return m.Total, m.Used, nvmlErr("nvmlDeviceGetMemoryInfo", ret)
}

func (g goDevice) Utilization() (uint32, error) {
	u, ret := g.d.GetUtilizationRates()
	return u.Gpu, nvmlErr("nvmlDeviceGetUtilizationRates", ret)
}

func (g goDevice) Temperature() (uint32, error) {
	t, ret := g.d.GetTemperature(nvml.TEMPERATURE_GPU)
	return t, nvmlErr("nvmlDeviceGetTemperature", ret)
}

func (g goDevice) Power() (uint32, error) {
	p, ret := g.d.GetPowerUsage()
	return p, nvmlErr("nvmlDeviceGetPowerUsage", ret)
}

func (g goDevice) ComputeProcesses() ([]nvmlProc, error) {
	ps, ret := g.d.GetComputeRunningProcesses()
	if err := nvmlErr("nvmlDeviceGetComputeRunningProcesses", ret); err != nil {
		return nil, err
	}
	out := make([]nvmlProc, len(ps))
	for i, p := range ps {
		out[i] = nvmlProc{PID: p.Pid, UsedBytes: p.UsedGpuMemory}
	}
	return out, nil
}

func (g goDevice) ProcessUtilization(since uint64) ([]nvmlSample, error) {
	ss, ret := g.d.GetProcessUtilization(since)
	if err := nvmlErr("nvmlDeviceGetProcessUtilization", ret); err != nil {
		return nil, err
	}
	out := make([]nvmlSample, len(ss))
	for i, s := range ss {
		out[i] = nvmlSample{PID: s.Pid, TimestampUS: s.TimeStamp, SMUtil: s.SmUtil}
	}
	return out, nil
}
