package api_test

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"

	segjson "github.com/segmentio/encoding/json"

	"github.com/rbee-dev/rbee/harness/loadgen"
	"github.com/rbee-dev/rbee/internal/api"
)

// fastBodies are heartbeats as hives write them: a session's first (static
// fields), steady ones, and workers that exited, failed a health check or
// lost a read.
func fastBodies(t testing.TB) [][]byte {
	h := loadgen.NewHive("gpu-1", 20, 4)
	first, steady := h.Next(), h.Next()
	odd := h.Next()
	code, sig := 137, "SIGKILL"
	odd.Workers[0].State = api.StateExited
	odd.Workers[0].Exit = &api.WorkerExit{ExitCode: &code, Signal: &sig, LogTail: "panic: \"boom\"\n"}
	odd.Workers[1].Errors = []string{"read io: gone"}
	odd.Workers[1].GPUError = "nvml: lost"
	odd.Workers[2].Health = &api.WorkerHealth{Target: "http://127.0.0.1:9302/health", Failures: 2, LastError: "connection refused"}
	odd.Workers[3].GPUs = nil
	odd.Workers[4].PIDs = nil
	none := h.Next()
	none.Workers = []api.WorkerReport{}
	var out [][]byte
	for _, hb := range []api.Heartbeat{first, steady, odd, none} {
		b, err := json.Marshal(hb)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	out = append(out, []byte(" { \"workers\" : [ { \"id\" : \"a\" , \"stats\" : [ 1 , null ] , \"gpus\" : [ [ 0 , 1 , 2 ] ] } ] , \"seq\" : 3 } "))
	return out
}

// same reports whether two decoded heartbeats say the same, bit for bit
// (Stats may hold NaN, which == never matches).
func same(a, b *api.Heartbeat) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if !bytes.Equal(ja, jb) || len(a.Workers) != len(b.Workers) {
		return false
	}
	for i := range a.Workers {
		for k := range a.Workers[i].Stats {
			if math.Float64bits(a.Workers[i].Stats[k]) != math.Float64bits(b.Workers[i].Stats[k]) {
				return false
			}
		}
		if (a.Workers[i].GPUs == nil) != (b.Workers[i].GPUs == nil) || (a.Workers[i].PIDs == nil) != (b.Workers[i].PIDs == nil) {
			return false
		}
	}
	return (a.Workers == nil) == (b.Workers == nil)
}

// Hives' heartbeats take the fast way and decode to what the general
// decoder makes of them, also into reused memory.
func TestUnmarshalFastMatchesDecoder(t *testing.T) {
	bodies := fastBodies(t)
	reused := new(api.Heartbeat)
	for i, b := range bodies {
		var want api.Heartbeat
		if err := segjson.Unmarshal(b, &want); err != nil {
			t.Fatalf("body %d: %v", i, err)
		}
		var got api.Heartbeat
		if !got.UnmarshalFast(b, segjson.Unmarshal) {
			t.Fatalf("body %d declined: %s", i, b)
		}
		if !same(&got, &want) {
			t.Fatalf("body %d: fast %+v\nwant %+v", i, got, want)
		}
		// Into the memory of the previous body, as the queen's pool does.
		// An absent GPU list there is an empty one, not nil, as the
		// general decoder leaves it too; the registry takes both alike.
		reused.Reset()
		ok := reused.UnmarshalFast(b, segjson.Unmarshal)
		for k := range reused.Workers {
			if w := &reused.Workers[k]; len(w.GPUs) == 0 && want.Workers[k].GPUs == nil {
				w.GPUs = nil
			}
		}
		if !ok || !same(reused, &want) {
			t.Fatalf("body %d into reused memory: %+v\nwant %+v", i, reused, want)
		}
	}
}

// What hives do not write is declined, and the heartbeat left zero for
// the general decoder.
func TestUnmarshalFastDeclines(t *testing.T) {
	for _, b := range []string{
		`{"workers":[{"id":"a\u0062"}]}`,        // an escape
		`{"Workers":[]}`,                        // another case
		`{"workers":[{"ID":"a"}]}`,              // another case, in a worker
		`{"workers":null}`,                      // null where hives write a list
		`{"workers":[{"id":"a","stats":null}]}`, // and where they write numbers
		`{"workers":[{"id":"a","pid":1.0}]}`,    // an integer written as a float
		`{"workers":[{"id":"a","new":1}]}`,      // a field this queen does not know
		`{"workers":[{"id":"a"}],"seq":1}x`,     // trailing data
		`{"workers":[{"id":"a"}],"seq":"x"}`,    // a bad value the general decoder refuses
		`{"workers":[{"id":"é"}]}`,              // UTF-8 to check
		`[]`,
		`{"workers":[{"id":"a","static":{"group":"g"}}],"workers":[{"id":"a"}]}`, // a second list
	} {
		var hb api.Heartbeat
		if hb.UnmarshalFast([]byte(b), segjson.Unmarshal) {
			t.Errorf("%s: taken, want declined", b)
		}
		if len(hb.Workers) != 0 || hb.Seq != 0 {
			t.Errorf("%s: declined but left %+v", b, hb)
		}
	}
}

// FuzzUnmarshalFast: whatever the fast way takes, the general decoder
// takes too and decodes to the same heartbeat.
func FuzzUnmarshalFast(f *testing.F) {
	for _, b := range fastBodies(f) {
		f.Add(b)
	}
	f.Add([]byte(`{"workers":[{"id":"a","gpus":[[0,1,2],[1,null,3]],"pids":[1,2],"static":{"group":"g"}}],"node":{"cpu_cores":2}}`))
	f.Add([]byte(`{"workers":[{"id":"a","static":{"group":"g"}}],"workers":[{"id":"a"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		// The queen refuses deep nesting before it decodes (httpx's
		// checkDepth): the general decoder recurses per level, and a
		// mutated body of thousands of brackets takes it seconds.
		if bytes.Count(b, []byte("["))+bytes.Count(b, []byte("{")) > 1000 {
			return
		}
		var fast api.Heartbeat
		if !fast.UnmarshalFast(b, segjson.Unmarshal) {
			return
		}
		var want api.Heartbeat
		if err := segjson.Unmarshal(b, &want); err != nil {
			t.Fatalf("fast took %q, the general decoder refuses it: %v", b, err)
		}
		if !same(&fast, &want) {
			t.Fatalf("%q: fast %+v\nwant %+v", b, fast, want)
		}
	})
}

// Reset keeps a GPU list's memory for the next decode, but not one longer
// than any worker may have (a refused body's).
func TestResetDropsHugeGPULists(t *testing.T) {
	hb := api.Heartbeat{Workers: []api.WorkerReport{{GPUs: make([]api.GPUStat, 3, 10)}, {GPUs: make([]api.GPUStat, 1, api.MaxGPUs+1)}}}
	hb.Reset()
	ws := hb.Workers[:2]
	if cap(ws[0].GPUs) != 10 || len(ws[0].GPUs) != 0 || ws[1].GPUs != nil {
		t.Fatalf("after Reset: caps %d and %d, want 10 kept and the huge one dropped", cap(ws[0].GPUs), cap(ws[1].GPUs))
	}
}
