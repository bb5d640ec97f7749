package v2vm

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"
)

// vmFiles are the scripts that run inside the VMs.
//
//go:embed vm
var vmFiles embed.FS

// Options configures Run.
type Options struct {
	// ModuleRoot is the repository's root.
	ModuleRoot string
	// Steps are the steps to run, in order.
	Steps []Step
	// Suites are the test binaries of steps a and b; nil means Suites.
	Suites []Suite
	// Run, when set, is a -test.run pattern (a -test.bench pattern for
	// the benchmarks) for every suite.
	Run string
	// CacheDir keeps the downloaded kernel and busybox and the root file
	// systems (see DefaultCacheDir).
	CacheDir string
	// WorkDir holds this run's builds and images.
	WorkDir string
	// Artifacts gets v2vm/<step>.log (each VM's console) and
	// v2vm/summary.txt.
	Artifacts string
	// Timeout, when set, replaces each step's own.
	Timeout time.Duration
	// Mirror is the Debian mirror for debootstrap; "" means the one apt
	// uses here.
	Mirror string
	// Accel is qemu's -accel (BootConfig.Accel).
	Accel string
	// Out gets the progress and every console line as it comes.
	Out io.Writer
}

// DefaultCacheDir is $XDG_CACHE_HOME/rbee/v2vm (~/.cache/rbee/v2vm).
func DefaultCacheDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "rbee", "v2vm"), nil
}

// Run runs the steps and returns their report; the error names each
// step that failed. Only one Run at a time may use a cache directory (and
// so, on one machine, only one VM runs at a time: -smp 2 takes both of a
// CI machine's cores).
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Suites == nil {
		o.Suites = Suites
	}
	if err := os.MkdirAll(o.CacheDir, 0o755); err != nil {
		return nil, err
	}
	unlock, err := lock(filepath.Join(o.CacheDir, "lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	for _, d := range []string{o.WorkDir, filepath.Join(o.Artifacts, "v2vm")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if _, err := exec.LookPath(Qemu); err != nil {
		return nil, fmt.Errorf("%s is not installed (apt-get install --no-install-recommends qemu-system-x86; .ci/deps does)", Qemu)
	}
	r := &runner{Options: o, report: &Report{}}
	return r.report, r.run(ctx)
}

type runner struct {
	Options
	report *Report
	kernel Kernel
	// busyboxImage is the initramfs of steps a, b and c, made once.
	busyboxImage string
}

func (r *runner) printf(format string, args ...any) { fmt.Fprintf(r.Out, format, args...) }

// timed runs f and prints how long it took.
func (r *runner) timed(what string, f func() error) error {
	t := time.Now()
	err := f()
	r.printf("test:v2: %s: %v\n", what, time.Since(t).Round(100*time.Millisecond))
	return err
}

func (r *runner) run(ctx context.Context) error {
	err := r.timed("kernel "+KernelPackage, func() error {
		var err error
		r.kernel, err = FetchKernel(ctx, r.CacheDir, r.Out)
		return err
	})
	if err != nil {
		return err
	}
	r.printf("test:v2: kernel %s (%s), cache %s\n", r.kernel.Release, r.kernel.Package, r.CacheDir)
	if err := r.timed("build (CGO_ENABLED=0 go test -c, go build)", func() error { return r.build(ctx) }); err != nil {
		return err
	}
	var failed []string
	for _, s := range r.Steps {
		t := time.Now()
		r.printf("\n== test:v2 step %s: %s\n", s.Name, s.Doc)
		err := r.step(ctx, s)
		res := r.report.Step(s.Name)
		res.Wall = time.Since(t)
		if err != nil && res.Err == "" {
			res.Err = err.Error()
		}
		bad, why := res.Failed()
		verdict := "ok"
		if bad {
			verdict = "FAIL: " + why
			failed = append(failed, s.Name+" ("+clip(why, 160)+")")
		}
		r.printf("== test:v2 step %s: %v, %s\n", s.Name, res.Wall.Round(100*time.Millisecond), verdict)
		if ctx.Err() != nil {
			break
		}
	}
	var sum strings.Builder
	r.report.Summary(&sum)
	r.printf("\n== test:v2 summary (console logs in %s)\n%s", filepath.Join(r.Artifacts, "v2vm"), sum.String())
	if err := os.WriteFile(filepath.Join(r.Artifacts, "v2vm", "summary.txt"), []byte(sum.String()), 0o644); err != nil {
		return err
	}
	if len(failed) > 0 {
		return fmt.Errorf("test:v2: %d failed steps: %s", len(failed), strings.Join(failed, "; "))
	}
	return ctx.Err()
}

func (r *runner) testDir() string { return filepath.Join(r.WorkDir, "tests") }
func (r *runner) binDir() string  { return filepath.Join(r.WorkDir, "bin") }

// build makes static test binaries of the suites and the harness's
// programs: CGO_ENABLED=0, stripped, as the VM has no C library.
func (r *runner) build(ctx context.Context) error {
	for _, d := range []string{r.testDir(), r.binDir()} {
		if err := os.RemoveAll(d); err != nil {
			return err
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	var pkgs, mains []string
	for _, s := range r.Suites {
		pkgs = append(pkgs, "./"+s.Pkg)
	}
	for _, h := range Helpers {
		mains = append(mains, "./"+h)
	}
	for _, args := range [][]string{
		append([]string{"test", "-c", "-ldflags=-s -w", "-o", r.testDir() + "/"}, pkgs...),
		append([]string{"build", "-ldflags=-s -w", "-o", r.binDir() + "/"}, mains...),
	} {
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = r.ModuleRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		cmd.Stdout, cmd.Stderr = r.Out, r.Out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go %s: %w", strings.Join(args[:2], " "), err)
		}
	}
	return nil
}

func (r *runner) step(ctx context.Context, s Step) error {
	timeout := s.Timeout
	if r.Timeout > 0 {
		timeout = r.Timeout
	}
	cfg := BootConfig{Kernel: r.kernel.Vmlinuz, Timeout: timeout, Accel: r.Accel}
	if s.Systemd {
		initrd, systemd, err := r.systemdImage(ctx, s)
		if err != nil {
			return err
		}
		r.printf("test:v2: %s: systemd %s\n", initrd, systemd)
		cfg.Initrd, cfg.MemoryMB = initrd, 1024
		cfg.Append = "rdinit=/sbin/init systemd.unified_cgroup_hierarchy=1 panic=-1 quiet rbee_step=" + s.Name
	} else {
		if r.busyboxImage == "" {
			if err := r.timed("busybox initramfs", func() error { return r.buildBusyboxImage(ctx) }); err != nil {
				return err
			}
		}
		// loglevel=3: kernel errors (an OOM kill, counted by the tests on
		// purpose) stay off the console, where they would split lines.
		// 3 GiB: the initramfs (the test binaries) and /tmp's loop
		// image both live in RAM, and TestWorkerLogs writes hundreds of
		// MiB of logs there; with 2 GiB the loop device's write-back
		// failed.
		cfg.Initrd, cfg.MemoryMB = r.busyboxImage, 3072
		cfg.Append = "rdinit=/init panic=-1 loglevel=3 rbee_step=" + s.Name
	}
	return r.boot(ctx, s, cfg)
}

// boot runs one VM, streaming its console to Out and to the step's log.
func (r *runner) boot(ctx context.Context, s Step, cfg BootConfig) error {
	logPath := filepath.Join(r.Artifacts, "v2vm", s.Name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "# %s %s\n", Qemu, strings.Join(QemuArgs(cfg), " "))
	cfg.Line = func(line string) {
		fmt.Fprintln(logf, line)
		fmt.Fprintln(r.Out, line)
		r.report.Feed(line)
	}
	cfg.Stderr = io.MultiWriter(logf, r.Out)
	t := time.Now()
	err = Boot(ctx, cfg)
	r.printf("test:v2: the VM of step %s ran %v\n", s.Name, time.Since(t).Round(100*time.Millisecond))
	res := r.report.Step(s.Name)
	switch {
	case err != nil:
		res.Err = err.Error()
	case !res.Ended:
		res.Err = "the VM powered off without the step's result marker (a panic, or the step's script died; see " + logPath + ")"
	}
	return nil
}

// buildBusyboxImage makes the initramfs of the busybox steps.
func (r *runner) buildBusyboxImage(ctx context.Context) error {
	bb, err := FetchBusybox(ctx, r.CacheDir, r.Out)
	if err != nil {
		return err
	}
	applets, err := exec.CommandContext(ctx, bb, "--list-full").Output()
	if err != nil {
		return fmt.Errorf("%s --list-full: %w", bb, err)
	}
	runs, err := r.plan(ctx)
	if err != nil {
		return err
	}
	plan, err := PlanFile(runs)
	if err != nil {
		return err
	}
	out := filepath.Join(r.WorkDir, "busybox.cpio.gz")
	err = WriteInitramfs(out, Gzip, func(c *Cpio) error {
		if err := baseLayout(c); err != nil {
			return err
		}
		if err := c.AddFile("bin/busybox", bb); err != nil {
			return err
		}
		for _, a := range strings.Fields(string(applets)) {
			// Linking bin/busybox to itself would make it a loop.
			if a == "bin/busybox" {
				continue
			}
			if err := c.Symlink(a, "/bin/busybox"); err != nil {
				return err
			}
		}
		if err := c.File("init", 0o755, mustRead("vm/init")); err != nil {
			return err
		}
		for _, f := range []string{"lib.sh", "placement.sh", "restart.sh"} {
			if err := c.File("rbee/vm/"+f, 0o755, mustRead("vm/"+f)); err != nil {
				return err
			}
		}
		if err := c.File("rbee/vm/plan", 0o644, []byte(plan)); err != nil {
			return err
		}
		for name, p := range r.kernel.Modules {
			if err := c.AddFile("lib/modules/"+name, p); err != nil {
				return err
			}
		}
		if err := r.addBinaries(c, "rbee/bin"); err != nil {
			return err
		}
		for _, f := range SourceFiles {
			src := filepath.Join(r.ModuleRoot, f)
			fi, err := os.Stat(src)
			if err != nil {
				return err
			}
			if fi.IsDir() {
				err = c.Tree(src, "rbee/src/"+f)
			} else {
				err = c.AddFile("rbee/src/"+f, src)
			}
			if err != nil {
				return err
			}
		}
		for _, s := range r.Suites {
			name := path.Base(s.Pkg)
			if err := c.AddFile("rbee/src/"+s.Pkg+"/"+name+".test", filepath.Join(r.testDir(), name+".test")); err != nil {
				return err
			}
			td := filepath.Join(r.ModuleRoot, s.Pkg, "testdata")
			if _, err := os.Stat(td); err == nil {
				if err := c.Tree(td, "rbee/src/"+s.Pkg+"/testdata"); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	fi, err := os.Stat(out)
	if err != nil {
		return err
	}
	r.printf("test:v2: %s, %.1f MiB\n", out, float64(fi.Size())/(1<<20))
	r.busyboxImage = out
	return nil
}

// plan lists the runs of steps a and b: each suite's tests as its
// binary (static, so it runs here too) lists them, less the exclusions,
// narrowed to Options.Run.
func (r *runner) plan(ctx context.Context) ([]TestRun, error) {
	list := func(s Suite) ([]string, error) {
		cmd := exec.CommandContext(ctx, filepath.Join(r.testDir(), path.Base(s.Pkg)+".test"), "-test.list", ".")
		cmd.Dir = filepath.Join(r.ModuleRoot, s.Pkg)
		out, err := cmd.Output()
		return strings.Fields(string(out)), err
	}
	runs, err := Plan(r.Suites, list)
	if err != nil || r.Run == "" {
		return runs, err
	}
	re, err := regexp.Compile(r.Run)
	if err != nil {
		return nil, fmt.Errorf("RBEE_V2_RUN: %w", err)
	}
	var out []TestRun
	for _, run := range runs {
		switch {
		case run.Test == "":
			run.Args = append(slices.Clone(run.Args), "-test.bench", r.Run)
		case !re.MatchString(run.Test):
			continue
		}
		out = append(out, run)
	}
	return out, nil
}

// baseLayout writes the busybox VM's skeleton: mount points, a console
// device for PID 1's output, and the users and name service files the
// tests look up (root; nobody, whom workers run as).
func baseLayout(c *Cpio) error {
	for _, d := range []string{"proc", "sys", "dev", "run", "tmp", "var/lib", "usr/bin", "usr/sbin", "sbin", "bin"} {
		if err := c.Dir(d, 0o755); err != nil {
			return err
		}
	}
	if err := c.Dir("root", 0o700); err != nil {
		return err
	}
	if err := c.Write(Entry{Name: "dev/console", Mode: modeChar | 0o600, RdevMajor: 5, RdevMinor: 1}, nil); err != nil {
		return err
	}
	files := map[string]string{
		"etc/passwd":        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group":         "root:x:0:\nnogroup:x:65534:\n",
		"etc/hosts":         "127.0.0.1\tlocalhost rbee-v2\n::1\tlocalhost ip6-localhost ip6-loopback\n",
		"etc/nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\n",
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if err := c.File(name, 0o644, []byte(files[name])); err != nil {
			return err
		}
	}
	return nil
}

// addBinaries writes the harness's programs below dir.
func (r *runner) addBinaries(c *Cpio, dir string) error {
	for _, h := range Helpers {
		name := path.Base(h)
		if err := c.AddFile(dir+"/"+name, filepath.Join(r.binDir(), name)); err != nil {
			return err
		}
	}
	return nil
}

// systemdImage returns the initrd of a systemd step: the cached Debian
// root file system and, after it, this run's files: the hive's unit as
// shipped with what it names, the test worker, the test's script and
// service.
func (r *runner) systemdImage(ctx context.Context, s Step) (initrd, systemd string, err error) {
	mirror := r.Mirror
	if mirror == "" {
		if mirror, err = Mirror("bookworm"); err != nil {
			return "", "", err
		}
	}
	rfs := Rootfs{Suite: "bookworm", Mirror: mirror, Backports: s.Backports,
		Include: []string{"systemd", "systemd-sysv", "dbus", "udev", "iproute2", "procps"}}
	var img RootfsImage
	err = r.timed("root file system (debootstrap "+rfs.Suite+", cached)", func() error {
		var err error
		img, err = BuildRootfs(ctx, r.CacheDir, rfs, r.Out)
		return err
	})
	if err != nil {
		return "", "", err
	}
	overlay := filepath.Join(r.WorkDir, s.Name+"-overlay.cpio.gz")
	if err := r.systemdOverlay(overlay); err != nil {
		return "", "", err
	}
	initrd = filepath.Join(r.WorkDir, s.Name+".initrd")
	return initrd, img.Systemd, ConcatFiles(initrd, img.Path, overlay)
}

const ciDir = "usr/local/lib/rbee-ci"

func (r *runner) systemdOverlay(out string) error {
	unitText, err := os.ReadFile(filepath.Join(r.ModuleRoot, "deploy/systemd/rbee-hive.service"))
	if err != nil {
		return err
	}
	unit, err := ParseHiveUnit(string(unitText))
	if err != nil {
		return fmt.Errorf("deploy/systemd/rbee-hive.service: %w", err)
	}
	prov, err := unit.Provision()
	if err != nil {
		return fmt.Errorf("deploy/systemd/rbee-hive.service: %w", err)
	}
	certs, err := NewCerts("rbee-v2")
	if err != nil {
		return err
	}
	machineID, err := NewToken()
	if err != nil {
		return err
	}
	env := fmt.Sprintf("WORKER_USER='%s'\nWORKER_BIN='%s'\nRBEE_HIVE='%s'\nRBEE_CA='/%s/ca.pem'\nRBEE_TOKEN_FILE='%s'\n",
		prov.WorkerUser, prov.WorkerBin, prov.URL, ciDir, "/"+ciDir+"/token")
	return WriteInitramfs(out, Gzip, func(c *Cpio) error {
		rel := func(p string) string { return strings.TrimPrefix(p, "/") }
		for _, d := range prov.Dirs {
			if err := c.Dir(rel(d), 0o755); err != nil {
				return err
			}
		}
		if err := c.AddFile(rel(unit.Binary), filepath.Join(r.binDir(), "rbee-hive")); err != nil {
			return err
		}
		if err := c.AddFile(rel(prov.WorkerBin), filepath.Join(r.binDir(), "testworker")); err != nil {
			return err
		}
		token := ""
		for _, p := range slices.Sorted(maps.Keys(prov.Files)) {
			var data []byte
			perm := fs.FileMode(0o644)
			switch prov.Files[p] {
			case ContentCert:
				data = certs.Cert
			case ContentKey:
				data, perm = certs.Key, 0o600
			case ContentCA:
				data = certs.CA
			case ContentToken:
				if token, err = NewToken(); err != nil {
					return err
				}
				data, perm = []byte(token+"\n"), 0o600
			case ContentQueen:
				t, err := NewToken()
				if err != nil {
					return err
				}
				data, perm = []byte(t+"\n"), 0o600
			}
			if err := c.File(rel(p), perm, data); err != nil {
				return err
			}
		}
		if token == "" {
			return errors.New("the unit names no --token-file: the CLI in the VM would have no token")
		}
		files := []struct {
			name string
			perm fs.FileMode
			data []byte
		}{
			{"etc/systemd/system/rbee-hive.service", 0o644, unitText},
			{"etc/systemd/system/ci-test.service", 0o644, mustRead("vm/systemd/ci-test.service")},
			{ciDir + "/ci-test.sh", 0o755, mustRead("vm/systemd/ci-test.sh")},
			{ciDir + "/lib.sh", 0o644, mustRead("vm/lib.sh")},
			{ciDir + "/env", 0o644, []byte(env)},
			{ciDir + "/ca.pem", 0o644, certs.CA},
			{ciDir + "/token", 0o600, []byte(token + "\n")},
			{"etc/fstab", 0o644, nil},
			{"etc/hostname", 0o644, []byte("rbee-v2\n")},
			{"etc/machine-id", 0o444, []byte(machineID[:32] + "\n")},
		}
		for _, f := range files {
			if err := c.File(f.name, f.perm, f.data); err != nil {
				return err
			}
		}
		if err := c.Symlink("etc/systemd/system/multi-user.target.wants/ci-test.service", "/etc/systemd/system/ci-test.service"); err != nil {
			return err
		}
		// Nothing on the console but the test: no logins, no timers, no
		// first-boot questions.
		for _, u := range []string{"getty.target", "serial-getty@ttyS0.service", "getty@tty1.service",
			"console-getty.service", "timers.target", "systemd-firstboot.service"} {
			if err := c.Symlink("etc/systemd/system/"+u, "/dev/null"); err != nil {
				return err
			}
		}
		return nil
	})
}

func mustRead(name string) []byte {
	b, err := vmFiles.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return b
}

// lock takes an exclusive lock on path, failing at once when another
// process holds it.
func lock(p string) (func(), error) {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another test:v2 holds %s (one VM at a time): %w", p, err)
	}
	return func() { f.Close() }, nil
}
