//go:build linux

package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-rod/rod"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/harness/loadgen"
	"github.com/rbee-dev/rbee/internal/api"
)

// readToken writes a read-only token to a 0600 file and returns both.
func readToken(t *testing.T) (tok, file string) {
	t.Helper()
	tok = "read-" + strings.Repeat("r", 32)
	file = filepath.Join(t.TempDir(), "read-token")
	if err := os.WriteFile(file, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return tok, file
}

// pageState is what the dashboard shows, read from its DOM.
type pageState struct {
	Conn    string            `json:"conn"`
	Rows    map[string]rowRef `json:"rows"`
	Cards   map[string]string `json:"cards"` // hive -> class
	Log     []string          `json:"log"`
	Errors  []string          `json:"errors"`
	Hash    string            `json:"hash"`
	Stored  string            `json:"stored"`
	Snaps   int               `json:"snapshots"`
	Resyncs int               `json:"resyncs"`
}

type rowRef struct {
	Model, State, CPU, Mem, Hidden string
	NullTitle                      string
}

const readPage = `() => {
  const rows = {};
  for (const tr of document.querySelectorAll("#workers tbody tr")) {
    const c = tr.querySelectorAll("td .v");
    const nul = tr.querySelector(".null");
    rows[tr.dataset.worker] = {Model: c[2].textContent, State: c[3].textContent, CPU: c[5].textContent, Mem: c[6].textContent,
      Hidden: String(tr.hidden), NullTitle: nul ? nul.title : ""};
  }
  const cards = {};
  for (const c of document.querySelectorAll("#hives .card")) cards[c.dataset.hive] = c.className;
  return {conn: document.getElementById("conn-text").textContent, rows, cards,
    log: [...document.querySelectorAll("#log li")].map((li) => li.textContent),
    errors: window.rbeeStats.errors, hash: location.hash, stored: sessionStorage.getItem("rbee.token") || "",
    snapshots: window.rbeeStats.snapshots, resyncs: window.rbeeStats.resyncs};
}`

func readDashboard(t *testing.T, b *harness.Browser, p *rod.Page) pageState {
	t.Helper()
	var s pageState
	b.Eval(p, readPage, &s)
	return s
}

// The dashboard as a user meets it, in a real browser: the page fills
// from the snapshot, a spawned worker's row appears within a second, a
// killed one's exit reaches the event log and its row goes, a stale hive
// shows, a queen restart is survived through a resync, and nothing in the
// page throws. It leaves screenshots under artifacts/dashboard/.
func TestDashboardInBrowser(t *testing.T) {
	tok, tokFile := readToken(t)
	queen := harness.StartQueen(t, "--read-token-file", tokFile)
	hive := harness.StartHive(t, harness.HiveOptions{ID: "gpu-node-1", Queen: queen.URL, Args: []string{"--interval", "500ms"}})
	a := spawn(t, hive, "9301", api.SpawnRequest{Args: []string{"--model", "qwen2.5-0.5b", "--mem", "64Mi", "--cpu", "20"},
		MemoryLimit: "512Mi", CPULimit: "100%"})
	harness.WaitFor(t, 10*time.Second, func() error {
		if n := len(queenWorkers(t, queen, "")); n != 1 {
			return fmt.Errorf("%d workers at the queen", n)
		}
		return nil
	})
	shots := harness.ArtifactDir(t, "dashboard")
	b := harness.NewBrowser(t)

	// Without a token the page asks for one, and says so.
	p0 := b.Open(queen.URL+"/", 1280, 800)
	harness.WaitFor(t, 10*time.Second, func() error {
		var shown bool
		b.Eval(p0, `() => !document.getElementById("token-form").hidden`, &shown)
		if !shown {
			return fmt.Errorf("no token form")
		}
		return nil
	})
	_ = p0.Close()
	// The operator token in the fragment: refused in a URL, the page says
	// so, and forgets it.
	pop := b.Open(queen.URL+"/#token="+harness.Token, 1280, 800)
	harness.WaitFor(t, 10*time.Second, func() error {
		var st struct {
			Shown  bool
			Why    string
			Stored string
		}
		b.Eval(pop, `() => ({Shown: !document.getElementById("token-form").hidden, Why: document.getElementById("token-why").textContent,
			Stored: sessionStorage.getItem("rbee.token") || ""})`, &st)
		if !st.Shown || !strings.Contains(st.Why, "may not travel in a URL") || st.Stored != "" {
			return fmt.Errorf("operator token in the fragment: %+v", st)
		}
		return nil
	})
	_ = pop.Close()

	// With the token in the fragment: the page fills from the snapshot.
	p := b.Open(queen.URL+"/#token="+tok, 1280, 800)
	var s pageState
	harness.WaitFor(t, 10*time.Second, func() error {
		s = readDashboard(t, b, p)
		if r, ok := s.Rows[a.ID]; !ok || r.Model != "qwen2.5-0.5b" || s.Conn != "live" {
			return fmt.Errorf("page: conn %q rows %v", s.Conn, s.Rows)
		}
		return nil
	})
	// The browser took the stream compressed, and the page read it.
	if ce, ok := b.ResponseHeader("/v1/heartbeats/stream?access_token="+tok, "Content-Encoding"); !ok || ce != "gzip" {
		t.Errorf("the stream reached the browser with Content-Encoding %q (a response seen: %v), want gzip", ce, ok)
	}
	if s.Hash != "" || s.Stored != tok {
		t.Fatalf("token: fragment %q left in the address bar, sessionStorage %q", s.Hash, s.Stored)
	}
	if _, ok := s.Cards["gpu-node-1"]; !ok {
		t.Fatalf("no card for the hive: %v", s.Cards)
	}
	// A number that is not there shows as "—" with why, never as 0: this
	// hive has no GPU backend.
	var gpuCell struct{ Text, Title string }
	b.Eval(p, `(id) => { const c = document.querySelector('tr[data-worker="'+id+'"] td:nth-child(9) .v'); return {Text: c.textContent, Title: c.title}; }`, &gpuCell, a.ID)
	if gpuCell.Text != "—" || !strings.Contains(gpuCell.Title, "no GPU backend") {
		t.Fatalf("GPU cell of a hive without GPUs: %+v", gpuCell)
	}
	// Memory reads what the worker holds, against its limit.
	harness.WaitFor(t, 10*time.Second, func() error {
		s = readDashboard(t, b, p)
		if m := s.Rows[a.ID].Mem; !strings.Contains(m, "MiB / 512 MiB") {
			return fmt.Errorf("memory cell %q", m)
		}
		return nil
	})
	b.Screenshot(p, true, shots, "idle")

	// A spawned worker's row appears, with its model, within a second.
	start := time.Now()
	w2 := spawn(t, hive, "9302", api.SpawnRequest{Args: []string{"--model", "llama-3.1-8b", "--cpu", "30"}, CPULimit: "50%"})
	var took time.Duration
	harness.WaitFor(t, 5*time.Second, func() error {
		var model string
		b.Eval(p, `(id) => { const r = document.querySelector('tr[data-worker="'+id+'"]'); return r ? r.querySelectorAll("td .v")[2].textContent : ""; }`, &model, w2.ID)
		if model != "llama-3.1-8b" {
			return fmt.Errorf("row of %s: model %q", w2.ID, model)
		}
		took = time.Since(start)
		return nil
	})
	t.Logf("spawn request → row in the page: %v", took.Round(time.Millisecond))
	if took > time.Second {
		t.Errorf("the spawned worker's row took %v to appear, want within 1 s", took)
	}
	for i := 3; i <= 6; i++ {
		spawn(t, hive, fmt.Sprint(9300+i), api.SpawnRequest{Args: []string{"--model", []string{"qwen2.5-0.5b", "bge-small-en"}[i%2], "--cpu", fmt.Sprint(5 * i), "--mem", fmt.Sprintf("%dMi", 16*i)},
			MemoryLimit: "256Mi"})
	}
	harness.WaitFor(t, 10*time.Second, func() error {
		if s = readDashboard(t, b, p); len(s.Rows) != 6 {
			return fmt.Errorf("%d rows", len(s.Rows))
		}
		return nil
	})
	time.Sleep(3 * time.Second) // a few seconds of sparkline
	b.Screenshot(p, true, shots, "busy")

	// Filter by model: the other rows hide.
	b.Eval(p, `() => { const s = document.getElementById("filter-model"); s.value = "bge-small-en"; s.dispatchEvent(new Event("change")); }`, nil)
	harness.WaitFor(t, 5*time.Second, func() error {
		s = readDashboard(t, b, p)
		for id, r := range s.Rows {
			if (r.Model == "bge-small-en") == (r.Hidden == "true") {
				return fmt.Errorf("filter bge-small-en: row %s (%s) hidden %s", id, r.Model, r.Hidden)
			}
		}
		return nil
	})
	b.Eval(p, `() => { const s = document.getElementById("filter-model"); s.value = ""; s.dispatchEvent(new Event("change")); }`, nil)
	// Sort by memory, largest first: the rows come in that order.
	b.Eval(p, `() => { const th = document.querySelector('th[data-sort="mem"]'); th.click(); }`, nil)
	harness.WaitFor(t, 5*time.Second, func() error {
		var order []string
		b.Eval(p, `() => [...document.querySelectorAll("#workers tbody tr")].map((tr) => tr.dataset.worker)`, &order)
		mem := map[string]uint64{}
		for _, w := range queenWorkers(t, queen, "") {
			if w.MemBytes != nil {
				mem[w.ID] = *w.MemBytes
			}
		}
		if mem[order[0]] < mem[order[len(order)-1]] {
			return fmt.Errorf("sorted by memory, largest first: %v (memory %v)", order, mem)
		}
		return nil
	})

	// At 1280 px no cell is cut: each figure and its sparkline fit.
	var cut []string
	b.Eval(p, `() => [...document.querySelectorAll("#workers tbody td")].filter((td) => td.scrollWidth > td.clientWidth + 1).map((td) => td.cellIndex + ": " + td.textContent)`, &cut)
	if len(cut) > 0 {
		t.Errorf("cells cut at 1280 px: %q", cut)
	}

	// A row's click opens the worker's detail: record, limits, the command
	// that follows its output; it stays open through the worker's end,
	// with how it ended.
	b.Eval(p, `(id) => document.querySelector('tr[data-worker="'+id+'"]').click()`, nil, w2.ID)
	detail := func() string {
		var text string
		b.Eval(p, `() => { const d = document.getElementById("detail"); return d.hidden ? "" : d.innerText; }`, &text)
		return text
	}
	harness.WaitFor(t, 5*time.Second, func() error {
		d := detail()
		for _, want := range []string{w2.ID + " on gpu-node-1", "llama-3.1-8b", "cpu 50.0%", "rbee-hive logs -f " + w2.ID + " --hive " + hive.URL, "Restarts"} {
			if !strings.Contains(d, want) {
				return fmt.Errorf("detail lacks %q:\n%s", want, d)
			}
		}
		return nil
	})
	b.Screenshot(p, false, shots, "detail")

	// Killing a worker puts its exit in the event log and removes its row.
	if err := syscall.Kill(w2.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, 5*time.Second, func() error {
		s = readDashboard(t, b, p)
		if _, ok := s.Rows[w2.ID]; ok {
			return fmt.Errorf("row of the killed %s still there", w2.ID)
		}
		if !slices.ContainsFunc(s.Log, func(l string) bool { return strings.Contains(l, w2.ID) && strings.Contains(l, "SIGKILL") }) {
			return fmt.Errorf("event log lacks the kill of %s: %q", w2.ID, s.Log)
		}
		if d := detail(); !strings.Contains(d, "killed by SIGKILL") {
			return fmt.Errorf("the open detail does not say how %s ended:\n%s", w2.ID, d)
		}
		return nil
	})
	b.Eval(p, `() => document.dispatchEvent(new KeyboardEvent("keydown", {key: "Escape"}))`, nil)
	if d := detail(); d != "" {
		t.Errorf("Escape left the detail open:\n%s", d)
	}

	// A hive that goes quiet shows as stale.
	if err := syscall.Kill(hive.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, 10*time.Second, func() error {
		if s = readDashboard(t, b, p); !strings.Contains(s.Cards["gpu-node-1"], "stale") {
			return fmt.Errorf("card %q", s.Cards["gpu-node-1"])
		}
		return nil
	})
	b.Screenshot(p, true, shots, "stale")
	if err := syscall.Kill(hive.Pid(), syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, 10*time.Second, func() error {
		if s = readDashboard(t, b, p); strings.Contains(s.Cards["gpu-node-1"], "stale") {
			return fmt.Errorf("card still %q after the hive came back", s.Cards["gpu-node-1"])
		}
		return nil
	})

	// The queen restarts: the page says it is reconnecting, then comes
	// back through a resync snapshot with every worker.
	queen.Stop()
	harness.WaitFor(t, 10*time.Second, func() error {
		if s = readDashboard(t, b, p); !strings.HasPrefix(s.Conn, "reconnecting") {
			return fmt.Errorf("conn %q while the queen is down", s.Conn)
		}
		return nil
	})
	queen.Restart()
	harness.WaitFor(t, 20*time.Second, func() error {
		s = readDashboard(t, b, p)
		if s.Conn != "live" || s.Resyncs < 1 || len(s.Rows) != 5 {
			return fmt.Errorf("after the queen's restart: conn %q, %d resyncs, %d rows", s.Conn, s.Resyncs, len(s.Rows))
		}
		return nil
	})

	// A phone: the same page, narrower.
	b.Resize(p, 390, 844)
	time.Sleep(500 * time.Millisecond)
	var overflow bool
	b.Eval(p, `() => document.documentElement.scrollWidth > window.innerWidth + 1`, &overflow)
	if overflow {
		t.Errorf("at phone width the page scrolls sideways")
	}
	b.Screenshot(p, true, shots, "phone")

	if errs := b.Errors(); len(errs) > 0 || len(s.Errors) > 0 {
		t.Fatalf("JavaScript errors: %q %q", errs, s.Errors)
	}
}

// The dashboard at fleet scale: 10 hives of 100 workers at 1 Hz (a load
// generator posting as hives do). The page keeps up, and the test reports
// its frame times, measured in the page with requestAnimationFrame.
func TestDashboardFleetFrameTime(t *testing.T) {
	tok, tokFile := readToken(t)
	queen := harness.StartQueen(t, "--read-token-file", tokFile)
	fleet := loadgen.Fleet("rack", 10, 100, 8)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	post := func() {
		for _, h := range fleet {
			if _, err := loadgen.Post(ctx, harness.HTTP, queen.URL, harness.Token, h.Next()); err != nil && ctx.Err() == nil {
				t.Errorf("post %s: %v", h.ID, err)
			}
		}
	}
	post()
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				post()
			}
		}
	}()
	b := harness.NewBrowser(t)
	p := b.Open(queen.URL+"/#token="+tok, 1440, 900)
	harness.WaitFor(t, 20*time.Second, func() error {
		var n int
		b.Eval(p, `() => document.querySelectorAll("#workers tbody tr").length`, &n)
		if n != 1000 {
			return fmt.Errorf("%d rows", n)
		}
		return nil
	})
	var before struct{ Events, ApplyMs, RenderMs float64 }
	b.Eval(p, `() => ({Events: rbeeStats.events, ApplyMs: rbeeStats.applyMs, RenderMs: rbeeStats.renderMs})`, &before)
	var frames []float64
	const measure = 10 * time.Second
	b.Eval(p, `(ms) => new Promise((done) => {
		const d = []; let last = performance.now(); const t0 = last;
		const f = (now) => { d.push(now - last); last = now; if (now - t0 < ms) requestAnimationFrame(f); else done(d); };
		requestAnimationFrame(f);
	})`, &frames, measure.Milliseconds())
	var after struct{ Events, ApplyMs, RenderMs float64 }
	b.Eval(p, `() => ({Events: rbeeStats.events, ApplyMs: rbeeStats.applyMs, RenderMs: rbeeStats.renderMs})`, &after)
	slices.Sort(frames)
	q := func(f float64) float64 { return frames[min(len(frames)-1, int(f*float64(len(frames))))] }
	long := 0
	for _, f := range frames {
		if f > 50 {
			long++
		}
	}
	busy := (after.ApplyMs + after.RenderMs - before.ApplyMs - before.RenderMs) / float64(measure.Milliseconds())
	t.Logf("10 hives × 100 workers at 1 Hz, over %v: %d frames; frame time p50 %.1f ms, p99 %.1f ms, max %.1f ms; %d frames over 50 ms; "+
		"%.0f events applied; the page's own JavaScript busy %.1f%% of the time (apply %.0f ms, render %.0f ms)",
		measure, len(frames), q(.5), q(.99), frames[len(frames)-1], long, after.Events-before.Events, busy*100,
		after.ApplyMs-before.ApplyMs, after.RenderMs-before.RenderMs)
	// It keeps up: every hive's telemetry arrived in those seconds.
	if got := after.Events - before.Events; got < 10*(measure.Seconds()-3) {
		t.Fatalf("the page applied %.0f events in %v, want about %v (10 hives at 1 Hz)", got, measure, 10*measure.Seconds())
	}
	if errs := b.Errors(); len(errs) > 0 {
		t.Fatalf("JavaScript errors: %q", errs)
	}
	b.Screenshot(p, false, harness.ArtifactDir(t, "dashboard"), "fleet")
}
