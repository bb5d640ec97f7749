// Package demo runs rbee's demo: a queen, a hive and three test workers on
// this machine, a live view of them, and a clean stop that leaves no
// process or cgroup behind. `go tool mage demo` runs it.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/harness/gpufake"
	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/apiclient"
	"github.com/rbee-dev/rbee/internal/auth"
	"github.com/rbee-dev/rbee/internal/cgroups"
	"github.com/rbee-dev/rbee/internal/cli"
	"github.com/rbee-dev/rbee/internal/procfs"
)

// Config says where the binaries are and how long to run.
type Config struct {
	// BinDir holds queen-rbee, rbee-hive and testworker.
	BinDir string
	// LogDir receives the daemons' and workers' logs.
	LogDir string
	// Duration stops the demo after this long; 0 runs until ctx is done.
	Duration time.Duration
	Out      io.Writer
}

// CgroupParent is the demo hive's cgroup parent, below its own cgroup.
const CgroupParent = "rbee-demo.slice"

// The three workers: different models and loads.
var workers = []struct {
	spec api.SpawnRequest
	args []string
}{
	{api.SpawnRequest{Group: "llm", Instance: "9301", CPULimit: "50%", MemoryLimit: "256Mi"},
		[]string{"--model", "qwen2.5-0.5b", "--port", "9301", "--cpu", "30", "--mem", "64Mi"}},
	{api.SpawnRequest{Group: "llm", Instance: "9302", CPULimit: "150%", MemoryLimit: "512Mi"},
		[]string{"--model", "meta-llama/Llama-3.1-8B-Instruct", "--port", "9302", "--cpu", "90", "--mem", "192Mi", "--io-write", "1Mi"}},
	{api.SpawnRequest{Group: "embed", Instance: "9401", MemoryLimit: "128Mi"},
		[]string{"--served-model-name", "bge-small-en", "--port", "9401", "--cpu", "5", "--mem", "32Mi"}},
}

// Run runs the demo until ctx is done (Ctrl-C) or Duration passes. The
// daemons are started and stopped through the test harness (a Scope),
// from the prebuilt binaries in BinDir.
func Run(ctx context.Context, cfg Config) (err error) {
	out := cfg.Out
	if err := os.MkdirAll(cfg.LogDir, 0o755); err != nil {
		return err
	}
	if err := os.Setenv("RBEE_HARNESS_BIN_DIR", cfg.BinDir); err != nil {
		return err
	}
	s := harness.NewScope("demo")
	defer s.Close()
	defer func() {
		// The harness reports a failure (a daemon that would not start)
		// by panicking out of a Scope.
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	// The queen creates the operator token in a state directory of the
	// demo's own; the hive and the client commands read it there.
	stateDir := filepath.Join(cfg.LogDir, "state")
	start := func(name, pkg string, args ...string) *harness.Daemon {
		f, ferr := os.Create(filepath.Join(cfg.LogDir, name+".log"))
		if ferr != nil {
			panic(ferr)
		}
		s.Cleanup(func() { f.Close() })
		return harness.StartDaemon(s, harness.DaemonConfig{Name: name, Package: pkg, LogFile: f, OwnProcessGroup: true,
			Env: []string{"RBEE_TOKEN="}, Args: append(args, "--state-dir", stateDir)})
	}
	// Two GPUs without a GPU: the repository's fake nvidia-smi, which the
	// hive reads as it reads the real one.
	gpus := harness.FakeNvidiaSMI(s, gpufake.Scenario{GPUs: demoGPUs})
	queen := start("queen", "cmd/queen-rbee", "--listen", "127.0.0.1:0")
	hive := start("hive", "cmd/rbee-hive", "--listen", "127.0.0.1:0", "--queen", queen.URL, "--hive-id", "demo-hive",
		"--cgroup-parent", CgroupParent, "--stop-workers-on-exit", "--stop-grace", "2s", "--worker-log-dir", cfg.LogDir,
		"--gpu", "nvidia-smi", "--nvidia-smi", gpus.Path)
	// The hive stops its workers first, then the queen goes.
	defer stop(out, queen)
	defer stop(out, hive)
	token, err := auth.ReadTokenFile(filepath.Join(stateDir, auth.TokenFileName))
	if err != nil {
		return err
	}
	readTok, err := auth.ReadTokenFile(filepath.Join(stateDir, auth.ReadTokenFileName))
	if err != nil {
		return err
	}
	// The dashboard first: it is what most people open.
	fmt.Fprintf(out, "rbee dashboard: %s/#token=%s\n", queen.URL, readTok)
	hc := &apiclient.Client{Base: hive.URL, Token: token}
	qc := &apiclient.Client{Base: queen.URL, Token: token}
	recs, err := spawnWorkers(ctx, hc, cfg.BinDir, out)
	if err != nil {
		return err
	}
	gpus.Set(gpuScenario(recs))
	fmt.Fprintf(out, banner, queen.URL, hive.URL, cfg.BinDir, cfg.LogDir, stateDir, readTok)
	return watch(ctx, cfg, qc, queen, hive)
}

// banner says what runs and how to reach it: queen URL, hive URL, binary
// directory, log directory, state directory, read-only token.
const banner = `
rbee demo: a queen, a hive and three workers are running on this machine, with two GPUs
that a fake nvidia-smi shows (harness/fakesmi): no GPU needed.
  dashboard     %[1]s/#token=%[6]s   (a read-only token; the fragment never leaves the browser)
  metrics       curl -H "Authorization: Bearer $(cat %[5]s/read-token)" %[1]s/metrics
  queen API     curl -H "Authorization: Bearer $(cat %[5]s/read-token)" %[1]s/v1/workers   (also /v1/hives, /v1/schedule?model=qwen2.5-0.5b)
  a placement   %[3]s/queen-rbee schedule --queen %[1]s --model llama-70b --vram 80Gi
  event stream  curl -N -H "Authorization: Bearer $(cat %[5]s/token)" %[1]s/v1/heartbeats/stream
  hive API      curl -H "Authorization: Bearer $(cat %[5]s/token)" %[2]s/v1/workers   (also /v1/info)
  from a shell  export RBEE_STATE_DIR=%[5]s   # where the demo's token is
                %[3]s/queen-rbee workers --queen %[1]s
                %[3]s/rbee-hive list --hive %[2]s
                %[3]s/queen-rbee top --queen %[1]s     %[3]s/queen-rbee watch --queen %[1]s
  logs          %[4]s
Press Ctrl-C to stop everything.

`

// spawnWorkers starts the demo's workers on the hive, saying first when
// the hive cannot enforce their limits.
func spawnWorkers(ctx context.Context, hc *apiclient.Client, binDir string, out io.Writer) ([]api.Worker, error) {
	var info api.HiveInfo
	if err := hc.Do(ctx, "GET", "/v1/info", nil, &info); err != nil {
		return nil, fmt.Errorf("hive info: %w", err)
	}
	if !info.LimitsEnforced {
		fmt.Fprintf(out, "NOTE: limits are not enforced, workers run as plain processes: %v\n", info.LimitsReason)
	}
	var recs []api.Worker
	for _, w := range workers {
		spec := w.spec
		spec.Binary = filepath.Join(binDir, "testworker")
		spec.Args = w.args
		var rec api.Worker
		if err := hc.Do(ctx, "POST", "/v1/workers", spec, &rec); err != nil {
			return nil, fmt.Errorf("spawn %s: %w", spec.ID(), err)
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// demoGPUs are the demo's two fake GPUs, as nvidia-smi shows H200s.
var demoGPUs = []gpufake.GPU{
	{Index: 0, UUID: "GPU-de300000-0000-4000-8000-000000000000", Name: "NVIDIA H200", MemTotalMiB: 143771, TempC: 41, PowerW: 120},
	{Index: 1, UUID: "GPU-de300000-0000-4000-8000-000000000001", Name: "NVIDIA H200", MemTotalMiB: 143771, TempC: 38, PowerW: 95},
}

// demoVRAM is what each llm worker holds on which GPU, and how busy it
// keeps it: the first GPU 0, the second GPU 1; the embedder none.
var demoVRAM = []struct{ gpu, mib, sm int }{{0, 18 << 10, 62}, {1, 41 << 10, 88}}

// gpuScenario puts the spawned llm workers' processes on the fake GPUs.
func gpuScenario(recs []api.Worker) gpufake.Scenario {
	sc := gpufake.Scenario{GPUs: slices.Clone(demoGPUs)}
	n := 0
	for _, r := range recs {
		if r.Group != "llm" || n >= len(demoVRAM) {
			continue
		}
		v := demoVRAM[n]
		n++
		sm := v.sm
		sc.Procs = append(sc.Procs, gpufake.Proc{PID: r.PID, GPU: v.gpu, Name: "python3", UsedMiB: v.mib, SMPct: &sm})
		g := &sc.GPUs[v.gpu]
		g.MemUsedMiB += v.mib
		g.UtilPct = max(g.UtilPct, v.sm)
		g.PowerW += float64(v.sm) * 6
	}
	return sc
}

// watch shows the queen's workers every second until ctx is done, the
// demo's time is up, or a daemon exits.
func watch(ctx context.Context, cfg Config, qc *apiclient.Client, queen, hive *harness.Daemon) error {
	out := cfg.Out
	var deadline <-chan time.Time
	if cfg.Duration > 0 {
		deadline = time.After(cfg.Duration)
	}
	tty := isTerminal(out)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(out, "\nstopping…")
			return nil
		case <-deadline:
			fmt.Fprintln(out, "\ndemo time is up; stopping…")
			return nil
		case <-tick.C:
		}
		if !queen.Running() || !hive.Running() {
			return errors.New("a daemon exited; see its log in " + cfg.LogDir)
		}
		var ws []api.FleetWorker
		if err := qc.Do(ctx, "GET", "/v1/workers", nil, &ws); err != nil {
			if ctx.Err() != nil {
				continue
			}
			fmt.Fprintf(out, "queen: %v\n", err)
			continue
		}
		view(out, qc.Base, ws, tty)
	}
}

// stop stops a daemon (SIGTERM, then a kill after the harness's wait)
// and says how it ended.
func stop(out io.Writer, d *harness.Daemon) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(out, "%s: %v\n", d.Name, r)
		}
	}()
	if !d.Running() {
		return
	}
	d.Stop()
	fmt.Fprintf(out, "%s exited cleanly\n", d.Name)
}

// view draws the workers as rbee-hive top and queen-rbee top do (one
// renderer), redrawn in place on a terminal.
func view(out io.Writer, source string, ws []api.FleetWorker, tty bool) {
	frame := cli.TopFrame(cli.TopView{Source: source, At: time.Now(), Workers: ws, Fleet: true, Sort: "cpu", Width: 80})
	if tty {
		// Save the cursor and clear below; back to it after, so the next
		// view overwrites this one.
		frame = "\033[s\033[J" + frame + "\033[u"
	}
	fmt.Fprint(out, frame)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Leftovers lists demo workers still running and demo cgroups still
// present, for the final check.
func Leftovers(testworker string) []string {
	var left []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && exe == testworker {
			left = append(left, "process "+e.Name()+" ("+exe+")")
		}
	}
	// The hive ran in this process's cgroups, so its parent is below ours.
	self, _ := procfs.SelfCgroups()
	for ctrl, path := range self {
		dir := filepath.Join(cgroups.DefaultRoot, path, CgroupParent)
		if ctrl != "" {
			dir = filepath.Join(cgroups.DefaultRoot, strings.TrimPrefix(ctrl, "name="), path, CgroupParent)
		}
		if _, err := os.Stat(dir); err == nil {
			left = append(left, "cgroup "+dir)
		}
	}
	return left
}
