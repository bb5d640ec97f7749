package harness

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
)

// Helpers are small programs a test needs to run as another process (as
// another user, say) without building a binary: the test binary runs
// itself with envHelper naming the helper, and Main runs the helper
// instead of the tests (the idea of go-internal's testscript.RunMain).
const envHelper = "RBEE_HARNESS_HELPER"

var (
	helpersMu sync.Mutex
	helpers   = map[string]func(args []string) int{}
)

// RegisterHelper makes fn runnable by RunHelper under name. Call it from
// an init function of the test package, so the re-executed test binary
// has it before Main runs.
func RegisterHelper(name string, fn func(args []string) int) {
	helpersMu.Lock()
	defer helpersMu.Unlock()
	helpers[name] = fn
}

// runHelper runs the helper named in the environment, if any, and reports
// whether it did (Main then exits with its status).
func runHelper() (int, bool) {
	name := os.Getenv(envHelper)
	if name == "" {
		return 0, false
	}
	helpersMu.Lock()
	fn, ok := helpers[name]
	names := make([]string, 0, len(helpers))
	for n := range helpers {
		names = append(names, n)
	}
	helpersMu.Unlock()
	if !ok {
		sort.Strings(names)
		fmt.Fprintf(os.Stderr, "harness: no helper %q (have %v)\n", name, names)
		return 2, true
	}
	return fn(os.Args[1:]), true
}

// HelperResult is what a helper process printed and how it exited.
type HelperResult struct {
	Stdout, Stderr string
	Code           int
}

// RunHelper runs the helper name with args in a new process of the test
// binary, as cred when not nil, and returns its output and exit status.
func RunHelper(t TB, cred *syscall.Credential, name string, args ...string) HelperResult {
	t.Helper()
	exe, err := helperBinary(cred != nil)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), envHelper+"="+name)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	res := HelperResult{Stdout: out.String(), Stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		res.Code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("helper %s: %v", name, err)
	}
	return res
}

var (
	publicExeOnce sync.Once
	publicExe     string
	publicExeErr  error
)

// helperBinary is the test binary, or for another user a copy of it that
// user can run: go test keeps the binary in a directory only its owner
// may enter. The copy is removed with the other builds (Main).
func helperBinary(public bool) (string, error) {
	exe, err := os.Executable()
	if err != nil || !public {
		return exe, err
	}
	publicExeOnce.Do(func() {
		b, err := os.ReadFile(exe)
		if err != nil {
			publicExeErr = err
			return
		}
		dir, err := os.MkdirTemp("", "rbee-harness-helper-")
		if err != nil {
			publicExeErr = err
			return
		}
		registerCleanup(dir)
		if err := os.Chmod(dir, 0o755); err != nil {
			publicExeErr = err
			return
		}
		publicExe = filepath.Join(dir, filepath.Base(exe))
		publicExeErr = os.WriteFile(publicExe, b, 0o755)
	})
	return publicExe, publicExeErr
}
