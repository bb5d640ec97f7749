package procfs

import (
	"fmt"

	prom "github.com/prometheus/procfs"
)

// The reads that are not on the per-worker hot path (once per pass for
// the host, once per adoption for a worker) go through
// github.com/prometheus/procfs, which node_exporter reads /proc with.

// lib returns the library's view of this FS's root.
func (fs *FS) lib() (prom.FS, error) {
	fs.once.Do(func() { fs.prom, fs.promErr = prom.NewFS(fs.Root) })
	return fs.prom, fs.promErr
}

// CPUTimes are the host's aggregate CPU counters in seconds: Busy is
// everything but idle and iowait.
type CPUTimes struct {
	Busy, Total float64
}

// CPUTimes reads /proc/stat's aggregate cpu line.
func (fs *FS) CPUTimes() (CPUTimes, error) {
	l, err := fs.lib()
	if err != nil {
		return CPUTimes{}, err
	}
	st, err := l.Stat()
	if err != nil {
		return CPUTimes{}, fmt.Errorf("read /proc/stat: %w", err)
	}
	c := st.CPUTotal
	// guest and guest_nice are already counted in user and nice.
	total := c.User + c.Nice + c.System + c.Idle + c.Iowait + c.IRQ + c.SoftIRQ + c.Steal
	return CPUTimes{Busy: total - c.Idle - c.Iowait, Total: total}, nil
}

// Meminfo holds the /proc/meminfo values the hive reports, in bytes.
type Meminfo struct {
	Total, Available uint64
}

// Meminfo reads MemTotal and MemAvailable.
func (fs *FS) Meminfo() (Meminfo, error) {
	l, err := fs.lib()
	if err != nil {
		return Meminfo{}, err
	}
	mi, err := l.Meminfo()
	if err != nil {
		return Meminfo{}, fmt.Errorf("read /proc/meminfo: %w", err)
	}
	if mi.MemTotalBytes == nil || mi.MemAvailableBytes == nil {
		return Meminfo{}, fmt.Errorf("read /proc/meminfo: MemTotal or MemAvailable missing")
	}
	return Meminfo{Total: *mi.MemTotalBytes, Available: *mi.MemAvailableBytes}, nil
}

// Cmdline returns pid's argument vector.
func (fs *FS) Cmdline(pid int) ([]string, error) {
	l, err := fs.lib()
	if err != nil {
		return nil, err
	}
	p, err := l.Proc(pid)
	if err != nil {
		return nil, fmt.Errorf("cmdline of pid %d: %w", pid, err)
	}
	args, err := p.CmdLine()
	if err != nil {
		return nil, fmt.Errorf("cmdline of pid %d: %w", pid, err)
	}
	return args, nil
}

// Cgroups returns pid's cgroups: each v1 controller (and named hierarchy,
// as "name=systemd") to its path, and "" to the v2 path. pid 0 means this
// process.
func (fs *FS) Cgroups(pid int) (map[string]string, error) {
	l, err := fs.lib()
	if err != nil {
		return nil, err
	}
	var p prom.Proc
	if pid == 0 {
		p, err = l.Self()
	} else {
		p, err = l.Proc(pid)
	}
	if err != nil {
		return nil, fmt.Errorf("cgroups of pid %d: %w", pid, err)
	}
	cgs, err := p.Cgroups()
	if err != nil {
		return nil, fmt.Errorf("cgroups of pid %d: %w", pid, err)
	}
	out := map[string]string{}
	for _, c := range cgs {
		if len(c.Controllers) == 0 {
			out[""] = c.Path
		}
		for _, ctrl := range c.Controllers {
			out[ctrl] = c.Path
		}
	}
	return out, nil
}

// SelfCgroups returns this process's cgroups (see FS.Cgroups).
func SelfCgroups() (map[string]string, error) { return Default.Cgroups(0) }
