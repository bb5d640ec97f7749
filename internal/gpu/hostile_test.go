package gpu

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/ids"
)

// Text a hostile or broken driver (or a binary planted as nvidia-smi)
// could print where a GPU's name, UUID or a process name goes: terminal
// escapes (OSC sets a terminal's title and more, CSI moves the cursor and
// clears the screen), C1 controls (U+009B is a one-character CSI), a
// bidirectional override, bytes that are not UTF-8, and sheer length.
var hostileText = []struct{ name, s string }{
	{"OSC title", "\x1b]0;pwned\x07"},
	{"CSI clear", "NVIDIA H200\x1b[2J"},
	{"C1 CSI", "NVIDIA \u009b2J H200"},
	{"bidi override", "NVIDIA \u202eH200"},
	{"invalid UTF-8", "NVIDIA \xff\xfe H200"},
	{"DEL and NUL", "NVIDIA\x7f\x00H200"},
	{"over-long", strings.Repeat("H200 ", 100)},
	{"over-long multibyte", strings.Repeat("é", 200)},
}

// checkText fails the test when s could carry anything but plain text: a
// control character, invalid UTF-8, or more than max bytes.
func checkText(t *testing.T, what, s string, max int) {
	t.Helper()
	if err := ids.ValidText(s, max); err != nil {
		t.Fatalf("%s %q: %v", what, s, err)
	}
}

// checkGPUs checks every text field of parsed devices, and that their
// numbers are finite (JSON cannot encode anything else).
func checkGPUs(t *testing.T, gs []api.GPU) {
	t.Helper()
	for _, g := range gs {
		checkText(t, "name", g.Name, maxNameLen)
		checkText(t, "uuid", g.UUID, maxUUIDLen)
		if err := validUUID(g.UUID); err != nil {
			t.Fatalf("accepted uuid %q: %v", g.UUID, err)
		}
		for _, p := range []*float64{g.UtilPct, g.TempC, g.PowerW} {
			if p != nil && (math.IsNaN(*p) || math.IsInf(*p, 0) || *p < 0) {
				t.Fatalf("accepted reading %v in %+v", *p, g)
			}
		}
	}
}

func TestParseQueryGPUCleansNames(t *testing.T) {
	for _, tc := range hostileText {
		t.Run(tc.name, func(t *testing.T) {
			line := "0, " + h200 + ", " + tc.s + ", 143771, 5377, 137904, 100, 3, 59, 691.28\n"
			gs, err := ParseQueryGPU([]byte(line))
			if err != nil {
				t.Fatalf("a hostile name must be cleaned, not fail the query: %v", err)
			}
			if len(gs) != 1 || gs[0].UUID != h200 || *gs[0].PowerW != 691.28 {
				t.Fatalf("the rest of the row must survive: %+v", gs)
			}
			checkGPUs(t, gs)
			if strings.ContainsRune(gs[0].Name, 0x1b) {
				t.Fatalf("name %q holds an ESC", gs[0].Name)
			}
		})
	}
	// An honest name is kept as it is.
	gs, err := ParseQueryGPU([]byte("0, " + h200 + ", NVIDIA H100 80GB HBM3, 81559, 0, 81559, 0, 0, 30, 70.1\n"))
	if err != nil || gs[0].Name != "NVIDIA H100 80GB HBM3" {
		t.Fatalf("plain name: %+v %v", gs, err)
	}
}

// A UUID is an identifier: one that is not of the shape drivers print is
// malformed output, refused with an error that is itself plain text.
func TestParseRefusesMalformedUUIDs(t *testing.T) {
	bad := []struct{ name, uuid string }{
		{"OSC", "GPU-263ebfcc\x1b]0;pwned\x07"},
		{"CSI", "GPU-\x1b[2J"},
		{"C1", "GPU-263e\u009bbfcc"},
		{"bidi override", "GPU-\u202e263ebfcc"},
		{"invalid UTF-8", "GPU-\xff\xfe"},
		{"inner space", "GPU-263e bfcc"},
		{"quote", `GPU-263e"bfcc`},
		{"prefix only", "GPU-"},
		{"no prefix", "263ebfcc-c477-a4dc-c4c5-bc4f9337309e"},
		{"over-long", "GPU-" + strings.Repeat("a", maxUUIDLen)},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			gs, err := ParseQueryGPU([]byte("0, " + tc.uuid + ", NVIDIA H200, 1, 0, 1, 0, 0, 30, 70\n"))
			if err == nil {
				t.Fatalf("ParseQueryGPU accepted uuid %q: %+v", tc.uuid, gs)
			}
			checkText(t, "error", err.Error(), 1024)
			rows, err := parseComputeApps([]byte("670, python3, 12, " + tc.uuid + "\n"))
			if err == nil {
				t.Fatalf("parseComputeApps accepted gpu_uuid %q: %+v", tc.uuid, rows)
			}
			checkText(t, "error", err.Error(), 1024)
		})
	}
	for _, good := range []string{h200, "MIG-0b3e1c1a-7e4c-5f1e-9b8f-2a9f3c1d2e4f", "MIG-GPU-263ebfcc-c477-a4dc-c4c5-bc4f9337309e/7/0"} {
		if err := validUUID(good); err != nil {
			t.Errorf("validUUID(%q) = %v, want ok", good, err)
		}
	}
}

// A process name is not kept, so hostile text there neither survives nor
// fails the query.
func TestParseComputeAppsIgnoresProcessNames(t *testing.T) {
	for _, tc := range hostileText {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := parseComputeApps([]byte("670, " + tc.s + ", 3786, " + h200 + "\n"))
			if err != nil || len(rows) != 1 || rows[0].pid != 670 || rows[0].uuid != h200 {
				t.Fatalf("%+v %v", rows, err)
			}
		})
	}
}

// Infinite or absurd readings are refused: +Inf made every heartbeat fail
// to encode, and a MiB figure beyond 2^64 bytes wrapped to a made-up one.
func TestParseRefusesImpossibleNumbers(t *testing.T) {
	for _, v := range []string{"inf", "+Inf", "Infinity", "NaN", "1e400", "-0.5"} {
		line := "0, " + h200 + ", NVIDIA H200, 143771, 0, 143771, 0, 0, 30, " + v + "\n"
		if gs, err := ParseQueryGPU([]byte(line)); err == nil {
			t.Errorf("power.draw %q accepted: %+v", v, gs)
		}
	}
	huge := "0, " + h200 + ", NVIDIA H200, 1e20, 0, 0, 0, 0, 30, 70\n"
	if gs, err := ParseQueryGPU([]byte(huge)); err == nil {
		t.Errorf("memory.total 1e20 MiB accepted: %+v", gs)
	}
	if rows, err := parseComputeApps([]byte("670, p, 1e20, " + h200 + "\n")); err == nil {
		t.Errorf("used_memory 1e20 MiB accepted: %+v", rows)
	}
}

func TestNVMLCleansDriverText(t *testing.T) {
	for _, tc := range hostileText {
		t.Run(tc.name, func(t *testing.T) {
			l := loadCapture(t, "nvml-busy.json")
			l.devs[0].d.Name = tc.s
			// NVML's own error text comes from the driver library too.
			l.devs[0].powerErr = &nvmlError{op: "nvmlDeviceGetPowerUsage", text: tc.s, code: 999}
			snap := query(t, l)
			checkGPUs(t, snap.Devices)
			if len(snap.Partial) != 1 || !strings.Contains(snap.Partial[0], "nvmlDeviceGetPowerUsage") {
				t.Fatalf("partial %q, want the power error", snap.Partial)
			}
			checkText(t, "partial", snap.Partial[0], 1024)
		})
	}
	t.Run("malformed uuid fails the query", func(t *testing.T) {
		l := loadCapture(t, "nvml-busy.json")
		l.devs[0].d.UUID = "GPU-\x1b]0;pwned\x07"
		n, err := newNVML(l)
		if err != nil {
			t.Fatal(err)
		}
		snap, err := n.Query(context.Background())
		if err == nil {
			t.Fatalf("Query accepted a malformed uuid: %+v", snap)
		}
		checkText(t, "error", err.Error(), 1024)
	})
	t.Run("error text", func(t *testing.T) {
		err := error(&nvmlError{op: "nvmlInit", text: "\x1b[2Jdriver says \u202ehi", code: 9})
		checkText(t, "error", err.Error(), 1024)
		if !strings.Contains(err.Error(), "nvmlInit") || !strings.Contains(err.Error(), "code 9") {
			t.Fatalf("error %q lost its call or code", err)
		}
	})
}

// seqBackend answers each query with the next of its results.
type seqBackend struct {
	results []func() (Snapshot, error)
	n       int
}

func (b *seqBackend) Name() string { return "nvidia-smi" }
func (b *seqBackend) Close() error { return nil }
func (b *seqBackend) Query(context.Context) (Snapshot, error) {
	r := b.results[min(b.n, len(b.results)-1)]
	b.n++
	return r()
}

// While queries fail, Last lists the GPUs of the last good query with
// their identity and total memory, readings null, and the error: a GPU
// that cannot be read is neither gone nor idle.
func TestSamplerLastKeepsKnownGPUsWithoutReadings(t *testing.T) {
	good := Snapshot{Devices: []api.GPU{{Index: 0, UUID: h200, Name: "NVIDIA H200", VRAMTotalBytes: api.Ptr(uint64(141 << 30)),
		VRAMUsedBytes: api.Ptr(uint64(5 << 30)), UtilPct: api.Ptr(100.0), TempC: api.Ptr(59.0), PowerW: api.Ptr(691.28)}}}
	failed := errors.New("nvidia-smi --query-gpu: unexpected output: line 1: 9 fields, want 10")
	tests := []struct {
		name    string
		results []func() (Snapshot, error)
		want    int // devices Last lists after the last query
		wantErr bool
	}{
		{"first query fails: nothing known", []func() (Snapshot, error){
			func() (Snapshot, error) { return Snapshot{}, failed },
		}, 0, true},
		{"good then failed: known, unread", []func() (Snapshot, error){
			func() (Snapshot, error) { return good, nil },
			func() (Snapshot, error) { return Snapshot{}, failed },
		}, 1, true},
		{"failed then good: the good one", []func() (Snapshot, error){
			func() (Snapshot, error) { return Snapshot{}, failed },
			func() (Snapshot, error) { return good, nil },
		}, 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSampler(&seqBackend{results: tc.results}, time.Second)
			for range tc.results {
				_, _ = s.Sample(context.Background())
			}
			snap, _, err := s.Last()
			if (err != nil) != tc.wantErr || len(snap.Devices) != tc.want || len(snap.Procs) != 0 {
				t.Fatalf("Last = %+v, %v; want %d devices, error %v", snap, err, tc.want, tc.wantErr)
			}
			if tc.want == 0 {
				return
			}
			d := snap.Devices[0]
			if d.UUID != h200 || d.Name != "NVIDIA H200" || *d.VRAMTotalBytes != 141<<30 {
				t.Fatalf("identity lost: %+v", d)
			}
			if tc.wantErr && (d.VRAMUsedBytes != nil || d.UtilPct != nil || d.TempC != nil || d.PowerW != nil) {
				t.Fatalf("readings of a failed query must be null, never the old ones: %+v", d)
			}
			if !tc.wantErr && *d.UtilPct != 100 {
				t.Fatalf("readings of a good query: %+v", d)
			}
		})
	}
}

// A query stuck past its deadline (an NVML call that does not return)
// makes Last say so instead of handing out the last readings as current.
func TestSamplerLastWhileStuck(t *testing.T) {
	b := &blockBackend{release: make(chan struct{})}
	s := NewSampler(b, 100*time.Millisecond)
	defer close(b.release)
	if _, err := s.Sample(context.Background()); err == nil {
		t.Fatal("Sample of a blocked backend succeeded")
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		_, _, err := s.Last()
		if err != nil {
			if !strings.Contains(err.Error(), "still running") {
				t.Fatalf("Last = %v, want a stuck query", err)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("Last kept answering without error while a query is stuck")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
