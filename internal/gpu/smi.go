package gpu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/rbee-dev/rbee/internal/ids"
)

// maxOutput bounds what one nvidia-smi run may print before it is cut off.
const maxOutput = 1 << 20

// SMI is the nvidia-smi backend: per query, one --query-gpu, one
// --query-compute-apps and one pmon run, in parallel, never one per worker.
type SMI struct {
	// Path is the nvidia-smi binary.
	Path string
}

// Name returns "nvidia-smi".
func (*SMI) Name() string { return "nvidia-smi" }

// Close does nothing: nvidia-smi holds nothing between runs.
func (*SMI) Close() error { return nil }

// Query runs the three invocations. Failing --query-gpu or
// --query-compute-apps fails the query; a failing pmon only loses the
// per-process SM use, reported in Partial.
func (s *SMI) Query(ctx context.Context) (Snapshot, error) {
	start := time.Now()
	var wg sync.WaitGroup
	var gpuOut, appsOut, pmonOut []byte
	var gpuErr, appsErr, pmonErr error
	wg.Go(func() { gpuOut, gpuErr = s.run(ctx, queryGPUArgs) })
	wg.Go(func() { appsOut, appsErr = s.run(ctx, queryAppsArgs) })
	wg.Go(func() { pmonOut, pmonErr = s.run(ctx, pmonArgs) })
	wg.Wait()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && (gpuErr != nil || appsErr != nil) {
		// One line for the worker's errors, with the configured deadline.
		limit := time.Since(start)
		if d, ok := ctx.Deadline(); ok {
			limit = d.Sub(start)
		}
		return Snapshot{}, fmt.Errorf("nvidia-smi timed out after %s", roundDur(limit))
	}
	if gpuErr != nil {
		return Snapshot{}, gpuErr
	}
	if appsErr != nil {
		return Snapshot{}, appsErr
	}
	devs, err := ParseQueryGPU(gpuOut)
	if err != nil {
		return Snapshot{}, fmt.Errorf("nvidia-smi --query-gpu: unexpected output: %w", err)
	}
	apps, err := parseComputeApps(appsOut)
	if err != nil {
		return Snapshot{}, fmt.Errorf("nvidia-smi --query-compute-apps: unexpected output: %w", err)
	}
	snap := Snapshot{Devices: devs}
	var sm map[[2]int]*float64 // (gpu index, pid) -> SM %
	if pmonErr == nil {
		rows, err := parsePmon(pmonOut)
		if err != nil {
			pmonErr = fmt.Errorf("nvidia-smi pmon: unexpected output: %w", err)
		} else {
			sm = map[[2]int]*float64{}
			for _, r := range rows {
				sm[[2]int{r.gpu, r.pid}] = r.sm
			}
		}
	}
	if pmonErr != nil {
		snap.Partial = append(snap.Partial, pmonErr.Error())
	}
	index := map[string]int{}
	for _, d := range devs {
		index[d.UUID] = d.Index
	}
	for _, a := range apps {
		i, ok := index[a.uuid]
		if !ok {
			// The GPU list and the process list are separate runs; a GPU
			// can only be missing if the output is inconsistent.
			return Snapshot{}, fmt.Errorf("nvidia-smi: process %d on unknown GPU %s", a.pid, a.uuid)
		}
		snap.Procs = append(snap.Procs, Process{PID: a.pid, GPUIndex: i, UUID: a.uuid, VRAMBytes: a.usedBytes, SMUtilPct: sm[[2]int{i, a.pid}]})
	}
	return snap, nil
}

// run runs nvidia-smi with args until ctx is done; then it kills the whole
// process group (a hung nvidia-smi may ignore SIGTERM and have children)
// and reports a timeout, not an exit status.
func (s *SMI) run(ctx context.Context, args []string) ([]byte, error) {
	name := "nvidia-smi " + args[0]
	if strings.HasPrefix(args[0], "--") {
		name, _, _ = strings.Cut(name, "=")
	}
	start := time.Now()
	cmd := exec.CommandContext(ctx, s.Path, args...)
	var stdout, stderr limitedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	setGroup(cmd)
	cmd.Cancel = func() error { return killGroup(cmd) }
	cmd.WaitDelay = 500 * time.Millisecond
	err := cmd.Run()
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return nil, fmt.Errorf("%s timed out after %s", name, roundDur(time.Since(start)))
		}
		return nil, fmt.Errorf("%s: %w", name, ctxErr)
	}
	if err != nil {
		// nvidia-smi's own words go into the workers' and the host's
		// errors, shown in terminals and the dashboard: cleaned like any
		// text from the host.
		msg := ids.Clean(strings.TrimSpace(firstLine(stdout.String()+"\n"+stderr.String())), maxErrText)
		if msg != "" {
			return nil, fmt.Errorf("%s: %v: %s", name, err, msg)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if stdout.cut {
		return nil, fmt.Errorf("%s: output larger than %d bytes", name, maxOutput)
	}
	return stdout.Bytes(), nil
}

func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			return l
		}
	}
	return ""
}

// roundDur rounds a measured duration for messages: "500ms", "2s".
func roundDur(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(10 * time.Millisecond)
}

// limitedBuffer keeps the first maxOutput bytes and notes the rest.
type limitedBuffer struct {
	bytes.Buffer
	cut bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := maxOutput - b.Len(); len(p) > room {
		b.cut = true
		b.Buffer.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return b.Buffer.Write(p)
}
