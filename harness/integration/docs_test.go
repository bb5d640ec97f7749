//go:build linux

package integration

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/internal/api"
)

// docSection returns the text of a "## name" section of a docs page.
func docSection(t *testing.T, page, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(harness.ModuleRoot(t), "docs", page))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "\n## "+name+"\n")
	if i < 0 {
		t.Fatalf("docs/%s has no section %q", page, name)
	}
	s = s[i+1:]
	if j := strings.Index(s[3:], "\n## "); j >= 0 {
		s = s[:j+3]
	}
	return s
}

// docs/configuration.md lists every flag of both daemons, and no other.
func TestDocsConfigurationMatchesFlags(t *testing.T) {
	flagRE := regexp.MustCompile("(?m)^\\| `--([a-z0-9-]+)`")
	helpRE := regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`)
	for _, d := range []struct{ name, pkg string }{{"queen-rbee", "cmd/queen-rbee"}, {"rbee-hive", "cmd/rbee-hive"}} {
		var documented, real []string
		for _, m := range flagRE.FindAllStringSubmatch(docSection(t, "configuration.md", d.name), -1) {
			documented = append(documented, m[1])
		}
		out, _ := exec.Command(harness.Build(t, d.pkg), "--help").CombinedOutput()
		for _, m := range helpRE.FindAllStringSubmatch(string(out), -1) {
			real = append(real, m[1])
		}
		slices.Sort(documented)
		slices.Sort(real)
		if !slices.Equal(documented, real) || len(real) < 10 {
			t.Errorf("%s: docs/configuration.md lists %v,\nthe daemon has %v", d.name, documented, real)
		}
	}
}

// Every route in docs/api.md's tables answers on a real daemon: neither
// 404 for a route that does not exist nor 405 for a method it lacks.
func TestDocsRoutesAnswer(t *testing.T) {
	queen := harness.StartQueen(t)
	hive := harness.StartHive(t, harness.HiveOptions{ID: "h1", Queen: queen.URL, Args: []string{"--worker-log-dir", t.TempDir()}})
	w := spawn(t, hive, "a", api.SpawnRequest{Args: []string{"--model", "m"}})
	routeRE := regexp.MustCompile("(?m)^\\| `(GET|POST|DELETE) (/[^`]*)`")
	for _, tc := range []struct {
		section string
		d       *harness.Daemon
	}{{"Queen API", queen}, {"Hive API", hive}} {
		routes := routeRE.FindAllStringSubmatch(docSection(t, "api.md", tc.section), -1)
		if len(routes) < 6 {
			t.Fatalf("%s: %d routes documented", tc.section, len(routes))
		}
		for _, r := range routes {
			method, path := r[1], r[2]
			path = strings.NewReplacer("{id}", map[bool]string{true: "h1", false: w.ID}[tc.d == queen]).Replace(path)
			if strings.HasPrefix(path, "/v1/reservations/") {
				path = "/v1/reservations/rsv-none" // 404 from the handler, not the mux: checked below
			}
			url := tc.d.URL + path
			var code int
			var body []byte
			switch {
			case path == "/v1/heartbeats/stream":
				s := harness.Subscribe(t, url, harness.SSEOptions{})
				s.Close()
				continue
			case method == "POST" && path == "/v1/hive-heartbeat":
				code, body = harness.Call(t, method, url, map[string]any{})
			case method == "POST":
				code, body = harness.Call(t, method, url, api.SpawnRequest{Group: "llm", Instance: "b", Binary: harness.TestWorker(t)})
			case method == "DELETE":
				code, body = harness.Call(t, method, url, nil)
			default:
				code, body = harness.Call(t, method, url, nil)
			}
			if code == http.StatusMethodNotAllowed || code == http.StatusNotFound && !strings.Contains(string(body), "reservation") {
				t.Errorf("%s %s (%s): %d %s", method, path, tc.section, code, body)
			}
		}
	}
}

// CONTRIBUTING.md's layout table is in dependency order: every product
// package it names imports only packages named on its own row or below,
// and every product package is in it.
func TestContributingLayoutOrder(t *testing.T) {
	root := harness.ModuleRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "CONTRIBUTING.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "| path | what lives there |")
	if i < 0 {
		t.Fatal("CONTRIBUTING.md has no layout table")
	}
	s = s[i:]
	if j := strings.Index(s, "\n\n"); j >= 0 {
		s = s[:j]
	}
	pathRE := regexp.MustCompile("`((?:cmd|internal)/[a-z0-9/-]+)`")
	row := map[string]int{} // package path -> its row
	for n, line := range strings.Split(s, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 3 {
			continue
		}
		for _, m := range pathRE.FindAllStringSubmatch(cells[1], -1) {
			if _, err := os.Stat(filepath.Join(root, m[1])); err == nil {
				row[m[1]] = n
			}
		}
	}
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./cmd/...", "./internal/...")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const mod = "github.com/rbee-dev/rbee/"
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg := strings.TrimPrefix(f[0], mod)
		if strings.HasPrefix(pkg, "internal/demo") || pkg == "internal/benchgate" || pkg == "internal/covmerge" {
			continue // beside the product, in the second table
		}
		r, ok := row[pkg]
		if !ok {
			t.Errorf("%s is not in CONTRIBUTING.md's layout table", pkg)
			continue
		}
		for _, imp := range f[1:] {
			dep, ok := strings.CutPrefix(imp, mod)
			if !ok {
				continue
			}
			if dr, ok := row[dep]; !ok || dr < r {
				t.Errorf("%s (row %d) imports %s (row %d, want below it)", pkg, r, dep, dr)
			}
		}
	}
	if len(row) < 15 {
		t.Fatalf("read %d packages from the layout table: %v", len(row), row)
	}
}
