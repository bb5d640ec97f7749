package launch

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/coverage"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The shim is the hive's own binary re-executed with argv[0] shimArg0 and
// shimEnv as its only environment variable. By default the check runs
// before main, in every binary that links this package (test binaries
// included), and costs one getenv elsewhere; a binary whose main calls
// ServeShim has its shims run there instead (shimEnv=main).
//
// File descriptors: 3 is the status pipe (close-on-exec, so EOF with no
// bytes means the exec happened; anything written is the error), 4 the
// JSON config, 5 the worker binary (O_PATH).
const (
	shimEnv  = "_RBEE_LAUNCH_SHIM"
	shimArg0 = "rbee-worker-shim"
	fdStatus = 3
	fdConfig = 4
	fdExe    = 5
)

// maxConfig bounds the config the shim reads.
const maxConfig = 4 << 20

// shimConfig is what the hive hands the shim over fdConfig.
type shimConfig struct {
	Argv      []string    `json:"argv"`
	Env       []string    `json:"env"`
	User      *Credential `json:"user,omitempty"`
	JoinProcs []string    `json:"join_procs,omitempty"`
	ReadOnly  []string    `json:"read_only,omitempty"`
	// CoverDir is the hive's GOCOVERDIR: a hive built with -cover has its
	// shims leave their counters there before the exec, which ends them
	// without the runtime's exit hook.
	CoverDir string `json:"cover_dir,omitempty"`
}

// shimInMain is set in a process whose main called ServeShim.
var shimInMain atomic.Bool

func init() {
	if isShim("1") {
		os.Exit(runShim())
	}
}

func isShim(marker string) bool {
	return os.Getenv(shimEnv) == marker && len(os.Args) == 1 && os.Args[0] == shimArg0
}

// ServeShim runs the shim and exits when this process is one, and returns
// at once otherwise. A binary that calls it first thing in main and runs
// with GOCOVERDIR set has its shims run there rather than before main:
// the same code, after the Go runtime has set up coverage, so that a
// binary built with -cover counts what its shims ran.
func ServeShim() {
	shimInMain.Store(true)
	if isShim("main") {
		os.Exit(runShim())
	}
}

// runShim runs entirely on one locked thread: credentials, no_new_privs,
// capabilities and the mount namespace are per-thread in the kernel, and
// the exec from this thread gives the worker exactly this thread's.
func runShim() int {
	runtime.LockOSThread()
	status := os.NewFile(fdStatus, "status")
	fail := func(format string, a ...any) int {
		fmt.Fprintf(status, format, a...)
		return 127
	}
	cfgFile := os.NewFile(fdConfig, "config")
	b, err := io.ReadAll(io.LimitReader(cfgFile, maxConfig))
	cfgFile.Close()
	if err != nil {
		return fail("shim: read config: %v", err)
	}
	var c shimConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return fail("shim: config: %v", err)
	}
	if len(c.Argv) == 0 {
		return fail("shim: empty argv")
	}
	pid := []byte(strconv.Itoa(os.Getpid()))
	for _, p := range c.JoinProcs {
		if err := os.WriteFile(p, pid, 0); err != nil {
			return fail("join cgroup: %v", err)
		}
	}
	root := unix.Geteuid() == 0
	if root && c.User != nil && c.User.UID == 0 && len(c.ReadOnly) > 0 {
		if err := readOnlyMounts(c.ReadOnly); err != nil {
			return fail("read-only cgroup filesystem for a root worker: %v", err)
		}
	}
	// Nothing but stdin, stdout and stderr (and, for a script, the
	// binary) reaches the worker, whatever the hive itself inherited.
	if err := unix.CloseRange(fdStatus, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fail("close descriptors: %v", err)
	}
	keepExeIfScript()
	if _, _, e := unix.RawSyscall6(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0); e != 0 {
		return fail("no_new_privs: %v", e)
	}
	if root {
		// Dropping from the bounding set needs CAP_SETPCAP, so it comes
		// before the switch of user; with no_new_privs set, nothing the
		// worker executes can gain a capability back.
		for cap := 0; cap <= unix.CAP_LAST_CAP; cap++ {
			if _, _, e := unix.RawSyscall6(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(cap), 0, 0, 0, 0); e != 0 && e != unix.EINVAL {
				return fail("drop capability %d: %v", cap, e)
			}
		}
	}
	if c.User != nil {
		if err := setIDs(c.User); err != nil {
			return fail("run as %s: %v", c.User, err)
		}
	}
	// A worker that keeps uid 0 keeps its capabilities across exec unless
	// they are cleared; for anyone else the switch above cleared them.
	if _, _, e := unix.RawSyscall6(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0, 0); e != 0 && e != unix.EINVAL {
		return fail("clear ambient capabilities: %v", e)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if _, _, e := unix.RawSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		return fail("drop capabilities: %v", e)
	}
	if c.CoverDir != "" {
		// Best effort: counters that cannot be written must not keep a
		// worker from starting.
		_ = coverage.WriteCountersDir(c.CoverDir)
	}
	err = execveat(fdExe, c.Argv, c.Env)
	return fail("exec %s: %v", c.Argv[0], err)
}

// setIDs switches this thread to the worker's groups and user, skipping
// what already matches (a hive that is not root can only keep its own).
func setIDs(u *Credential) error {
	if uint32(unix.Getuid()) == u.UID && uint32(unix.Getgid()) == u.GID && uint32(unix.Geteuid()) == u.UID {
		if groups, err := unix.Getgroups(); err == nil && sameGroups(groups, u.Groups) {
			return nil
		}
	}
	groups := u.Groups
	if groups == nil {
		groups = []uint32{}
	}
	var p unsafe.Pointer
	if len(groups) > 0 {
		p = unsafe.Pointer(&groups[0])
	}
	if _, _, e := unix.RawSyscall(sysSetgroups, uintptr(len(groups)), uintptr(p), 0); e != 0 {
		return fmt.Errorf("setgroups: %w", e)
	}
	if _, _, e := unix.RawSyscall(sysSetresgid, uintptr(u.GID), uintptr(u.GID), uintptr(u.GID)); e != 0 {
		return fmt.Errorf("setresgid %d: %w", u.GID, e)
	}
	if _, _, e := unix.RawSyscall(sysSetresuid, uintptr(u.UID), uintptr(u.UID), uintptr(u.UID)); e != 0 {
		return fmt.Errorf("setresuid %d: %w", u.UID, e)
	}
	return nil
}

func sameGroups(have []int, want []uint32) bool {
	if len(have) != len(want) {
		return false
	}
	for _, g := range want {
		if !slices.Contains(have, int(g)) {
			return false
		}
	}
	return true
}

// keepExeIfScript keeps the binary's descriptor open across the exec
// when the binary is not an ELF file: the kernel hands a script's
// interpreter /dev/fd/5.
func keepExeIfScript() {
	f, err := os.Open("/proc/self/fd/" + strconv.Itoa(fdExe))
	if err != nil {
		return
	}
	defer f.Close()
	var magic [4]byte
	if _, err := io.ReadFull(f, magic[:]); err == nil && string(magic[:]) == "\x7fELF" {
		return
	}
	_, _ = unix.FcntlInt(uintptr(fdExe), unix.F_SETFD, 0)
}

// readOnlyMounts makes each mount point, and every mount below it,
// read-only in a new private mount namespace of this thread.
func readOnlyMounts(points []string) error {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("unshare mount namespace: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	for _, p := range points {
		err := unix.MountSetattr(unix.AT_FDCWD, p, unix.AT_RECURSIVE, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY})
		if err == nil {
			continue
		}
		if err != unix.ENOSYS {
			return fmt.Errorf("read-only %s: %w", p, err)
		}
		// Before Linux 5.12: remount each mount below p on its own.
		mounts, merr := mountsBelow(p)
		if merr != nil {
			return merr
		}
		for _, m := range mounts {
			if err := unix.Mount("", m, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
				return fmt.Errorf("read-only %s: %w", m, err)
			}
		}
	}
	return nil
}

func mountsBelow(p string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == p || strings.HasPrefix(fields[4], strings.TrimSuffix(p, "/")+"/")) {
			out = append(out, fields[4])
		}
	}
	return out, sc.Err()
}

// execveat executes the file open at fd with argv and env.
func execveat(fd int, argv, env []string) error {
	argvp, err := syscall.SlicePtrFromStrings(argv)
	if err != nil {
		return err
	}
	envp, err := syscall.SlicePtrFromStrings(env)
	if err != nil {
		return err
	}
	empty, err := syscall.BytePtrFromString("")
	if err != nil {
		return err
	}
	_, _, e := unix.RawSyscall6(unix.SYS_EXECVEAT, uintptr(fd), uintptr(unsafe.Pointer(empty)),
		uintptr(unsafe.Pointer(&argvp[0])), uintptr(unsafe.Pointer(&envp[0])), unix.AT_EMPTY_PATH, 0)
	return e
}
