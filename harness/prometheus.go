package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Prometheus is a real Prometheus server (Debian's prometheus package)
// on loopback, for tests that check rbee's metrics the way operators
// consume them.
type Prometheus struct {
	URL string
	t   TB
}

// PromTarget is one scrape job of StartPrometheus.
type PromTarget struct {
	Job       string
	Addr      string // host:port
	TokenFile string // sent as the bearer token ("" sends none)
}

// StartPrometheus starts Prometheus scraping targets every second, with
// its data in a temporary directory; it stops with the test. Without the
// prometheus binary the test cannot run (see Cannot).
func StartPrometheus(t TB, targets ...PromTarget) *Prometheus {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		Cannot(t, "the test scrapes rbee with a real Prometheus: no prometheus on PATH (apt-get install prometheus)")
	}
	dir := t.TempDir()
	var cfg strings.Builder
	cfg.WriteString("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n")
	for _, tg := range targets {
		fmt.Fprintf(&cfg, "  - job_name: %q\n    static_configs:\n      - targets: [%q]\n", tg.Job, tg.Addr)
		if tg.TokenFile != "" {
			fmt.Fprintf(&cfg, "    authorization:\n      credentials_file: %q\n", tg.TokenFile)
		}
	}
	file := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(file, []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	log := &logBuffer{}
	cmd := exec.Command(bin, "--config.file="+file, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("---- prometheus config ----\n%s---- prometheus log ----\n%s", cfg.String(), log.String())
		}
	})
	p := &Prometheus{URL: "http://" + addr, t: t}
	WaitFor(t, 30*time.Second, func() error {
		select {
		case <-exited:
			t.Fatalf("prometheus exited: %s", log.String())
		default:
		}
		resp, err := http.Get(p.URL + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("/-/ready: %s", resp.Status)
		}
		return nil
	})
	return p
}

// PromSample is one series of an instant query's answer.
type PromSample struct {
	Metric map[string]string
	Value  float64
}

// Query runs an instant PromQL query and returns its samples (an error
// when Prometheus refuses the query).
func (p *Prometheus) Query(expr string) ([]PromSample, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", p.URL+"/api/v1/query?query="+url.QueryEscape(expr), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("query %s: %s: %w", expr, resp.Status, err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", expr, body.Error)
	}
	var out []PromSample
	for _, r := range body.Data.Result {
		s, _ := r.Value[1].(string)
		var v float64
		if _, err := fmt.Sscan(s, &v); err != nil && s != "NaN" {
			return nil, fmt.Errorf("query %s: value %q", expr, s)
		}
		out = append(out, PromSample{Metric: r.Metric, Value: v})
	}
	return out, nil
}

// Targets returns each scrape target's job and health ("up", "down")
// with its last error.
func (p *Prometheus) Targets() (map[string]string, error) {
	resp, err := http.Get(p.URL + "/api/v1/targets")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			ActiveTargets []struct {
				Labels    map[string]string `json:"labels"`
				Health    string            `json:"health"`
				LastError string            `json:"lastError"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, tg := range body.Data.ActiveTargets {
		out[tg.Labels["job"]] = strings.TrimSpace(tg.Health + " " + tg.LastError)
	}
	return out, nil
}
