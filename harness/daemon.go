package harness

import (
	"bytes"
	"flag"
	"io"
	"path/filepath"

	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Daemon is a queen-rbee or rbee-hive process started by a test.
type Daemon struct {
	t    TB
	Name string
	// Addr is the address the daemon reported binding ("listening on"),
	// URL the same as http://Addr.
	Addr, URL string

	bin     string
	args    []string
	env     []string
	netns   string
	host    string
	cred    *syscall.Credential
	logFile io.Writer
	pgid    bool
	Client  *http.Client

	mu     sync.Mutex
	cmd    *exec.Cmd
	log    *logBuffer
	exited chan struct{}
	err    error
}

// DaemonConfig says what to start.
type DaemonConfig struct {
	// Name labels the daemon in logs ("queen", "hive-a").
	Name string
	// Package is the main package, "cmd/queen-rbee" or "cmd/rbee-hive".
	Package string
	Args    []string
	Env     []string
	// Netns runs the daemon inside this network namespace (see Net).
	Netns string
	// Client reaches the daemon (default harness.HTTP, which sends the
	// harness Token); a daemon in a namespace needs that host's Client.
	Client *http.Client
	// Host replaces an unspecified bind address (0.0.0.0) in URL.
	Host string
	// Credential runs the daemon as another user (e.g. nobody, to test a
	// hive without cgroup rights).
	Credential *syscall.Credential
	// LogFile, when set, receives a copy of the daemon's output.
	LogFile io.Writer
	// Bin, when set, is the binary to run instead of Package's build (one
	// from BuildAt, say).
	Bin string
	// OwnProcessGroup starts the daemon in a process group of its own, so
	// a terminal's Ctrl-C reaches only the program that started it (which
	// then stops the daemons in order).
	OwnProcessGroup bool
}

var listeningRE = regexp.MustCompile(`listening on ([^\s"]+)`)

// StartDaemon builds (once) and starts a daemon, waits until it reports its
// address and answers /healthz, and registers its stop: a running daemon
// is SIGTERMed, then SIGKILLed, when the test ends, and its log is printed
// if the test failed or ran with -v.
func StartDaemon(t TB, cfg DaemonConfig) *Daemon {
	t.Helper()
	bin := cfg.Bin
	if bin == "" {
		bin = Build(t, cfg.Package)
	}
	d := &Daemon{t: t, Name: cfg.Name, bin: bin, args: cfg.Args, env: cfg.Env,
		netns: cfg.Netns, host: cfg.Host, Client: cfg.Client, cred: cfg.Credential, logFile: cfg.LogFile, pgid: cfg.OwnProcessGroup}
	if d.Client == nil {
		d.Client = HTTP
	}
	// Every daemon gets the harness's operator token and a state
	// directory of the test's own (never /var/lib/rbee); a test's Env
	// comes after, so it can take either away.
	d.env = append([]string{"RBEE_TOKEN=" + Token, "RBEE_STATE_DIR=" + t.TempDir()}, d.env...)
	d.start()
	t.Cleanup(d.cleanup)
	return d
}

func (d *Daemon) start() {
	d.t.Helper()
	cmd := exec.Command(d.bin, d.args...)
	if d.netns != "" {
		// ip execs the daemon in place: the pid, signals and Pdeathsig
		// are the daemon's.
		cmd = exec.Command("ip", append([]string{"netns", "exec", d.netns, d.bin}, d.args...)...)
	}
	cmd.Env = append(os.Environ(), d.env...)
	if dir := coverDir(); dir != "" {
		cmd.Env = append(cmd.Env, "GOCOVERDIR="+dir)
	}
	// Pdeathsig: nothing outlives `go test`, even if it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: d.cred, Setpgid: d.pgid}
	log := &logBuffer{name: d.Name, t: d.t, addr: make(chan string, 1), file: d.logFile}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		d.t.Fatalf("start %s: %v", d.Name, err)
	}
	exited := make(chan struct{})
	d.mu.Lock()
	d.cmd, d.log, d.exited = cmd, log, exited
	d.mu.Unlock()
	go func() {
		err := cmd.Wait()
		d.mu.Lock()
		d.err = err
		d.mu.Unlock()
		close(exited)
	}()
	select {
	case addr := <-log.addr:
		scheme := "http://"
		if slices.Contains(d.args, "--tls-cert") {
			scheme = "https://" // the test's Client must trust the CA
		}
		d.Addr, d.URL = addr, scheme+addr
		if host, port, err := net.SplitHostPort(addr); err == nil && d.host != "" && net.ParseIP(host).IsUnspecified() {
			d.URL = scheme + net.JoinHostPort(d.host, port)
		}
	case <-exited:
		d.t.Fatalf("%s exited before listening: %v\n%s", d.Name, d.exitErr(), log.String())
	case <-time.After(60 * time.Second):
		d.t.Fatalf("%s did not report its address in 60s\n%s", d.Name, log.String())
	}
	WaitFor(d.t, 20*time.Second, func() error {
		resp, err := d.Client.Get(d.URL + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s /healthz: %s", d.Name, resp.Status)
		}
		return nil
	})
}

func (d *Daemon) exitErr() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

// Pid returns the daemon's process id.
func (d *Daemon) Pid() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cmd.Process.Pid
}

// Log returns everything the daemon printed so far.
func (d *Daemon) Log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

// Stop sends SIGTERM and fails the test unless the daemon exits 0 within
// 20 seconds.
func (d *Daemon) Stop() {
	d.t.Helper()
	d.mu.Lock()
	cmd, exited := d.cmd, d.exited
	d.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		d.t.Fatalf("%s did not exit within 20s of SIGTERM\n%s", d.Name, d.Log())
	}
	if err := d.exitErr(); err != nil {
		d.t.Fatalf("%s exited with %v after SIGTERM, want 0\n%s", d.Name, err, d.Log())
	}
}

// Kill SIGKILLs the daemon, as a crash would, and waits for it.
func (d *Daemon) Kill() {
	d.mu.Lock()
	cmd, exited := d.cmd, d.exited
	d.mu.Unlock()
	_ = cmd.Process.Kill()
	<-exited
}

// Restart starts the daemon again with the same flags on the same address
// (after Stop or Kill).
func (d *Daemon) Restart() {
	d.t.Helper()
	select {
	case <-d.exited:
	default:
		d.t.Fatalf("Restart of %s while it runs", d.Name)
	}
	d.args = withFlag(d.args, "--listen", d.Addr)
	old := d.log.String()
	d.start()
	d.log.prefix(old + "---- " + d.Name + " restarted ----\n")
}

// Running reports whether the process is alive.
func (d *Daemon) Running() bool {
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

func (d *Daemon) cleanup() {
	if d.Running() {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(15 * time.Second):
			_ = d.cmd.Process.Kill()
			<-d.exited
		}
	}
	log := d.Log()
	if d.t.Failed() || verbose() {
		d.t.Logf("---- %s log ----\n%s", d.Name, log)
	}
	if d.t.Failed() {
		d.keepLog(log)
	}
}

// keepLog leaves the log of a failed test's daemon as a file under the
// artifact directory (logs/<test>/<daemon>.log), which CI uploads: a log
// cut short in the test output is whole there.
func (d *Daemon) keepLog(log string) {
	dir, err := artifactDir(filepath.Join("logs", strings.ReplaceAll(d.t.Name(), "/", "_")))
	if err == nil {
		// A test may run two daemons of one name (a hive restarted):
		// each keeps a file.
		base := filepath.Join(dir, strings.ReplaceAll(d.Name, "/", "_"))
		path := base + ".log"
		for n := 2; fileExists(path); n++ {
			path = fmt.Sprintf("%s.%d.log", base, n)
		}
		if err = os.WriteFile(path, []byte(log), 0o644); err == nil {
			d.t.Logf("%s log kept in %s", d.Name, path)
			return
		}
	}
	d.t.Logf("keep %s log: %v", d.Name, err)
}

// coverDir is where daemons built with -cover write their counters: the
// test binary's own coverage directory, so `go test -cover` counts what
// the integration tests exercise in the daemons.
func coverDir() string {
	// The coverage target collects the daemons' counters apart, to merge
	// them with the unit profile.
	if d := os.Getenv("RBEE_COVERDIR"); d != "" {
		return d
	}
	if d := os.Getenv("GOCOVERDIR"); d != "" {
		return d
	}
	if f := flag.Lookup("test.gocoverdir"); f != nil {
		return f.Value.String()
	}
	return ""
}

// verbose is testing.Verbose, false where testing's flags are not parsed
// (the harness used outside go test).
func verbose() (v bool) {
	defer func() {
		if recover() != nil {
			v = false
		}
	}()
	return flag.Parsed() && testing.Verbose()
}

// withFlag sets --name value in args, replacing an existing one.
func withFlag(args []string, name, value string) []string {
	out := make([]string, 0, len(args)+2)
	for i := 0; i < len(args); i++ {
		if args[i] == name {
			i++
			continue
		}
		if strings.HasPrefix(args[i], name+"=") {
			continue
		}
		out = append(out, args[i])
	}
	return append(out, name, value)
}

// logBuffer keeps a daemon's output and watches it line by line as it
// arrives: it spots the address the daemon reports, fails the test at
// once on a data race or a panic, and copies everything to file when set.
type logBuffer struct {
	name string
	t    TB
	addr chan string
	file io.Writer

	mu      sync.Mutex
	buf     bytes.Buffer
	partial []byte // the last line, until its newline arrives
	seen    bool
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if l.file != nil {
		_, _ = l.file.Write(p)
	}
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.line(l.partial[:i])
		l.partial = l.partial[i+1:]
	}
	l.partial = append([]byte(nil), l.partial...) // let the consumed lines go
	return len(p), nil
}

// line looks at one complete line of output. Caller holds mu.
func (l *logBuffer) line(b []byte) {
	if !l.seen {
		if m := listeningRE.FindSubmatch(b); m != nil {
			l.seen = true
			l.addr <- string(m[1])
		}
	}
	if bytes.HasPrefix(b, []byte("WARNING: DATA RACE")) || bytes.HasPrefix(b, []byte("panic: ")) || bytes.HasPrefix(b, []byte("fatal error: ")) {
		l.t.Errorf("%s printed %q (its log follows when the test ends)", l.name, b)
	}
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) prefix(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	rest := l.buf.String()
	l.buf.Reset()
	l.buf.WriteString(s + rest)
}

// StartQueen starts a queen on a free loopback port.
func StartQueen(t TB, args ...string) *Daemon {
	t.Helper()
	return StartDaemon(t, DaemonConfig{Name: "queen", Package: "cmd/queen-rbee", Args: append([]string{"--listen", "127.0.0.1:0"}, args...)})
}

// HiveOptions adjusts StartHive.
type HiveOptions struct {
	ID    string   // default: hive-<test name>
	Queen string   // the queen's URL; "" sends no heartbeats
	Args  []string // more flags
	// CgroupParent is the hive's --cgroup-parent; "" gives it a fresh one
	// below the test's cgroup (see CgroupParent).
	CgroupParent string
	Env          []string
	// Client reaches the hive; nil means HTTP (a hive serving TLS needs
	// one that trusts its CA).
	Client *http.Client
}

// StartHive starts a hive on a free loopback port with its own cgroup
// subtree (removed with the test), no GPU backend unless Args say so.
func StartHive(t TB, o HiveOptions) *Daemon {
	t.Helper()
	if o.ID == "" {
		o.ID = "hive-" + sanitize(t.Name())
	}
	if o.CgroupParent == "" {
		o.CgroupParent = CgroupParent(t)
	}
	args := []string{"--listen", "127.0.0.1:0", "--hive-id", o.ID, "--queen", o.Queen, "--cgroup-parent", o.CgroupParent, "--gpu", "none", "--stop-grace", "2s"}
	return StartDaemon(t, DaemonConfig{Name: o.ID, Package: "cmd/rbee-hive", Args: append(args, o.Args...), Env: o.Env, Client: o.Client})
}

// Get fetches url and decodes its JSON into v, failing the test on error.
func Get(t TB, url string, v any) {
	t.Helper()
	if err := (Client{}).Get(url, v); err != nil {
		t.Fatal(err)
	}
}

func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
