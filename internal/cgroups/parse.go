package cgroups

import (
	"bytes"
	"fmt"
	"strconv"
)

// These parsers run on every collection pass for every worker, so they scan
// the bytes in place and look up only the keys they are asked for instead of
// building maps.

// ParseUint parses a single-value file such as memory.current or
// cpuacct.usage. "max" (an unset v2 limit) is reported as ok=false.
func ParseUint(b []byte) (v uint64, ok bool, err error) {
	b = bytes.TrimSpace(b)
	if string(b) == "max" {
		return 0, false, nil
	}
	v, err = strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("parse %q: not an unsigned integer", clip(b))
	}
	return v, true, nil
}

// ParseKeyed reads a flat-keyed file ("key value" per line: cpu.stat,
// memory.stat, memory.events, memory.oom_control) and stores the values of
// the wanted keys into dst, in the same order. It reports which keys were
// found as a bitmask (bit i for keys[i]).
func ParseKeyed(b []byte, keys []string, dst []uint64) (found uint64, err error) {
	if len(keys) != len(dst) || len(keys) > 64 {
		return 0, fmt.Errorf("parse keyed: %d keys for %d slots", len(keys), len(dst))
	}
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		sp := bytes.IndexByte(line, ' ')
		if sp <= 0 {
			continue
		}
		key := line[:sp]
		for i, k := range keys {
			if string(key) != k {
				continue
			}
			v, err := strconv.ParseUint(string(bytes.TrimSpace(line[sp+1:])), 10, 64)
			if err != nil {
				return found, fmt.Errorf("parse keyed: %s: %q is not an unsigned integer", k, clip(line[sp+1:]))
			}
			dst[i] = v
			found |= 1 << i
			break
		}
	}
	return found, nil
}

// IOCounters are cumulative bytes read and written by a cgroup.
type IOCounters struct {
	ReadBytes, WriteBytes uint64
}

// ParseIOStat sums rbytes and wbytes over every device line of a v2 io.stat
// ("8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0").
func ParseIOStat(b []byte) (IOCounters, error) {
	var c IOCounters
	for line := range bytes.Lines(b) {
		fields := bytes.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if bytes.IndexByte(fields[0], ':') < 0 {
			return IOCounters{}, fmt.Errorf("parse io.stat: device %q is not MAJ:MIN", clip(fields[0]))
		}
		for _, f := range fields[1:] {
			k, v, ok := bytes.Cut(f, []byte("="))
			if !ok {
				return IOCounters{}, fmt.Errorf("parse io.stat: field %q is not key=value", clip(f))
			}
			var dst *uint64
			switch string(k) {
			case "rbytes":
				dst = &c.ReadBytes
			case "wbytes":
				dst = &c.WriteBytes
			default:
				continue
			}
			n, err := strconv.ParseUint(string(v), 10, 64)
			if err != nil {
				return IOCounters{}, fmt.Errorf("parse io.stat: %s=%q: not an unsigned integer", k, clip(v))
			}
			*dst += n
		}
	}
	return c, nil
}

// ParsePids parses cgroup.procs: one pid per line, in no particular order.
// It appends to dst to let callers reuse a buffer.
func ParsePids(b []byte, dst []int) ([]int, error) {
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		pid, err := strconv.Atoi(string(line))
		if err != nil || pid <= 0 {
			return dst, fmt.Errorf("parse cgroup.procs: %q is not a pid", clip(line))
		}
		dst = append(dst, pid)
	}
	return dst, nil
}

// ParseCPUMax parses a v2 cpu.max ("max 100000" or "50000 100000") into a
// quota and period in microseconds; ok=false means no limit.
func ParseCPUMax(b []byte) (quota int64, period uint64, ok bool, err error) {
	f := bytes.Fields(b)
	if len(f) != 2 {
		return 0, 0, false, fmt.Errorf("parse cpu.max %q: want \"QUOTA PERIOD\"", clip(b))
	}
	period, err = strconv.ParseUint(string(f[1]), 10, 64)
	if err != nil || period == 0 {
		return 0, 0, false, fmt.Errorf("parse cpu.max %q: bad period", clip(b))
	}
	if string(f[0]) == "max" {
		return 0, period, false, nil
	}
	quota, err = strconv.ParseInt(string(f[0]), 10, 64)
	if err != nil || quota <= 0 {
		return 0, 0, false, fmt.Errorf("parse cpu.max %q: bad quota", clip(b))
	}
	return quota, period, true, nil
}

// nextLine splits off the first line of b without allocating.
func nextLine(b []byte) (line, rest []byte) {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i], b[i+1:]
	}
	return b, nil
}

func clip(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}
