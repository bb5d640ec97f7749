//go:build linux

package launch_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/internal/launch"
)

func TestMain(m *testing.M) { harness.Main(m) }

// run starts argv through the shim with s's other settings and returns
// what it printed.
func run(t *testing.T, s launch.Spec, argv ...string) string {
	t.Helper()
	exe, err := launch.OpenBinary(argv[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer exe.Close()
	out := filepath.Join(t.TempDir(), "out")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s.Exe, s.Argv, s.Stdout, s.Stderr = exe, argv, f, f
	if s.Env == nil {
		s.Env = []string{"PATH=/usr/bin:/bin"}
	}
	cmd, err := launch.Start(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		b, _ := os.ReadFile(out)
		t.Fatalf("%v: %v\n%s", argv, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func status(t *testing.T, out, key string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == key {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s in\n%s", key, out)
	return ""
}

// A worker started as nobody has nobody's ids and no supplementary
// groups, no capability in any set, and no_new_privs; its environment is
// exactly the one given.
func TestStartAsNobody(t *testing.T) {
	harness.RequireRoot(t)
	nobody, err := launch.LookupUser("nobody")
	if err != nil {
		t.Fatal(err)
	}
	out := run(t, launch.Spec{User: nobody, Env: []string{"PATH=/usr/bin:/bin", "ONLY=this"}},
		"/bin/sh", "-c", "cat /proc/self/status; echo ENV; env; echo FDS; ls /proc/self/fd")
	if got := status(t, out, "Uid"); !strings.HasPrefix(got, "65534\t65534\t65534") {
		t.Fatalf("Uid %q", got)
	}
	if got := status(t, out, "Groups"); got != "" && got != "65534" {
		t.Fatalf("supplementary groups %q", got)
	}
	for _, k := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
		if got := status(t, out, k); strings.Trim(got, "0") != "" {
			t.Errorf("%s = %s, want none", k, got)
		}
	}
	if got := status(t, out, "NoNewPrivs"); got != "1" {
		t.Fatalf("NoNewPrivs %q", got)
	}
	env := out[strings.Index(out, "ENV\n")+4 : strings.Index(out, "FDS\n")]
	for _, line := range strings.Split(strings.TrimSpace(env), "\n") {
		if !strings.HasPrefix(line, "PATH=") && line != "ONLY=this" && !strings.HasPrefix(line, "PWD=") && !strings.HasPrefix(line, "SHLVL=") && !strings.HasPrefix(line, "_=") {
			t.Errorf("unexpected variable in the worker: %q", line)
		}
	}
}

// A root worker (said explicitly) keeps uid 0 but no capability, and sees
// the cgroup filesystem read-only: it cannot rewrite its own limits.
func TestStartAsRootWithoutCapabilities(t *testing.T) {
	harness.RequireRoot(t)
	root, err := launch.LookupUser("root")
	if err != nil {
		t.Fatal(err)
	}
	out := run(t, launch.Spec{User: root, ReadOnly: []string{"/sys/fs/cgroup"}},
		"/bin/sh", "-c", "cat /proc/self/status; for f in /sys/fs/cgroup/*/cgroup.procs /sys/fs/cgroup/cgroup.procs; do [ -e $f ] && (echo $$ > $f) 2>/dev/null && echo WROTE $f; done; echo done")
	if got := status(t, out, "Uid"); !strings.HasPrefix(got, "0\t0") {
		t.Fatalf("Uid %q", got)
	}
	for _, k := range []string{"CapPrm", "CapEff", "CapBnd", "CapAmb"} {
		if got := status(t, out, k); strings.Trim(got, "0") != "" {
			t.Errorf("%s = %s, want none", k, got)
		}
	}
	if strings.Contains(out, "WROTE") || !strings.Contains(out, "done") {
		t.Fatalf("a root worker wrote to the cgroup filesystem:\n%s", out)
	}
}

// The environment handed to the worker never reaches the shim, which runs
// as root: a preload library in it is loaded by the worker (as nobody)
// and by nothing before it.
func TestShimIgnoresWorkerLoaderEnv(t *testing.T) {
	harness.RequireRoot(t)
	if _, err := exec.LookPath("gcc"); err != nil {
		harness.Cannot(t, "building the preload library needs gcc: %v", err)
	}
	// Not t.TempDir: its parent is private, and the worker (nobody) must
	// be able to load the library for the test to prove anything.
	dir, err := os.MkdirTemp("", "rbee-preload-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	so := filepath.Join(dir, "preload.so")
	if b, err := exec.Command("gcc", "-shared", "-fPIC", "-o", so, "testdata/preload.c").CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, b)
	}
	os.Chmod(so, 0o755)
	mark := filepath.Join(dir, "mark")
	nobody, _ := launch.LookupUser("nobody")
	run(t, launch.Spec{User: nobody, Env: []string{"PATH=/usr/bin:/bin", "LD_PRELOAD=" + so, "PRELOAD_MARK=" + mark}}, "/bin/true")
	b, err := os.ReadFile(mark)
	if err != nil {
		t.Fatalf("the worker never loaded the preload library (the test proves nothing): %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if !strings.HasPrefix(line, "uid=65534 ") {
			t.Fatalf("the preload library ran in a process that was not the nobody worker: %q", line)
		}
	}
}

// The binary's descriptor does not leak into an ELF worker; a script
// still runs (its interpreter needs the descriptor).
func TestBinaryDescriptor(t *testing.T) {
	out := run(t, launch.Spec{}, "/bin/ls", "/proc/self/fd")
	if fds := strings.Fields(out); len(fds) != 4 || fds[3] != "3" { // 0 1 2 and ls's own directory fd
		t.Fatalf("fds of an ELF worker: %v, want 0 1 2 and the one ls reads", fds)
	}
	script := filepath.Join(t.TempDir(), "worker.sh")
	os.WriteFile(script, []byte("#!/bin/sh\necho script ran with $1\n"), 0o755)
	if out := run(t, launch.Spec{}, script, "arg"); out != "script ran with arg\n" {
		t.Fatalf("script: %q", out)
	}
}

func TestStartReportsExecFailure(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "garbage")
	os.WriteFile(bad, []byte("\x00\x01not an executable"), 0o755)
	exe, err := launch.OpenBinary(bad, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer exe.Close()
	_, err = launch.Start(launch.Spec{Exe: exe, Argv: []string{bad}})
	if err == nil || !strings.Contains(err.Error(), "exec format error") || !strings.Contains(err.Error(), bad) {
		t.Fatalf("Start of garbage = %v, want an exec format error naming it", err)
	}
}

func TestOpenBinary(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	bin, err := launch.NewBinDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	mk := func(rel string, mode os.FileMode) string {
		p := filepath.Join(dir, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
		return p
	}
	ok := mk("worker", 0o755)
	sub := mk("sub/worker", 0o755)
	gw := mk("groupwritable", 0o775)
	noexec := mk("data", 0o644)
	wdir := mk("open/worker", 0o755)
	os.Chmod(filepath.Dir(wdir), 0o777)
	outside := filepath.Join(t.TempDir(), "outside")
	os.WriteFile(outside, []byte("#!/bin/sh\n"), 0o755)
	link := filepath.Join(dir, "link")
	os.Symlink(outside, link)
	inLink := filepath.Join(dir, "inlink")
	os.Symlink(ok, inLink)
	tests := []struct {
		path string
		want error
	}{
		{ok, nil},
		{sub, nil},
		{gw, launch.ErrForbidden},
		{noexec, launch.ErrBinary},
		{wdir, launch.ErrForbidden},
		{outside, launch.ErrForbidden},
		{link, launch.ErrForbidden},
		{inLink, launch.ErrForbidden},
		{filepath.Join(dir, "sub/../../outside"), launch.ErrForbidden},
		{filepath.Join(dir, "missing"), launch.ErrBinary},
		{"/proc/self/exe", launch.ErrForbidden},
		{dir, launch.ErrForbidden},
		{"relative/worker", launch.ErrBinary},
	}
	for _, tc := range tests {
		f, err := launch.OpenBinary(tc.path, bin)
		if f != nil {
			f.Close()
		}
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("OpenBinary(%s) = %v, want %v", tc.path, err, tc.want)
		}
	}
	// Without a bin dir, links are followed: the loopback operator chose.
	if f, err := launch.OpenBinary(link, nil); err != nil {
		t.Errorf("OpenBinary(link, nil) = %v", err)
	} else {
		f.Close()
	}
	// A world-writable bin dir is refused outright.
	wd := t.TempDir()
	os.Chmod(wd, 0o777)
	if _, err := launch.NewBinDir(wd); err == nil {
		t.Fatal("world-writable --worker-bin-dir accepted")
	}
}

func TestEnvAllowed(t *testing.T) {
	for _, bad := range []string{"LD_PRELOAD", "LD_LIBRARY_PATH", "ld_audit", "GCONV_PATH", "BASH_ENV", "ENV", "PYTHONSTARTUP", "NODE_OPTIONS", "GLIBC_TUNABLES", "DYLD_INSERT_LIBRARIES"} {
		if launch.EnvAllowed(bad) == "" {
			t.Errorf("%s allowed", bad)
		}
	}
	for _, ok := range []string{"CUDA_VISIBLE_DEVICES", "HF_HOME", "PYTHONPATH", "OMP_NUM_THREADS", "PATH"} {
		if why := launch.EnvAllowed(ok); why != "" {
			t.Errorf("%s refused: %s", ok, why)
		}
	}
}

func TestLookupUser(t *testing.T) {
	c, err := launch.LookupUser("nobody")
	if err != nil || c.UID != 65534 || c.Name != "nobody" {
		t.Fatalf("nobody = %+v, %v", c, err)
	}
	if c, err = launch.LookupUser("1234:5678"); err != nil || c.UID != 1234 || c.GID != 5678 {
		t.Fatalf("1234:5678 = %+v, %v", c, err)
	}
	if c, err = launch.LookupUser("0"); err != nil || c.UID != 0 || c.GID != 0 {
		t.Fatalf("0 = %+v, %v", c, err)
	}
	for _, bad := range []string{"", "no-such-user-here", "1:no-such-group-here", ":1"} {
		if _, err := launch.LookupUser(bad); err == nil {
			t.Errorf("LookupUser(%q) accepted", bad)
		}
	}
}

// The keeper sleeps as nobody (when started by root) without privileges,
// in a session of its own, and ends on SIGTERM.
func TestKeeper(t *testing.T) {
	p, err := launch.StartKeeper()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	var status string
	harness.WaitFor(t, 5*time.Second, func() error {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid))
		if err != nil {
			return err
		}
		if status = string(b); !strings.Contains(status, "SigCgt:") || !strings.Contains(status, "NoNewPrivs:\t1") {
			return fmt.Errorf("not settled: %s", status)
		}
		return nil
	})
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.Pid))
	if string(cmdline) != "rbee-cgroup-keeper\x00" {
		t.Fatalf("cmdline %q", cmdline)
	}
	uid := fmt.Sprintf("Uid:\t%d\t%d\t%d\t%d", os.Getuid(), os.Getuid(), os.Getuid(), os.Getuid())
	if !strings.Contains(status, uid) {
		t.Fatalf("the keeper does not run as the hive's user (%s):\n%s", uid, status)
	}
	if os.Geteuid() == 0 {
		// A worker (nobody by default) may not signal it, nor so end the
		// scope it holds.
		kill := exec.Command("/bin/sh", "-c", fmt.Sprintf("kill -0 %d", p.Pid))
		kill.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		if out, err := kill.CombinedOutput(); err == nil {
			t.Fatalf("nobody may signal the keeper: %s", out)
		}
	}
	if sid, _ := unix.Getsid(p.Pid); sid != p.Pid {
		t.Fatalf("session %d, want its own (%d)", sid, p.Pid)
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	st, err := p.Wait()
	if err != nil || !st.Success() {
		t.Fatalf("keeper after SIGTERM: %v %v", st, err)
	}
}
