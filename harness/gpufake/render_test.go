package gpufake

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The fake must print the real captures byte for byte.
func TestRenderMatchesCaptures(t *testing.T) {
	dir := filepath.Join("..", "..", "internal", "gpu", "testdata", "h200-driver-580")
	busy, idle := H200Busy(), H200Idle()
	tests := []struct {
		file   string
		render func(*bytes.Buffer)
	}{
		{"query-gpu-busy.csv", func(b *bytes.Buffer) { QueryGPU(b, busy, false) }},
		{"query-gpu-idle.csv", func(b *bytes.Buffer) { QueryGPU(b, idle, false) }},
		{"query-gpu-idle-with-units.csv", func(b *bytes.Buffer) {
			s := idle
			s.GPUs = append([]GPU(nil), idle.GPUs...)
			s.GPUs[0].PowerW = 78.44 // the two idle captures were taken a moment apart
			QueryGPU(b, s, true)
		}},
		{"query-compute-apps-busy.csv", func(b *bytes.Buffer) { ComputeApps(b, busy, false) }},
		{"query-compute-apps-busy-with-units.csv", func(b *bytes.Buffer) { ComputeApps(b, busy, true) }},
		{"query-compute-apps-idle.csv", func(b *bytes.Buffer) { ComputeApps(b, idle, false) }},
		{"pmon-busy.txt", func(b *bytes.Buffer) { Pmon(b, busy) }},
		{"nvidia-smi-L.txt", func(b *bytes.Buffer) { List(b, busy) }},
		{"nvidia-smi-busy.txt", func(b *bytes.Buffer) { Table(b, busy, time.Time{}) }},
		{"nvidia-smi-idle.txt", func(b *bytes.Buffer) { Table(b, idle, time.Time{}) }},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join(dir, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			tc.render(&got)
			if !bytes.Equal(got.Bytes(), want) {
				t.Fatalf("fake output differs from the capture\n--- got\n%q\n--- want\n%q", got.String(), want)
			}
		})
	}
}
