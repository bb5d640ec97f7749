// Package demo runs rbee's demo: a queen, a hive and three test workers on
// this machine, a live view of them, and a clean stop that leaves no
// process or cgroup behind. `go tool mage demo` runs it.
package demo

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/auth"
	"github.com/rbee-dev/rbee/internal/cli"
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

// Run runs the demo until ctx is done (Ctrl-C) or Duration passes.
func Run(ctx context.Context, cfg Config) (err error) {
	out := cfg.Out
	if err := os.MkdirAll(cfg.LogDir, 0o755); err != nil {
		return err
	}
	// Both daemons share a state directory of the demo's own: the queen
	// creates the operator token there, the hive and the clients read it.
	stateDir := filepath.Join(cfg.LogDir, "state")
	queen, err := start(cfg, "queen", filepath.Join(cfg.BinDir, "queen-rbee"), "--listen", "127.0.0.1:0", "--state-dir", stateDir)
	if err != nil {
		return err
	}
	defer queen.stop(out)
	hive, err := start(cfg, "hive", filepath.Join(cfg.BinDir, "rbee-hive"),
		"--listen", "127.0.0.1:0", "--queen", queen.url, "--hive-id", "demo-hive", "--cgroup-parent", CgroupParent,
		"--stop-workers-on-exit", "--stop-grace", "2s", "--worker-log-dir", cfg.LogDir, "--state-dir", stateDir)
	if err != nil {
		return err
	}
	defer hive.stop(out) // runs first: the hive stops its workers, then the queen goes
	token, err := auth.ReadTokenFile(filepath.Join(stateDir, auth.TokenFileName))
	if err != nil {
		return err
	}
	hc := &api.Client{Base: hive.url, Token: token}
	qc := &api.Client{Base: queen.url, Token: token}
	var info api.HiveInfo
	if err := hc.Do(ctx, "GET", "/v1/info", nil, &info); err != nil {
		return fmt.Errorf("hive info: %w", err)
	}
	if !info.LimitsEnforced {
		fmt.Fprintf(out, "NOTE: limits are not enforced, workers run as plain processes: %v\n", info.LimitsReason)
	}
	for _, w := range workers {
		spec := w.spec
		spec.Binary = filepath.Join(cfg.BinDir, "testworker")
		spec.Args = w.args
		var rec api.Worker
		if err := hc.Do(ctx, "POST", "/v1/workers", spec, &rec); err != nil {
			return fmt.Errorf("spawn %s: %w", spec.ID(), err)
		}
	}
	fmt.Fprintf(out, `
rbee demo: a queen, a hive and three workers are running on this machine.
  queen API     %[1]s/v1/hives   %[1]s/v1/workers   %[1]s/v1/schedule?model=qwen2.5-0.5b
  event stream  curl -N -H "Authorization: Bearer $(cat %[5]s/token)" %[1]s/v1/heartbeats/stream
  hive API      %[2]s/v1/workers   %[2]s/v1/info
  from a shell  export RBEE_STATE_DIR=%[5]s   # where the demo's token is
                %[3]s/queen-rbee workers --queen %[1]s
                %[3]s/rbee-hive list --hive %[2]s
  logs          %[4]s
Press Ctrl-C to stop everything.

`, queen.url, hive.url, cfg.BinDir, cfg.LogDir, stateDir)

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
		if !queen.alive() || !hive.alive() {
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
		view(out, ws, tty)
	}
}

func view(out io.Writer, ws []api.FleetWorker, tty bool) {
	if tty {
		fmt.Fprint(out, "\033[s\033[J") // save the cursor, clear below
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "%s\tWORKER\tSTATE\tMODEL\tCPU%%\tLIMIT\tRSS\tWRITE/s\tUPTIME\n", time.Now().Format("15:04:05"))
	for _, w := range ws {
		limit := "-"
		if w.CPULimitPct != nil {
			limit = fmt.Sprintf("%.0f%%", *w.CPULimitPct)
		}
		var wr *uint64
		if w.IOWriteBps != nil {
			v := uint64(*w.IOWriteBps)
			wr = &v
		}
		fmt.Fprintf(tw, "\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", w.ID, w.State, cli.Str(w.Model), cli.Pct(w.CPUPct), limit,
			cli.Bytes(w.MemRSSBytes), cli.Bytes(wr), cli.Secs(w.UptimeS))
	}
	tw.Flush()
	if tty {
		fmt.Fprint(out, "\033[u") // back to the saved cursor: the next view overwrites this one
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

type daemon struct {
	name string
	cmd  *exec.Cmd
	url  string
	done chan struct{}
	err  error
}

var listening = regexp.MustCompile(`listening on ([^\s"]+)`)

// start runs a daemon in its own process group (so the terminal's Ctrl-C
// reaches only the demo, which stops the daemons in order), logging to a
// file, and waits for its address and /healthz.
func start(cfg Config, name, bin string, args ...string) (*daemon, error) {
	logf, err := os.Create(filepath.Join(cfg.LogDir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = logf, io.MultiWriter(logf, pw)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	d := &daemon{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { d.err = cmd.Wait(); pw.Close(); logf.Close(); close(d.done) }()
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case a := <-addr:
		d.url = "http://" + a
	case <-d.done:
		return nil, fmt.Errorf("%s exited at start (%v); see %s", name, d.err, logf.Name())
	case <-time.After(30 * time.Second):
		d.kill()
		return nil, fmt.Errorf("%s did not start in 30s; see %s", name, logf.Name())
	}
	for i := 0; ; i++ {
		resp, err := http.Get(d.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			return d, nil
		}
		if i > 100 {
			d.kill()
			return nil, fmt.Errorf("%s not healthy: %v", name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (d *daemon) alive() bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

func (d *daemon) kill() {
	_ = d.cmd.Process.Kill()
	<-d.done
}

// stop sends SIGTERM and waits; a daemon that hangs is killed.
func (d *daemon) stop(out io.Writer) {
	if !d.alive() {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		status := "exited cleanly"
		if d.err != nil {
			status = "exited: " + d.err.Error()
		}
		fmt.Fprintf(out, "%s %s\n", d.name, status)
	case <-time.After(4 * time.Second):
		d.kill()
		fmt.Fprintf(out, "%s did not stop in time and was killed\n", d.name)
	}
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
	b, _ := os.ReadFile("/proc/self/cgroup")
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		dir := filepath.Join("/sys/fs/cgroup", parts[2], CgroupParent)
		if parts[1] != "" {
			dir = filepath.Join("/sys/fs/cgroup", strings.Split(strings.TrimPrefix(parts[1], "name="), ",")[0], parts[2], CgroupParent)
		}
		if _, err := os.Stat(dir); err == nil {
			left = append(left, "cgroup "+dir)
		}
	}
	return left
}
