// Package covmerge merges Go text coverage profiles (from go test
// -coverprofile and go tool covdata textfmt) and sums them per package,
// for the coverage target: the unit runs and the daemons the integration
// tests start count together.
package covmerge

import (
	"bufio"
	"bytes"
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
)

// block is one profile line's key: file:start.col,end.col numStmts.
type block struct {
	pos   string
	stmts int
}

// Profile is a merged coverage profile: each block's count summed over
// every input (set mode: covered if any).
type Profile struct {
	Mode   string
	counts map[block]int64
}

// Merge reads text profiles into one. Their modes must agree, except that
// set merges into any.
func Merge(profiles ...[]byte) (*Profile, error) {
	p := &Profile{counts: map[block]int64{}}
	for i, b := range profiles {
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			if line == "" {
				continue
			}
			if mode, ok := strings.CutPrefix(line, "mode: "); ok {
				if p.Mode == "" || p.Mode == "set" {
					p.Mode = mode
				} else if mode != p.Mode && mode != "set" {
					return nil, fmt.Errorf("profile %d: mode %s, earlier ones %s", i, mode, p.Mode)
				}
				continue
			}
			if p.Mode == "" {
				return nil, fmt.Errorf("profile %d line %d: a block before the mode line", i, n)
			}
			// file:a.b,c.d stmts count
			f := strings.Fields(line)
			if len(f) != 3 {
				return nil, fmt.Errorf("profile %d line %d: %q", i, n, line)
			}
			stmts, err1 := strconv.Atoi(f[1])
			count, err2 := strconv.ParseInt(f[2], 10, 64)
			if err1 != nil || err2 != nil || !strings.Contains(f[0], ":") {
				return nil, fmt.Errorf("profile %d line %d: %q", i, n, line)
			}
			k := block{f[0], stmts}
			if p.Mode == "set" {
				p.counts[k] = max(p.counts[k], min(count, 1))
			} else {
				p.counts[k] += count
			}
		}
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	if p.Mode == "" {
		p.Mode = "set"
	}
	return p, nil
}

// Bytes writes the profile, blocks in order.
func (p *Profile) Bytes() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "mode: %s\n", p.Mode)
	keys := slices.SortedFunc(maps.Keys(p.counts), func(a, b block) int { return strings.Compare(a.pos, b.pos) })
	for _, k := range keys {
		fmt.Fprintf(&b, "%s %d %d\n", k.pos, k.stmts, p.counts[k])
	}
	return b.Bytes()
}

// Coverage is statements covered of a total.
type Coverage struct{ Covered, Total int }

// Percent is Covered of Total, in percent.
func (c Coverage) Percent() float64 {
	if c.Total == 0 {
		return 0
	}
	return 100 * float64(c.Covered) / float64(c.Total)
}

// PerPackage sums statements per package (the import path of each
// block's file's directory).
func (p *Profile) PerPackage() map[string]Coverage {
	out := map[string]Coverage{}
	for k, n := range p.counts {
		file, _, _ := strings.Cut(k.pos, ":")
		pkg := path.Dir(file)
		c := out[pkg]
		c.Total += k.stmts
		if n > 0 {
			c.Covered += k.stmts
		}
		out[pkg] = c
	}
	return out
}
