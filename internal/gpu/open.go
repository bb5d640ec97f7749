package gpu

import (
	"errors"
	"fmt"
	"os/exec"
)

// Modes of --gpu.
const (
	ModeAuto      = "auto"
	ModeNVML      = "nvml"
	ModeNvidiaSMI = "nvidia-smi"
	ModeNone      = "none"
)

// Open returns the backend for mode and a sentence saying why it was
// chosen. auto tries NVML, then nvidia-smi on PATH (or smiPath), then
// none; an explicit mode that cannot work is an error.
func Open(mode, smiPath string) (Backend, string, error) {
	switch mode {
	case ModeAuto, "":
		n, nerr := OpenNVML()
		if nerr == nil {
			return n, "auto: NVML loaded", nil
		}
		path, serr := findSMI(smiPath)
		if serr == nil {
			return &SMI{Path: path}, fmt.Sprintf("auto: NVML unavailable (%v); using %s", nerr, path), nil
		}
		return None{}, fmt.Sprintf("auto: no GPU backend: NVML unavailable (%v); %v", nerr, serr), nil
	case ModeNVML:
		n, err := OpenNVML()
		if err != nil {
			return nil, "", fmt.Errorf("--gpu nvml: %w", err)
		}
		return n, "NVML requested", nil
	case ModeNvidiaSMI:
		path, err := findSMI(smiPath)
		if err != nil {
			return nil, "", fmt.Errorf("--gpu nvidia-smi: %w", err)
		}
		return &SMI{Path: path}, "nvidia-smi requested: " + path, nil
	case ModeNone:
		return None{}, "GPU telemetry off (--gpu none)", nil
	default:
		return nil, "", fmt.Errorf("--gpu %q: want auto, nvml, nvidia-smi or none", mode)
	}
}

func findSMI(path string) (string, error) {
	if path == "" {
		path = "nvidia-smi"
	}
	p, err := exec.LookPath(path)
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return "", fmt.Errorf("nvidia-smi not found (looked for %q)", path)
		}
		return "", fmt.Errorf("nvidia-smi %q: %w", path, err)
	}
	return p, nil
}
