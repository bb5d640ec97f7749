package harness

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

var npmMu sync.Mutex

// NodePackage installs the npm package spec (e.g. "eventsource@3.0.7")
// once per machine, under the user cache directory, and returns the
// node_modules directory to put in NODE_PATH: tests check the daemons
// with the third-party clients their users run. Without node and npm, or
// without the registry, the test cannot run (see Cannot).
func NodePackage(t TB, spec string) string {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			Cannot(t, "%s is not installed: the test runs %s under Node.js", tool, spec)
		}
	}
	npmMu.Lock()
	defer npmMu.Unlock()
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "rbee-harness", "npm", strings.NewReplacer("/", "_", "@", "_").Replace(spec))
	mods := filepath.Join(dir, "node_modules")
	name := spec
	if i := strings.LastIndex(spec, "@"); i > 0 {
		name = spec[:i]
	}
	if _, err := os.Stat(filepath.Join(mods, name, "package.json")); err == nil {
		return mods
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("npm", "install", "--no-audit", "--no-fund", "--no-save", "--prefix", dir, spec)
	if out, err := cmd.CombinedOutput(); err != nil {
		Cannot(t, "npm install %s: %v\n%s", spec, err, out)
	}
	return mods
}
