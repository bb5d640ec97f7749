//go:build linux

package integration

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/harness/gpufake"
	"github.com/rbee-dev/rbee/internal/api"
)

// scrape GETs a daemon's /metrics with token and returns the status and
// body.
func scrape(t *testing.T, base, token string) (int, string) {
	t.Helper()
	code, _, body := harness.GetAs(t, base+"/metrics", token)
	return code, body
}

// promtool checks an exposition with Prometheus's own linter.
func promtool(t *testing.T, name, text string) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		harness.Cannot(t, "no promtool on PATH (apt-get install prometheus): the test lints /metrics with it")
	}
	cmd := exec.Command(bin, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics on the %s's /metrics: %v\n%s", name, err, out)
	}
}

// Both daemons' /metrics pass promtool, answer a read-only token and no
// anonymous request; a real Prometheus scraping them reads a worker's
// memory as the API reports it, and every panel of the Grafana dashboard
// in deploy/grafana/rbee.json finds data.
func TestPrometheusScrapesQueenAndHive(t *testing.T) {
	tok, tokFile := readToken(t)
	queen := harness.StartQueen(t, "--read-token-file", tokFile)
	fake := harness.FakeNvidiaSMI(t, gpufake.H200Busy())
	hive := harness.StartHive(t, harness.HiveOptions{ID: "gpu-node-1", Queen: queen.URL,
		Args: []string{"--interval", "500ms", "--gpu", "nvidia-smi", "--nvidia-smi", fake.Path, "--read-token-file", tokFile}})
	w := spawn(t, hive, "9301", api.SpawnRequest{Args: []string{"--model", "qwen2.5-0.5b", "--mem", "64Mi", "--cpu", "20"},
		MemoryLimit: "512Mi", CPULimit: "100%"})
	sc := gpufake.H200Busy()
	sc.Procs[0].PID = w.PID // the worker holds 3786 MiB of VRAM at 99 % SM
	fake.Set(sc)
	harness.WaitFor(t, 10*time.Second, func() error {
		ws := queenWorkers(t, queen, "")
		if len(ws) != 1 || ws[0].VRAMBytes == nil || *ws[0].VRAMBytes == 0 || ws[0].MemBytes == nil || *ws[0].MemBytes < 64<<20 {
			return fmt.Errorf("workers at the queen: %+v", ws)
		}
		return nil
	})

	for _, d := range []*harness.Daemon{queen, hive} {
		if code, body := scrape(t, d.URL, ""); code != 401 {
			t.Fatalf("%s /metrics without a token: %d %s", d.Name, code, body)
		}
		code, body := scrape(t, d.URL, tok)
		if code != 200 {
			t.Fatalf("%s /metrics with the read-only token: %d %s", d.Name, code, body)
		}
		promtool(t, d.Name, body)
		for _, want := range []string{
			`rbee_worker_info{group="llm",hive="gpu-node-1",model="qwen2.5-0.5b",worker="llm-9301",worker_instance="9301"} 1`,
			`rbee_worker_memory_limit_bytes{hive="gpu-node-1",worker="llm-9301"} 5.36870912e+08`,
			`rbee_worker_cpu_limit_cores{hive="gpu-node-1",worker="llm-9301"} 1`,
			`rbee_worker_gpu_memory_used_bytes{gpu="0",hive="gpu-node-1",uuid="GPU-263ebfcc-c477-a4dc-c4c5-bc4f9337309e",worker="llm-9301"} 3.969908736e+09`,
			`rbee_worker_gpu_utilization_ratio{gpu="0",hive="gpu-node-1",uuid="GPU-263ebfcc-c477-a4dc-c4c5-bc4f9337309e",worker="llm-9301"} 0.99`,
			`rbee_gpu_memory_total_bytes{gpu="0",hive="gpu-node-1",uuid="GPU-263ebfcc-c477-a4dc-c4c5-bc4f9337309e"} 1.50754820096e+11`,
			"rbee_worker_cpu_seconds_total{", "rbee_worker_io_read_bytes_total{", "rbee_worker_start_time_seconds{",
			"go_goroutines ", "process_resident_memory_bytes ",
		} {
			if !strings.Contains(body, want) {
				t.Errorf("%s /metrics lacks %s", d.Name, want)
			}
		}
		// The model is a label of the info metric only.
		if regexp.MustCompile(`(?m)^rbee_worker_(cpu|memory|io|gpu)[a-z_]*\{[^}]*model=`).MatchString(body) {
			t.Errorf("%s: a model label on a worker's numbers (it belongs on rbee_worker_info)", d.Name)
		}
	}
	_, qm := scrape(t, queen.URL, tok)
	for _, want := range []string{"rbee_queen_heartbeats_received_total ", `rbee_queen_hives{state="online"} 1`, "rbee_queen_ingest_duration_seconds_bucket{",
		`rbee_queen_heartbeats_refused_total{reason="invalid"} 0`, "rbee_queen_stream_clients ", `rbee_hive_up{hive="gpu-node-1"} 1`} {
		if !strings.Contains(qm, want) {
			t.Errorf("queen /metrics lacks %s", want)
		}
	}
	_, hm := scrape(t, hive.URL, tok)
	for _, want := range []string{"rbee_hive_collection_duration_seconds_bucket{", "rbee_hive_gpu_query_duration_seconds_count ",
		`rbee_hive_gpu_query_failures_total{reason="timeout"} 0`, "rbee_hive_heartbeats_sent_total "} {
		if !strings.Contains(hm, want) {
			t.Errorf("hive /metrics lacks %s", want)
		}
	}

	prom := harness.StartPrometheus(t,
		harness.PromTarget{Job: "rbee-queen", Addr: hostPort(t, queen.URL), TokenFile: tokFile},
		harness.PromTarget{Job: "rbee-hive", Addr: hostPort(t, hive.URL), TokenFile: tokFile})
	harness.WaitFor(t, 20*time.Second, func() error {
		tg, err := prom.Targets()
		if err != nil || tg["rbee-queen"] != "up" || tg["rbee-hive"] != "up" {
			return fmt.Errorf("targets %v %v", tg, err)
		}
		return nil
	})
	// A worker's memory in PromQL is what the API reports.
	for _, job := range []string{"rbee-queen", "rbee-hive"} {
		expr := fmt.Sprintf(`rbee_worker_memory_usage_bytes{job=%q,hive="gpu-node-1",worker="llm-9301"}`, job)
		harness.WaitFor(t, 15*time.Second, func() error {
			got, err := prom.Query(expr)
			if err != nil || len(got) != 1 {
				return fmt.Errorf("%s: %v %v", expr, got, err)
			}
			api := queenWorkers(t, queen, "")[0]
			if d := got[0].Value - float64(*api.MemBytes); d < -0.05*got[0].Value || d > 0.05*got[0].Value {
				return fmt.Errorf("%s = %.0f, the API says %d", expr, got[0].Value, *api.MemBytes)
			}
			return nil
		})
	}

	// Every panel query of the Grafana dashboard returns data.
	panels := grafanaQueries(t)
	vars := strings.NewReplacer(`$job`, "rbee-queen", `$queen`, hostPort(t, queen.URL), `$hive`, ".*", `$model`, ".*", `$__rate_interval`, "10s")
	time.Sleep(3 * time.Second) // rate() needs a few scrapes
	harness.WaitFor(t, 30*time.Second, func() error {
		var empty []string
		for _, q := range panels {
			got, err := prom.Query(vars.Replace(q.expr))
			if err != nil {
				t.Fatalf("panel %q: %v", q.panel, err)
			}
			if len(got) == 0 {
				empty = append(empty, q.panel+": "+q.expr)
			}
		}
		if len(empty) > 0 {
			return fmt.Errorf("%d of %d panel queries return nothing:\n%s", len(empty), len(panels), strings.Join(empty, "\n"))
		}
		return nil
	})
	t.Logf("%d panel queries of deploy/grafana/rbee.json return data", len(panels))
}

func hostPort(t *testing.T, base string) string {
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

type panelQuery struct{ panel, expr string }

// grafanaQueries returns every target expression of the dashboard's
// panels, and checks that the file is a dashboard at all.
func grafanaQueries(t *testing.T) []panelQuery {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(harness.ModuleRoot(t), "deploy", "grafana", "rbee.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil || d.Title == "" || d.UID == "" {
		t.Fatalf("deploy/grafana/rbee.json: %v (title %q uid %q)", err, d.Title, d.UID)
	}
	var out []panelQuery
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Fatalf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			out = append(out, panelQuery{p.Title, tg.Expr})
		}
	}
	return out
}
