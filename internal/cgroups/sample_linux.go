package cgroups

import (
	"fmt"

	"github.com/rbee-dev/rbee/internal/reread"
)

// sampler is what both versions' Sample share: the buffer every file is
// read into and the pid list it reuses, so a pass allocates nothing.
// Its user holds the group's lock.
type sampler struct {
	buf  []byte
	pids []int
}

// readPids reads a cgroup.procs file into the reused pid list.
func (r *sampler) readPids(f *reread.File) ([]int, error) {
	b, err := f.Read(&r.buf)
	if err != nil {
		return nil, err
	}
	if r.pids, err = ParsePids(b, r.pids[:0]); err != nil {
		return nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	return r.pids, nil
}

// readUint reads a single-value counter such as memory.current.
func (r *sampler) readUint(f *reread.File) (uint64, error) {
	b, err := f.Read(&r.buf)
	if err != nil {
		return 0, err
	}
	v, _, err := ParseUint(b)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", f.Path, err)
	}
	return v, nil
}

// readKeyed reads the values of keys from a flat-keyed file into dst and
// says which were found (ParseKeyed).
func (r *sampler) readKeyed(f *reread.File, keys []string, dst []uint64) (uint64, error) {
	b, err := f.Read(&r.buf)
	if err != nil {
		return 0, err
	}
	found, err := ParseKeyed(b, keys, dst)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", f.Path, err)
	}
	return found, nil
}
