package harness

import (
	"fmt"
	"os"
	"time"

	"github.com/rbee-dev/rbee/internal/procfs"
)

// Usage is what a process has cost so far: its CPU time (user and
// system) and its resident memory now.
type Usage struct {
	CPU time.Duration
	RSS uint64 // bytes
}

// ProcUsage reads pid's usage from /proc, for benchmarks and tests that
// bound what a daemon costs.
func ProcUsage(pid int) (Usage, error) {
	st, err := procfs.Default.Stat(pid)
	if err != nil {
		return Usage{}, fmt.Errorf("usage of pid %d: %w", pid, err)
	}
	tick := procfs.ClockTick()
	return Usage{
		CPU: time.Duration((st.UTime + st.STime) * uint64(time.Second) / tick),
		RSS: uint64(max(st.RSSPages, 0)) * uint64(os.Getpagesize()),
	}, nil
}

// Meter measures a process's CPU share between its start and Read.
type Meter struct {
	pid   int
	at    time.Time
	start Usage
}

// NewMeter starts measuring pid.
func NewMeter(pid int) (*Meter, error) {
	u, err := ProcUsage(pid)
	return &Meter{pid: pid, at: time.Now(), start: u}, err
}

// Read returns the CPU used since NewMeter as a share of one core (1.0 is
// a whole core) and the RSS now.
func (m *Meter) Read() (cores float64, rss uint64, err error) {
	u, err := ProcUsage(m.pid)
	if err != nil {
		return 0, 0, err
	}
	return (u.CPU - m.start.CPU).Seconds() / time.Since(m.at).Seconds(), u.RSS, nil
}
