//go:build linux

package integration

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/internal/api"
)

// Before: GET /v1/workers/..%2Fsecret%2Fs/logs with the read-only token
// answered 200 with <log-dir>/../secret/s.log, read by the hive as root
// (any *.log on the host, and 200 against 404 told which exist). Now every
// route refuses an id that is not one (400) before it reaches a map, a
// file or a cgroup, and a log is read only through the log directory's
// descriptor, never through a link.
func TestSecurityIDsOnRoutes(t *testing.T) {
	base := t.TempDir()
	logs, secret := filepath.Join(base, "logs"), filepath.Join(base, "secret")
	for _, d := range []string{logs, secret} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	const topSecret = "TOP SECRET"
	secretLog := filepath.Join(secret, "s.log")
	if err := os.WriteFile(secretLog, []byte(topSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Planted in the log directory: a link to a directory, a link and a
	// hard link where a worker's log would be.
	for _, err := range []error{
		os.Symlink(secret, filepath.Join(logs, "evil")),
		os.Symlink(secretLog, filepath.Join(logs, "llm-sym.log")),
		os.Link(secretLog, filepath.Join(logs, "llm-hard.log")),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	readTok, readFile := readToken(t)
	hive := harness.StartHive(t, harness.HiveOptions{Args: []string{"--worker-log-dir", logs, "--read-token-file", readFile}})
	queen := harness.StartQueen(t, "--read-token-file", readFile)

	long := strings.Repeat("a", 64) + "-" + strings.Repeat("b", 65)
	// Not a name: refused on every route.
	bad := []string{
		"..%2Fsecret%2Fs", "..%2F..%2F..%2F..%2Fvar%2Flog%2Fdpkg", "evil%2Fs", "llm-x%2F..%2F..%2Fsecret%2Fs",
		"%2E%2E", "%2e%2e%2Fsecret%2Fs", ".%2E", long, "a%00-b", "a-b%0A", "a-b%20c", "llm-%E2%80%AE",
	}
	// Names, but no worker id (<group>-<instance>): refused by the hive;
	// the queen's routes take hive and reservation ids, and find none.
	notWorker := []string{"%2E%2E-x", "x-%2E%2E", "llm", "-x"}
	type route struct {
		method, url, token string
		worker             bool // takes a worker id
	}
	routes := func(id string) []route {
		return []route{
			{"GET", hive.URL + "/v1/workers/" + id, readTok, true},
			{"GET", hive.URL + "/v1/workers/" + id + "/logs", readTok, true},
			{"GET", hive.URL + "/v1/workers/" + id + "/logs?previous=true", readTok, true},
			{"GET", hive.URL + "/v1/workers/" + id + "/logs?follow=true", readTok, true},
			{"DELETE", hive.URL + "/v1/workers/" + id, harness.Token, true},
			{"GET", queen.URL + "/v1/hives/" + id, readTok, false},
			{"DELETE", queen.URL + "/v1/reservations/" + id, harness.Token, false},
		}
	}
	send := func(r route) (int, string) {
		req, err := http.NewRequest(r.method, r.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+r.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", r.method, r.url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, string(b)
	}
	for _, id := range append(bad, notWorker...) {
		for _, r := range routes(id) {
			code, body := send(r)
			if strings.Contains(body, topSecret) {
				t.Fatalf("%s %s read the secret: %d %q", r.method, r.url, code, body)
			}
			want := http.StatusBadRequest
			if !r.worker && slices.Contains(notWorker, id) {
				want = http.StatusNotFound
			}
			if code != want {
				t.Errorf("%s %s: %d %s, want %d", r.method, r.url, code, strings.TrimSpace(body), want)
			}
		}
	}
	// A raw "..": the mux cleans the path (a redirect) and no route
	// answers it with a file.
	for _, u := range []string{hive.URL + "/v1/workers/../secret/s/logs", hive.URL + "/v1/workers/x/../../logs"} {
		if code, body := send(route{"GET", u, readTok, true}); code == http.StatusOK || strings.Contains(body, topSecret) {
			t.Errorf("GET %s: %d %q", u, code, body)
		}
	}
	// Valid ids whose log is a planted link: refused, not followed.
	for _, id := range []string{"llm-sym", "llm-hard"} {
		code, body := send(route{"GET", hive.URL + "/v1/workers/" + id + "/logs", readTok, true})
		if strings.Contains(body, topSecret) || code == http.StatusOK {
			t.Errorf("logs of %s (a planted link): %d %q", id, code, body)
		}
		if !strings.Contains(body, "link") {
			t.Errorf("logs of %s: %d %q, want the refusal to name the link", id, code, body)
		}
	}
	if b, _ := os.ReadFile(secretLog); string(b) != topSecret+"\n" {
		t.Fatalf("the secret was changed: %q", b)
	}
	// The daemons are unharmed.
	if code, body := harness.Call(t, "GET", hive.URL+"/v1/info", nil); code != 200 {
		t.Fatalf("hive after the attempts: %d %s", code, body)
	}
	if code, body := harness.Call(t, "GET", queen.URL+"/v1/info", nil); code != 200 {
		t.Fatalf("queen after the attempts: %d %s", code, body)
	}
	t.Logf("%d ids × %d routes refused", len(bad)+len(notWorker), len(routes("")))
}

// Before: a hard link planted at <id>.log.1.tmp made the hive (root)
// truncate the link's target and fill it with the worker's output at the
// first rotation, and one at <id>.log made the worker append to it. Now
// rotations write new files of random names (O_EXCL) and rename them, and
// a run's log is made new or refused.
func TestSecurityLogHardLinks(t *testing.T) {
	logs := filepath.Join(t.TempDir(), "logs")
	if err := os.Mkdir(logs, 0o700); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(t.TempDir(), "passwd")
	const content = "root:x:0:0:root:/root:/bin/sh\n"
	if err := os.WriteFile(victim, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"llm-rot.log.1.tmp", "llm-rot.log.1", "llm-rot.log.2", "llm-new.log"} {
		if err := os.Link(victim, filepath.Join(logs, name)); err != nil {
			t.Fatal(err)
		}
	}
	hive := harness.StartHive(t, harness.HiveOptions{Args: []string{"--worker-log-dir", logs,
		"--worker-log-max-size", "1Mi", "--worker-log-files", "3"}})

	// A run's log where a link is: the spawn is refused, naming it.
	code, body := harness.Call(t, "POST", hive.URL+"/v1/workers", api.SpawnRequest{Group: "llm", Instance: "new",
		Binary: harness.TestWorker(t), Args: []string{"--say", "evil::0:0:root:/root:/bin/sh"}})
	if code == http.StatusCreated || !strings.Contains(string(body), "links") {
		t.Errorf("spawn over a planted hard link: %d %s, want a refusal naming the link", code, body)
	}
	// Rotations over planted links: 1 MB/s of output through a 1 MiB log,
	// steady so that each rotation copies (a burst is partly dropped).
	w := spawn(t, hive, "rot", api.SpawnRequest{Args: []string{"--tick", "1ms"}})
	harness.WaitFor(t, 30*time.Second, func() error {
		fi, err := os.Stat(filepath.Join(logs, w.ID+".log.2"))
		if err != nil || os.SameFile(fi, mustStat(t, victim)) {
			return fmt.Errorf("no rotation past %s.log.2 yet (%v)", w.ID, err)
		}
		return nil
	})
	if b, _ := os.ReadFile(victim); string(b) != content {
		t.Fatalf("the hard links' target was written by the hive: %d bytes, starting %q", len(b), b[:min(len(b), 64)])
	}
}

func mustStat(t *testing.T, path string) os.FileInfo {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}
