package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The module path of rbee, for go build.
const module = "github.com/rbee-dev/rbee"

var (
	buildMu   sync.Mutex
	buildDir  string
	built     = map[string]string{}
	buildErrs = map[string]error{}
)

// TestWorker returns the path of the test worker program (see
// harness/testworker), built once per test process.
func TestWorker(t TB) string {
	t.Helper()
	return Build(t, "harness/testworker")
}

// Build builds the main package at pkg (relative to the module root, e.g.
// "cmd/rbee-hive") once per test process and returns the binary's path.
func Build(t TB, pkg string) string {
	t.Helper()
	path, err := build(pkg)
	if err != nil {
		t.Fatalf("build %s: %v", pkg, err)
	}
	return path
}

// envBinDir names a directory of prebuilt binaries (named after their
// package's last element) that Build uses instead of compiling, for
// machines without Go, such as a GPU machine running a gpu:bundle.
const envBinDir = "RBEE_HARNESS_BIN_DIR"

func build(pkg string) (string, error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := built[pkg]; ok {
		return p, nil
	}
	if dir := os.Getenv(envBinDir); dir != "" {
		p := filepath.Join(dir, filepath.Base(pkg))
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", envBinDir, dir, err)
		}
		built[pkg] = p
		return p, nil
	}
	if err, ok := buildErrs[pkg]; ok {
		return "", err
	}
	if buildDir == "" {
		d, err := os.MkdirTemp("", "rbee-harness-bin-")
		if err != nil {
			return "", err
		}
		// Readable by all: tests run daemons as an unprivileged user too.
		if err := os.Chmod(d, 0o755); err != nil {
			return "", err
		}
		buildDir = d
	}
	out := filepath.Join(buildDir, filepath.Base(pkg))
	args := []string{"build", "-o", out}
	// Daemons inherit the test binary's instrumentation: -race so races in
	// them fail the test (their logs are scanned for DATA RACE), -cover so
	// integration runs count toward coverage (written to GOCOVERDIR).
	if RaceEnabled && strings.HasPrefix(pkg, "cmd/") {
		args = append(args, "-race")
	}
	if testing.CoverMode() != "" && strings.HasPrefix(pkg, "cmd/") {
		args = append(args, "-cover", "-coverpkg="+module+"/...")
	}
	cmd := exec.Command("go", append(args, module+"/"+pkg)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		err = fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
		buildErrs[pkg] = err
		return "", err
	}
	built[pkg] = out
	return out, nil
}

// extraCleanup lists directories removed with the builds.
var extraCleanup []string

func registerCleanup(dir string) {
	buildMu.Lock()
	defer buildMu.Unlock()
	extraCleanup = append(extraCleanup, dir)
}

func cleanupBuilds() {
	buildMu.Lock()
	defer buildMu.Unlock()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	for _, d := range extraCleanup {
		os.RemoveAll(d)
	}
}

// BuildAt builds the main package pkg as it is at git revision ref of
// this repository, once per test process, and returns the binary's path:
// the baseline of a benchmark that compares a daemon with an older one in
// the same run. The tree is exported with git archive into a temporary
// directory (no worktree left registered) and removed with the builds.
func BuildAt(t TB, ref, pkg string) string {
	t.Helper()
	path, err := buildAt(ref, pkg)
	if err != nil {
		t.Fatalf("build %s at %s: %v", pkg, ref, err)
	}
	return path
}

func buildAt(ref, pkg string) (string, error) {
	key := ref + "@" + pkg
	buildMu.Lock()
	p, ok := built[key]
	buildMu.Unlock()
	if ok {
		return p, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	rev, err := exec.Command("git", "-C", root, "rev-parse", "--verify", ref+"^{commit}").Output()
	if err != nil {
		return "", fmt.Errorf("git rev-parse %s: %w", ref, err)
	}
	dir, err := os.MkdirTemp("", "rbee-harness-"+strings.TrimSpace(string(rev))[:12]+"-")
	if err != nil {
		return "", err
	}
	registerCleanup(dir)
	src := filepath.Join(dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		return "", err
	}
	archive := exec.Command("sh", "-c", `git -C "$1" archive --format=tar "$2" | tar -x -C "$3"`, "sh", root, strings.TrimSpace(string(rev)), src)
	if b, err := archive.CombinedOutput(); err != nil {
		return "", fmt.Errorf("git archive %s: %w\n%s", ref, err, b)
	}
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, "./"+pkg)
	cmd.Dir = src
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, b)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	buildMu.Lock()
	built[key] = out
	buildMu.Unlock()
	return out, nil
}
