//go:build !linux || !cgo

package gpu

import (
	"fmt"
	"runtime"
)

// OpenNVML fails: this binary was built without NVML (it needs cgo on
// Linux); the nvidia-smi and none backends remain.
func OpenNVML() (*NVML, error) {
	return nil, fmt.Errorf("%w: this build has no NVML support (built for %s without cgo)", ErrNVMLUnavailable, runtime.GOOS)
}
