//go:build linux

package integration

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/apiclient"
	"github.com/rbee-dev/rbee/internal/cgroups"
	"github.com/rbee-dev/rbee/internal/httpx"
	"github.com/rbee-dev/rbee/internal/launch"
	"github.com/rbee-dev/rbee/internal/procfs"
)

// The attacks of the security review, each against real daemons: every
// one must fail, and the daemon must answer normally afterwards with its
// state as it was.

var nobody = &syscall.Credential{Uid: 65534, Gid: 65534}

func init() {
	// http METHOD URL [Header: value | body=...]...: an HTTP client for
	// running as another user; prints the status, then the body.
	harness.RegisterHelper("http", func(args []string) int {
		if len(args) < 2 {
			fmt.Fprintln(os.Stderr, "usage: http METHOD URL [Header: value] [body=...]")
			return 2
		}
		var body io.Reader
		req, err := http.NewRequest(args[0], args[1], nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		for _, a := range args[2:] {
			if b, ok := strings.CutPrefix(a, "body="); ok {
				body = strings.NewReader(b)
				req.Body = io.NopCloser(body)
				req.ContentLength = int64(len(b))
				continue
			}
			k, v, _ := strings.Cut(a, ":")
			if strings.EqualFold(k, "Host") {
				req.Host = strings.TrimSpace(v)
				continue
			}
			req.Header.Set(k, strings.TrimSpace(v))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		fmt.Printf("%d\n%s", resp.StatusCode, b)
		return 0
	})
	// read FILE: prints the file, or the error reading it.
	harness.RegisterHelper("read", func(args []string) int {
		b, err := os.ReadFile(args[0])
		if err != nil {
			fmt.Println(err)
			return 1
		}
		fmt.Print(string(b))
		return 0
	})
}

// status returns the HTTP status the http helper printed.
func status(t *testing.T, r harness.HelperResult) int {
	t.Helper()
	line, _, _ := strings.Cut(r.Stdout, "\n")
	code, err := strconv.Atoi(line)
	if err != nil {
		t.Fatalf("http helper: %q %q (exit %d)", r.Stdout, r.Stderr, r.Code)
	}
	return code
}

// publicDir is a temporary directory every user can write, outside the
// private tree t.TempDir makes.
func publicDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "rbee-sec-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o777); err != nil {
		t.Fatal(err)
	}
	return d
}

// Before: any local user, and any web page open in a browser on the host,
// could spawn `sh -c 'id > FILE'` as root on a hive with default settings.
// Now the hive has a token generated into its state directory that other
// users cannot read, and cross-site requests are refused even with it.
func TestSecurityLocalUserAndBrowser(t *testing.T) {
	state := filepath.Join(publicDir(t), "state")
	hive := harness.StartHive(t, harness.HiveOptions{Env: []string{"RBEE_TOKEN="}, Args: []string{"--state-dir", state}})
	proof := filepath.Join(publicDir(t), "pwned")
	spawn := fmt.Sprintf(`{"group":"x","instance":"1","binary":"/bin/sh","args":["-c","id > %s"]}`, proof)
	tokenFile := filepath.Join(state, "token")
	st, err := os.Stat(tokenFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("generated token: %v %v", st, err)
	}
	if !strings.Contains(hive.Log(), tokenFile) {
		t.Fatalf("the hive does not say where its token is:\n%s", hive.Log())
	}
	tok, _ := os.ReadFile(tokenFile)
	bearer := "Authorization: Bearer " + strings.TrimSpace(string(tok))

	if r := harness.RunHelper(t, nobody, "read", tokenFile); !strings.Contains(r.Stdout, "permission denied") {
		t.Fatalf("another user read the token: %q", r.Stdout)
	}
	url := hive.URL + "/v1/workers"
	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{"local user, no token", []string{"Content-Type: application/json", "body=" + spawn}, 401},
		{"token in the query of a POST", []string{"Content-Type: application/json", "body=" + spawn}, 401},
		{"web page: simple text/plain request", []string{"Content-Type: text/plain", "Origin: http://evil.example", "body=" + spawn}, 403},
		{"web page with the token, text/plain", []string{bearer, "Content-Type: text/plain", "body=" + spawn}, 415},
		{"web page with the token, foreign Origin", []string{bearer, "Content-Type: application/json", "Origin: http://evil.example", "body=" + spawn}, 403},
		{"DNS rebinding with the token", []string{bearer, "Content-Type: application/json", "Host: evil.example", "body=" + spawn}, 403},
	} {
		target := url
		if strings.Contains(tc.name, "query") {
			target += "?access_token=" + strings.TrimSpace(string(tok))
		}
		if got := status(t, harness.RunHelper(t, nobody, "http", append([]string{"POST", target}, tc.args...)...)); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	time.Sleep(300 * time.Millisecond)
	if _, err := os.Stat(proof); err == nil {
		t.Fatal("a refused request ran its command")
	}
	var ws []api.Worker
	if err := (harness.Client{Token: strings.TrimSpace(string(tok))}).Get(url, &ws); err != nil || len(ws) != 0 {
		t.Fatalf("workers after the attacks: %v %v", ws, err)
	}
}

// Before: env LD_PRELOAD in a spawn request ran the attacker's library as
// root inside the cgroup shim. Now it is refused, naming the variable,
// and the shim never sees a worker's environment.
func TestSecurityLoaderVariables(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		harness.Cannot(t, "building the preload library needs gcc: %v", err)
	}
	dir := publicDir(t)
	so := filepath.Join(dir, "evil.so")
	if b, err := exec.Command("gcc", "-shared", "-fPIC", "-o", so, "../../internal/launch/testdata/preload.c").CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, b)
	}
	mark := filepath.Join(dir, "mark")
	hive := harness.StartHive(t, harness.HiveOptions{})
	for _, v := range []string{"LD_PRELOAD", "LD_AUDIT", "LD_LIBRARY_PATH", "GCONV_PATH"} {
		code, body := harness.Call(t, "POST", hive.URL+"/v1/workers", api.SpawnRequest{Group: "llm", Instance: "1", Binary: "/bin/true",
			Env: map[string]string{v: so, "PRELOAD_MARK": mark}})
		if code != 400 || !strings.Contains(string(body), v) {
			t.Fatalf("env %s: %d %s, want 400 naming it", v, code, body)
		}
	}
	// Nothing of a refused request ran: the library never loaded.
	if b, err := os.ReadFile(mark); err == nil {
		t.Fatalf("the preload library ran: %s", b)
	}
	// The hive spawns as before, with the environment a worker may have.
	w := spawn(t, hive, "fine", api.SpawnRequest{Args: []string{"--exit-after", "100ms"}, Env: map[string]string{"PRELOAD_MARK": mark}})
	harness.WaitFor(t, 5*time.Second, func() error {
		var got api.Worker
		harness.Get(t, hive.URL+"/v1/workers/"+w.ID, &got)
		if got.State != api.StateExited || got.ExitCode == nil || *got.ExitCode != 0 {
			return fmt.Errorf("worker %s exit %v, want a clean exit", got.State, got.ExitCode)
		}
		return nil
	})
}

// Before: the hive's connection cap refused silently. Now connections
// past it are counted: silent ones (no token) take the places of the
// oldest of them, and only with every slot held by connections that
// showed the token is a newcomer refused. The hive answers once it ends.
func TestSecurityHiveConnectionCap(t *testing.T) {
	hive := harness.StartHive(t, harness.HiveOptions{})
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", hive.Addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		return c
	}
	closed := func(c net.Conn) bool {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err := c.Read(make([]byte, 1))
		return errors.Is(err, io.EOF)
	}
	// 300 silent connections: the first ones are closed to make room.
	for range 300 {
		dial()
	}
	if !closed(conns[0]) {
		t.Fatal("the oldest of 300 silent connections is still open")
	}
	// 256 connections that showed the token, kept alive, fill the cap
	// (taking the silent ones' places): the next is refused.
	for i := range 256 {
		c := dial()
		fmt.Fprintf(c, "GET /v1/info HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n", hive.Addr, harness.Token)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("authenticated connection %d: %v", i+1, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Close {
			t.Fatalf("authenticated connection %d: %d, closed %v", i+1, resp.StatusCode, resp.Close)
		}
	}
	if !closed(dial()) {
		t.Fatal("a connection past a cap held by authenticated ones was not refused")
	}
	for _, c := range conns {
		c.Close()
	}
	harness.WaitFor(t, 5*time.Second, func() error {
		var info api.HiveInfo
		harness.Get(t, hive.URL+"/v1/info", &info)
		if n := info.Refused[httpx.RefusedOverMax]; n < 1 {
			return fmt.Errorf("%s %d, want at least 1", httpx.RefusedOverMax, n)
		}
		// One address may hold 16 unauthenticated connections: the
		// rest of the 300 were evicted.
		if n := info.Refused[httpx.RefusedEvicted]; n < 300-16 {
			return fmt.Errorf("%s %d, want at least %d", httpx.RefusedEvicted, n, 300-16)
		}
		return nil
	})
}

// Before: a worker (root, all capabilities) raised its own memory limit,
// moved itself into the hive's cgroup, forked without bound and ignored
// SIGTERM, and stopping it failed after 32 s with the process alive. Now
// every attempt fails and stop leaves nothing.
func TestSecurityHostileWorker(t *testing.T) {
	logs := t.TempDir()
	hive := harness.StartHive(t, harness.HiveOptions{Args: []string{"--worker-pids-max", "32", "--worker-log-dir", logs}})
	rec := spawn(t, hive, "evil", api.SpawnRequest{Args: []string{"--hostile", "--forks", "100", "--ignore-term", "--model", "m"}, MemoryLimit: "64Mi"})
	logFile := filepath.Join(logs, rec.ID+".log")
	var out string
	harness.WaitFor(t, 10*time.Second, func() error {
		b, _ := os.ReadFile(logFile)
		if out = string(b); !strings.Contains(out, "hostile signal-init") {
			return fmt.Errorf("worker output so far: %q", out)
		}
		return nil
	})
	attempts := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "hostile ") && strings.Contains(line, ": ") {
			attempts++
			if !strings.Contains(line, ": refused: ") {
				t.Errorf("the worker succeeded: %s", line)
			}
		}
	}
	if attempts < 5 {
		t.Fatalf("only %d attempts reported:\n%s", attempts, out)
	}
	var forked int
	fmt.Sscanf(out[strings.Index(out, "hostile forked "):], "hostile forked %d", &forked)
	if forked >= 32 {
		t.Fatalf("the worker forked %d children under a pids limit of 32", forked)
	}
	cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", rec.PID))
	if !strings.Contains(string(cg), rec.Cgroup) {
		t.Fatalf("the worker left its cgroup %s:\n%s", rec.Cgroup, cg)
	}
	var w api.Worker
	harness.WaitFor(t, 5*time.Second, func() error {
		harness.Get(t, hive.URL+"/v1/workers/"+rec.ID, &w)
		if len(w.PIDs) < 2 {
			return fmt.Errorf("pids %v", w.PIDs)
		}
		return nil
	})
	if w.MemLimitBytes == nil || *w.MemLimitBytes != 64<<20 || w.PidsLimit == nil || *w.PidsLimit != 32 || len(w.Errors) != 0 {
		t.Fatalf("record after the attempts: limits %v %v errors %v", w.MemLimitBytes, w.PidsLimit, w.Errors)
	}
	pids := w.PIDs
	start := time.Now()
	code, body := harness.Call(t, "DELETE", hive.URL+"/v1/workers/"+rec.ID, nil)
	took := time.Since(start)
	if code != 200 {
		t.Fatalf("stop: %d %s", code, body)
	}
	t.Logf("a worker ignoring SIGTERM with %d processes stopped in %v (grace 2s)", len(pids), took.Round(time.Millisecond))
	if took > 6*time.Second {
		t.Fatalf("stop took %v", took)
	}
	for _, pid := range pids {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid)); err == nil && strings.Contains(string(b), rec.Cgroup) {
			t.Fatalf("pid %d of the worker survived the stop", pid)
		}
	}
	if _, err := os.Stat(filepath.Join(cgroups.DefaultRoot, "memory", rec.Cgroup)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the worker's cgroup is left: %v", err)
	}
}

// Before: one shared token let any hive post heartbeats as any other (and
// spawn on every other hive), and tokens crossed the network in clear.
// Now each hive has its own token, good for its own heartbeats only, over
// TLS to a queen whose private CA the hive trusts.
func TestSecurityHiveTokensOverTLS(t *testing.T) {
	files := harness.NewTLS(t, "127.0.0.1")
	tokA, tokB := "hive-a-token-"+strings.Repeat("a", 20), "hive-b-token-"+strings.Repeat("b", 20)
	dir := t.TempDir()
	hiveTokens := filepath.Join(dir, "hive-tokens")
	os.WriteFile(hiveTokens, []byte("# id token\ngpu-a "+tokA+"\ngpu-b "+tokB+"\n"), 0o600)
	caCfg, err := apiclient.ClientTLS(files.CA)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: caCfg}
	t.Cleanup(tr.CloseIdleConnections)
	client := harness.WithToken(&http.Client{Transport: tr}, harness.Token)
	q := harness.StartDaemon(t, harness.DaemonConfig{Name: "queen", Package: "cmd/queen-rbee", Client: client,
		Args: []string{"--listen", "127.0.0.1:0", "--tls-cert", files.Cert, "--tls-key", files.Key, "--hive-tokens", hiveTokens}})
	hiveA := harness.StartHive(t, harness.HiveOptions{ID: "gpu-a", Queen: q.URL, Client: client, Args: []string{"--queen-ca", files.CA,
		"--queen-token-file", harness.WriteToken(t, tokA), "--interval", "300ms", "--tls-cert", files.Cert, "--tls-key", files.Key}})
	harness.StartHive(t, harness.HiveOptions{ID: "gpu-b", Queen: q.URL, Args: []string{"--queen-ca", files.CA,
		"--queen-token-file", harness.WriteToken(t, tokB), "--interval", "300ms"}})
	qc := harness.Client{HTTP: client}
	var b api.Hive
	harness.WaitFor(t, 10*time.Second, func() error {
		var hs []api.Hive
		if err := qc.Get(q.URL+"/v1/hives", &hs); err != nil {
			return err
		}
		if len(hs) != 2 {
			return fmt.Errorf("%d hives online", len(hs))
		}
		b = hs[1]
		return nil
	})
	// Host A is compromised: its token tries to speak for B, with B's
	// session and the largest sequence number, to redirect B's traffic.
	forged := api.Heartbeat{HiveID: "gpu-b", HiveURL: "https://attacker.example:7835", SessionID: b.SessionID,
		Seq: math.MaxUint64, IntervalMS: 1000, Node: api.Node{CPUCores: 8}}
	body, _ := json.Marshal(forged)
	req, _ := http.NewRequest("POST", q.URL+"/v1/hive-heartbeat", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tokA)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("hive A's token speaking for hive B: %d, want 403", resp.StatusCode)
	}
	// Nor may it read the registry or spawn on B.
	if err := (harness.Client{HTTP: client, Token: tokA}).Get(q.URL+"/v1/hives", new([]api.Hive)); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("hive token reading the registry: %v", err)
	}
	req, _ = http.NewRequest("POST", b.URL+"/v1/workers", strings.NewReader(`{"group":"x","instance":"1","binary":"/bin/true"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tokA)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("hive A's token spawning on hive B: %d, want 401", resp.StatusCode)
	}
	// B stays itself: same URL and session, heartbeats still applied.
	time.Sleep(time.Second)
	var after api.Hive
	if err := qc.Get(q.URL+"/v1/hives/gpu-b", &after); err != nil {
		t.Fatal(err)
	}
	if after.URL != b.URL || after.SessionID != b.SessionID || after.State != api.HiveStateOnline || after.Seq <= b.Seq {
		t.Fatalf("hive B after the forgery: %+v (was url %s session %s seq %d)", after, b.URL, b.SessionID, b.Seq)
	}
	// The CLI trusts the private CA with --ca, and only then.
	cli := harness.Build(t, "cmd/queen-rbee")
	env := append(os.Environ(), "RBEE_TOKEN="+harness.Token)
	cmd := exec.Command(cli, "hives", "--queen", q.URL, "--ca", files.CA)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "gpu-b") {
		t.Fatalf("queen-rbee hives --ca: %v\n%s", err, out)
	}
	cmd = exec.Command(cli, "hives", "--queen", q.URL)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "certificate") {
		t.Fatalf("queen-rbee hives without --ca: %v\n%s", err, out)
	}
	// TLS 1.0 and 1.1 are refused by both daemons.
	for _, u := range []string{q.URL, hiveA.Addr} {
		addr := strings.TrimPrefix(u, "https://")
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: caCfg.RootCAs, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
		if err == nil {
			c.Close()
			t.Fatalf("%s accepted TLS 1.1", addr)
		}
	}
	// Hive A serves its API over TLS: the queen knows its https URL, and
	// rbee-hive reaches it with --ca, and only then.
	if !strings.HasPrefix(hiveA.URL, "https://") {
		t.Fatalf("hive A with --tls-cert serves %s", hiveA.URL)
	}
	var a api.Hive
	if err := qc.Get(q.URL+"/v1/hives/gpu-a", &a); err != nil || a.URL != hiveA.URL {
		t.Fatalf("the queen has hive A at %q (%v), want %s", a.URL, err, hiveA.URL)
	}
	hiveCLI := harness.Build(t, "cmd/rbee-hive")
	cmd = exec.Command(hiveCLI, "info", "--hive", hiveA.URL, "--ca", files.CA)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "gpu-a") {
		t.Fatalf("rbee-hive info --ca: %v\n%s", err, out)
	}
	cmd = exec.Command(hiveCLI, "info", "--hive", hiveA.URL)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "certificate") {
		t.Fatalf("rbee-hive info without --ca: %v\n%s", err, out)
	}
	// No token reaches a log, refused ones included.
	for _, d := range []*harness.Daemon{q, hiveA} {
		for _, tok := range []string{harness.Token, tokA, tokB} {
			if strings.Contains(d.Log(), tok) {
				t.Fatalf("%s's log holds a token", d.Name)
			}
		}
	}
}

// Before: a worker at cpu_pct -1e308 was always "least loaded" and a GPU
// with 2^64-1 bytes of VRAM won every placement. Now such entries are
// dropped with the reason, and never win.
func TestSecurityForgedValues(t *testing.T) {
	q := harness.StartQueen(t)
	hive := harness.StartHive(t, harness.HiveOptions{ID: "honest", Queen: q.URL, Args: []string{"--interval", "300ms"}})
	spawn(t, hive, "1", api.SpawnRequest{Args: []string{"--model", "m"}})
	forged := api.Heartbeat{HiveID: "evil", HiveURL: "http://evil.example:7835", SessionID: "s", Seq: 1, IntervalMS: 1000,
		Node: api.Node{CPUCores: 8, GPUs: []api.GPU{{Index: 0, UUID: "GPU-evil", VRAMTotalBytes: api.Ptr(uint64(math.MaxUint64)), VRAMUsedBytes: api.Ptr(uint64(0))}}},
		Workers: []api.WorkerReport{api.ReportOf(&api.Worker{
			ID:           "llm-1",
			PID:          1,
			State:        api.StateReady,
			CPUPct:       api.Ptr(-1e308),
			GPUUtilPct:   api.Ptr(0.0),
			WorkerStatic: api.WorkerStatic{Group: "llm", Instance: "1", Model: api.Ptr("m")},
		}, true)}}
	code, body := harness.Call(t, "POST", q.URL+"/v1/hive-heartbeat", forged)
	var ack api.HeartbeatAck
	if err := json.Unmarshal(body, &ack); err != nil || code != 200 || len(ack.Dropped) != 1 || ack.Clamped != 1 {
		t.Fatalf("forged heartbeat: %d %s", code, body)
	}
	var d api.Decision
	harness.WaitFor(t, 10*time.Second, func() error {
		code, body := harness.Call(t, "GET", q.URL+"/v1/schedule?model=m", nil)
		if code != 200 {
			return fmt.Errorf("%d %s", code, body)
		}
		return json.Unmarshal(body, &d)
	})
	if d.HiveID != "honest" {
		t.Fatalf("the forged worker won: %+v", d)
	}
	code, body = harness.Call(t, "GET", q.URL+"/v1/schedule?model=other&vram_bytes=1Gi", nil)
	if code != 404 {
		t.Fatalf("placement on a forged GPU: %d %s", code, body)
	}
}

// Before: six 42 KiB gzip heartbeats (250 workers x 65,536 pids) took the
// queen to 1.6 GiB, 2,000 junk hive ids went in, idle connections stayed
// forever and stream clients had no cap. Now each is bounded, refused
// with a status, and the queen answers as before.
func TestSecurityQueenBounds(t *testing.T) {
	q := harness.StartQueen(t, "--max-hives", "1000", "--max-stream-clients", "2")
	idle, err := net.Dial("tcp", q.Addr) // says nothing, ever
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	opened := time.Now()
	rss := func() int {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", q.Pid()))
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
				return n
			}
		}
		return 0
	}
	before := rss()
	// The pid bomb: 250 workers with 65,536 pids each, gzip-compressed.
	var raw bytes.Buffer
	raw.WriteString(`{"hive_id":"bomb","session_id":"s","seq":1,"node":{"cpu_cores":8},"workers":[`)
	pids := strings.TrimSuffix(strings.Repeat("1,", 65536), ",")
	for i := range 250 {
		if i > 0 {
			raw.WriteByte(',')
		}
		fmt.Fprintf(&raw, `{"id":"llm-%d","group":"llm","instance":"%d","state":"ready","pids":[%s]}`, i, i, pids)
	}
	raw.WriteString("]}")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw.Bytes())
	zw.Close()
	t.Logf("pid bomb: %d bytes gzip, %d inflated", gz.Len(), raw.Len())
	for range 6 {
		req, _ := http.NewRequest("POST", q.URL+"/v1/hive-heartbeat", bytes.NewReader(gz.Bytes()))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Content-Encoding", "gzip")
		resp, err := harness.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Fatalf("pid bomb: %d, want 413", resp.StatusCode)
		}
	}
	// Bounded by the body limit (8 MiB), not by what the bomb inflates
	// to; the race detector's shadow memory multiplies what a daemon built
	// with -race holds.
	limit := 64 << 10
	if harness.RaceEnabled {
		limit *= 4
	}
	grew := rss() - before
	t.Logf("queen RSS %d KiB before six pid bombs, %d KiB more after (race detector: %v)", before, grew, harness.RaceEnabled)
	if grew > limit {
		t.Fatalf("the queen grew by %d KiB on refused pid bombs, more than %d", grew, limit)
	}
	// A body nested millions of levels deep (6 MiB of "[" in a 6 KiB
	// gzip) once overflowed the decoder's stack, which kills the process.
	gz.Reset()
	zw = gzip.NewWriter(&gz)
	zw.Write(bytes.Repeat([]byte("["), 6<<20))
	zw.Close()
	req, _ := http.NewRequest("POST", q.URL+"/v1/hive-heartbeat", bytes.NewReader(gz.Bytes()))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := harness.HTTP.Do(req)
	if err != nil {
		t.Fatalf("a deeply nested heartbeat: %v (the queen alive: %v)", err, q.Running())
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(b), "nested deeper") {
		t.Fatalf("a deeply nested heartbeat: %d %s, want 400 naming the depth", resp.StatusCode, b)
	}
	// 2,000 junk hive ids from 8 clients at once: 1,000 fit.
	var accepted, refused atomic.Int64
	var wg sync.WaitGroup
	for c := range 8 {
		wg.Go(func() {
			for i := c; i < 2000; i += 8 {
				hb := api.Heartbeat{HiveID: fmt.Sprintf("junk-%04d", i), SessionID: "s", Seq: 1, IntervalMS: 60000, Node: api.Node{CPUCores: 1}}
				b, _ := json.Marshal(hb)
				req, _ := http.NewRequest("POST", q.URL+"/v1/hive-heartbeat", bytes.NewReader(b))
				req.Header.Set("Content-Type", "application/json")
				resp, err := harness.HTTP.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				switch resp.StatusCode {
				case 200:
					accepted.Add(1)
				case 429:
					refused.Add(1)
					if ra := resp.Header.Get("Retry-After"); ra != "30" {
						t.Errorf("junk hive refused with Retry-After %q, want 30", ra)
					}
				default:
					t.Errorf("junk hive: %d", resp.StatusCode)
				}
			}
		})
	}
	wg.Wait()
	if accepted.Load() != 1000 || refused.Load() != 1000 {
		t.Fatalf("junk hives: %d accepted, %d refused; want 1000 each", accepted.Load(), refused.Load())
	}
	// Two stream clients fit; a third is told to come back later.
	s1 := harness.Subscribe(t, q.URL+"/v1/heartbeats/stream", harness.SSEOptions{})
	s2 := harness.Subscribe(t, q.URL+"/v1/heartbeats/stream", harness.SSEOptions{})
	req, _ = http.NewRequest("GET", q.URL+"/v1/heartbeats/stream", nil)
	resp, err = harness.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third stream client: %d", resp.StatusCode)
	}
	s1.Close()
	s2.Close()
	// The connection that never spoke is cut: after httpx.FirstByteTimeout
	// on a calm host, after the header timeout at the latest. (Slack for
	// the v2 lane's emulated CPU, which the pid bombs above keep busy.)
	idle.SetReadDeadline(opened.Add(httpx.ReadHeaderTimeout + 20*time.Second))
	if _, err := idle.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("an idle connection is still open after %v: %v", time.Since(opened), err)
	}
	// The queen answers as before, with what it had and the counts.
	var info api.QueenInfo
	harness.Get(t, q.URL+"/v1/info", &info)
	if info.Hives != 1000 || info.Refused["heartbeat_too_many_hives"] != 1000 || info.Refused["stream_clients_over_max"] != 1 {
		t.Fatalf("info after the attacks: hives %d refused %v", info.Hives, info.Refused)
	}
}

// Before: one worker with 300 arguments (started outside rbee, adopted by
// the hive) made the queen refuse its hive's every heartbeat. Now the hive
// clips what it reads from /proc to the heartbeat's bounds.
func TestSecurityAdoptedLongCommandLine(t *testing.T) {
	parent := harness.CgroupParent(t)
	m, err := cgroups.New(cgroups.Config{Parent: parent})
	if err != nil {
		t.Fatal(err)
	}
	g, err := m.Create("llm/long", cgroups.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	args := []string{harness.TestWorker(t), "--model", "m"}
	for i := range 300 {
		args = append(args, fmt.Sprintf("--port=%d", i))
	}
	exe, err := launch.OpenBinary(args[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	pl, _ := g.Placement()
	cmd, err := launch.Start(launch.Spec{Exe: exe, Argv: args, Env: []string{"PATH=/usr/bin:/bin"}, CgroupFD: pl.Dir, JoinProcs: pl.Procs})
	exe.Close()
	if pl.Dir != nil {
		pl.Dir.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	q := harness.StartQueen(t)
	harness.StartHive(t, harness.HiveOptions{Queen: q.URL, CgroupParent: parent, Args: []string{"--interval", "300ms"}})
	var ws []api.FleetWorker
	harness.WaitFor(t, 10*time.Second, func() error {
		if ws = queenWorkers(t, q, ""); len(ws) != 1 {
			return fmt.Errorf("%d workers", len(ws))
		}
		return nil
	})
	if len(ws[0].Args) != api.MaxWorkerArgs || *ws[0].Model != "m" || ws[0].PID != cmd.Process.Pid {
		t.Fatalf("adopted worker: %d args, model %v, pid %d", len(ws[0].Args), ws[0].Model, ws[0].PID)
	}
	var info api.QueenInfo
	harness.Get(t, q.URL+"/v1/info", &info)
	if info.Refused["heartbeat_invalid"] != 0 || info.Refused["worker_entries_dropped"] != 0 {
		t.Fatalf("the queen refused some of the hive: %v", info.Refused)
	}
}

// A daemon that refuses its command line exits non-zero with a message
// naming the fix, and leaves no cgroup behind.
func TestSecurityRefusedStarts(t *testing.T) {
	harness.RequireCgroups(t)
	bin := harness.Build(t, "cmd/rbee-hive")
	open := filepath.Join(t.TempDir(), "open-token")
	os.WriteFile(open, []byte(harness.Token), 0o644)
	os.Chmod(open, 0o644)
	writable := publicDir(t)
	parentDir := func(name string) string {
		if cgroups.Detect(cgroups.DefaultRoot) == cgroups.ModeV2 {
			return filepath.Join(cgroups.DefaultRoot, name) // absolute there
		}
		return filepath.Join(cgroups.DefaultRoot, "memory", ownCgroup(t, "memory"), name)
	}
	for _, tc := range []struct {
		name string
		args []string
		says string
	}{
		{"public listen without a bin dir", []string{"--listen", "0.0.0.0:0"}, "--worker-bin-dir"},
		{"world-readable token file", []string{"--token-file", open}, "chmod 600"},
		{"world-writable bin dir", []string{"--worker-bin-dir", writable, "--listen", "0.0.0.0:0"}, "writable"},
		{"world-writable log dir", []string{"--worker-log-dir", writable}, "--worker-log-dir: unsafe: " + writable + " is writable by group or others"},
		{"log dir below a world-writable one", []string{"--worker-log-dir", filepath.Join(writable, "logs")}, "is writable by group or others"},
		{"token in clear text", []string{"--queen", "http://192.0.2.1:7833"}, "--insecure-no-tls"},
		{"worker user unknown", []string{"--worker-user", "no-such-user-here"}, "--worker-user"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := harness.CgroupParent(t)
			cmd := exec.Command(bin, append([]string{"--cgroup-parent", parent, "--gpu", "none", "--state-dir", t.TempDir()}, tc.args...)...)
			cmd.Env = append(os.Environ(), "RBEE_TOKEN="+harness.Token)
			if strings.Contains(tc.name, "token file") {
				cmd.Env = append(os.Environ(), "RBEE_TOKEN=")
			}
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), tc.says) {
				t.Fatalf("%v: %s; want a failure naming %q", err, out, tc.says)
			}
			if _, err := os.Stat(parentDir(parent)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a refused start left its cgroup parent %s (%v)", parentDir(parent), err)
			}
		})
	}
}

// ownCgroup is this process's cgroup in the v1 controller ctrl, or its v2
// cgroup when ctrl is "".
func ownCgroup(t *testing.T, ctrl string) string {
	t.Helper()
	self, err := procfs.SelfCgroups()
	if err != nil {
		t.Fatal(err)
	}
	p, ok := self[ctrl]
	if !ok {
		t.Fatalf("no %q cgroup in /proc/self/cgroup: %v", ctrl, self)
	}
	return p
}

// The client commands find the token a daemon generated on this host, and
// say what to do when they have none.
func TestSecurityClientFindsGeneratedToken(t *testing.T) {
	state := t.TempDir()
	q := harness.StartDaemon(t, harness.DaemonConfig{Name: "queen", Package: "cmd/queen-rbee", Env: []string{"RBEE_TOKEN="},
		Args: []string{"--listen", "127.0.0.1:0", "--state-dir", state}})
	tok, err := os.ReadFile(filepath.Join(state, "token"))
	if err != nil {
		t.Fatal(err)
	}
	q.Client = harness.WithToken(nil, strings.TrimSpace(string(tok)))
	cli := harness.Build(t, "cmd/queen-rbee")
	run := func(env ...string) (string, error) {
		cmd := exec.CommandContext(context.Background(), cli, "hives", "--queen", q.URL)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run("RBEE_TOKEN=", "RBEE_STATE_DIR="+state); err != nil || !strings.Contains(out, "HIVE") {
		t.Fatalf("with the generated token: %v\n%s", err, out)
	}
	out, err := run("RBEE_TOKEN=", "RBEE_STATE_DIR="+t.TempDir())
	if err == nil || !strings.Contains(out, "401") || !strings.Contains(out, "--token-file") {
		t.Fatalf("without a token: %v\n%s", err, out)
	}
}
