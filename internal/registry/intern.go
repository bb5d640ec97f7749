package registry

import "github.com/rbee-dev/rbee/internal/api"

// A fleet's workers share most of what their static fields say: a few
// binaries, a few models, the same flags and limits. Decoded, each
// worker's copy is its own: at 100,000 workers the static fields were
// the largest part of the queen's heap. The registry keeps one copy of
// each value instead. Static fields are never changed once held (a change
// replaces them), so sharing is safe.

// maxInterned bounds the distinct values an interner holds: values are
// never dropped, so a stream of distinct ones (a fleet whose workers
// all differ, or a hive that lies) must not grow it without end. Past
// it, new values are kept as they are, unshared.
const (
	maxInterned    = 1 << 16
	maxInternedLen = 256 // longer strings are rarely shared
)

// interner holds the shared values. Not safe for concurrent use: the
// registry calls it under its mu.
type interner struct {
	strs   map[string]string
	ptrStr map[string]*string
	f64    map[float64]*float64
	i64    map[int64]*int64
}

func newInterner() *interner {
	return &interner{strs: map[string]string{}, ptrStr: map[string]*string{}, f64: map[float64]*float64{},
		i64: map[int64]*int64{}}
}

// str returns the shared copy of s.
func (in *interner) str(s string) string {
	if v, ok := in.strs[s]; ok {
		return v
	}
	if len(s) > maxInternedLen || len(in.strs) >= maxInterned {
		return s
	}
	in.strs[s] = s
	return s
}

// shared returns a shared pointer to *p's value, from m; nil stays nil.
func shared[K comparable](in map[K]*K, p *K) *K {
	if p == nil {
		return nil
	}
	if v, ok := in[*p]; ok {
		return v
	}
	if len(in) >= maxInterned {
		return p
	}
	in[*p] = p
	return p
}

// static returns st as the registry keeps it: a copy of its own (not the
// decoder's, whose slices may have room to spare), its strings, args and
// values shared with every other worker's that say the same. Hosts of a
// fleet are alike: the instance names, cgroup paths and ports of one
// hive's workers are those of the next. Start times are not shared: each
// worker's is its own.
func (in *interner) static(st *api.WorkerStatic) *api.WorkerStatic {
	c := *st
	c.Group, c.Instance, c.Binary = in.str(st.Group), in.str(st.Instance), in.str(st.Binary)
	c.Cgroup, c.RestartError = in.str(st.Cgroup), in.str(st.RestartError)
	if st.Args != nil {
		c.Args = make([]string, len(st.Args))
		for i, a := range st.Args {
			c.Args[i] = in.str(a)
		}
	}
	if st.Model != nil {
		m := in.str(*st.Model)
		c.Model = shared(in.ptrStr, &m)
	}
	c.CPULimitPct = shared(in.f64, st.CPULimitPct)
	c.MemLimitBytes = shared(in.i64, st.MemLimitBytes)
	c.PidsLimit = shared(in.i64, st.PidsLimit)
	return &c
}

// state returns the constant for a known state, so that 100,000 workers'
// states are not 100,000 strings.
func state(s api.State) api.State {
	for _, k := range [...]api.State{api.StateReady, api.StateStarting, api.StateUnhealthy, api.StateExited} {
		if s == k {
			return k
		}
	}
	return s
}
