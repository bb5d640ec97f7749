//go:build linux

package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/harness/loadgen"
	"github.com/rbee-dev/rbee/internal/api"
)

// Go clients (queen-rbee watch among them) take the stream gzipped, as
// browsers do, and read it as they always did: watch prints the
// snapshot, a hive joining and its telemetry from a real queen.
func TestStreamGzipForGoClientsAndWatch(t *testing.T) {
	queen := harness.StartQueen(t)
	// A plain Go client asks for gzip on its own and inflates it.
	req, _ := http.NewRequest(http.MethodGet, queen.URL+"/v1/heartbeats/stream", nil)
	req.Header.Set("Authorization", "Bearer "+harness.Token)
	resp, err := (&http.Client{Transport: &http.Transport{}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Uncompressed {
		t.Errorf("the stream reached a Go client uncompressed (Content-Encoding %q)", resp.Header.Get("Content-Encoding"))
	}
	resp.Body.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, harness.Build(t, "cmd/queen-rbee"), "watch", "--json", "--telemetry", "--queen", queen.URL)
	cmd.Env = append(cmd.Environ(), "RBEE_TOKEN="+harness.Token)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	h := loadgen.NewHive("gz-hive", 3, 1)
	go func() {
		c := &http.Client{Timeout: 5 * time.Second}
		for ctx.Err() == nil {
			_, _ = loadgen.Post(ctx, c, queen.URL, harness.Token, h.Next())
			time.Sleep(200 * time.Millisecond)
		}
	}()
	seen := map[string]bool{}
	dec := json.NewDecoder(out)
	for !(seen[api.EventSnapshot] && seen[api.EventHiveOnline] && seen[api.EventHiveTelemetry]) {
		var line struct {
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
		}
		if err := dec.Decode(&line); err != nil {
			t.Fatalf("watch's output ended (%v) having printed %v", err, seen)
		}
		if line.Type == api.EventHiveOnline && !strings.Contains(string(line.Data), `"gz-hive"`) {
			t.Fatalf("hive_online of another hive: %s", line.Data)
		}
		seen[line.Type] = true
	}
}
