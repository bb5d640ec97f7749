package api

import (
	"bytes"
	"strconv"
)

// The queen decodes a thousand heartbeats a second at 100,000 workers,
// and a general JSON decoder spent most of that on the workers: a
// reflective walk of each report, and the number arrays (stats, GPUs)
// scanned once to find their end and once more by their own decoders.
// UnmarshalFast reads the workers by hand in one pass and leaves the
// rest (the hive's and the node's fields, a worker's static fields, exit
// and health, all small or rare) to the general decoder. It takes only
// the shapes hives write; anything else (escapes, keys in another case,
// nulls where hives write values, odd numbers) it declines, and the
// caller decodes the whole body the general way, errors and all, so the
// two can never disagree on what a body means (FuzzUnmarshalFast checks
// it).

// UnmarshalFast decodes the JSON object b into hb, and reports false when
// it declines b (hb is then to be decoded afresh by sub). sub is the
// general decoder (segmentio/encoding/json's Unmarshal) for the parts it
// leaves to it. hb's workers array and their GPU lists' memory are
// reused, as the general decoder reuses them.
func (hb *Heartbeat) UnmarshalFast(b []byte, sub func([]byte, any) error) bool {
	if hb.unmarshalFast(b, sub) {
		return true
	}
	hb.Reset() // nothing of a half-read body is left for the general decoder to keep
	return false
}

// Reset zeroes hb, keeping the memory of its workers array and their GPU
// lists for the next decode.
func (hb *Heartbeat) Reset() {
	ws := hb.Workers[:cap(hb.Workers)]
	for i := range ws {
		// Every field but the GPU list's memory (which a decoder appends
		// into) starts empty, or a field the next body leaves out would
		// keep this one's value. A list longer than a worker may have
		// came from a body that was refused: its memory is not kept.
		g := ws[i].GPUs[:0]
		if cap(g) > MaxGPUs {
			g = nil
		}
		ws[i] = WorkerReport{GPUs: g}
	}
	*hb = Heartbeat{Workers: ws[:0]}
}

func (hb *Heartbeat) unmarshalFast(b []byte, sub func([]byte, any) error) bool {
	p := scanner{b: b}
	rest := make([]byte, 0, 4096)
	rest = append(rest, '{')
	seen := false
	ok := p.object(func(key []byte) bool {
		switch {
		case string(key) == "workers":
			if seen {
				// A second list: the general decoder reads it into the
				// first's elements without zeroing them; not worth copying.
				return false
			}
			seen = true
			return p.workers(hb, sub)
		case bytes.EqualFold(key, []byte("workers")):
			return false
		}
		v, ok := p.skip()
		if !ok {
			return false
		}
		if len(rest) > 1 {
			rest = append(rest, ',')
		}
		rest = append(rest, '"') // a plain key: quoted as it came
		rest = append(rest, key...)
		rest = append(rest, '"', ':')
		rest = append(rest, v...)
		return true
	})
	if !ok || p.ws() != len(b) {
		return false
	}
	return sub(append(rest, '}'), hb) == nil
}

// workers reads the workers array into hb.Workers.
func (p *scanner) workers(hb *Heartbeat, sub func([]byte, any) error) bool {
	ws := hb.Workers[:0]
	ok := p.array(func() bool {
		if len(ws) < cap(ws) {
			ws = ws[:len(ws)+1]
			w := &ws[len(ws)-1]
			*w = WorkerReport{GPUs: w.GPUs[:0]}
		} else {
			ws = append(ws, WorkerReport{})
		}
		return p.worker(&ws[len(ws)-1], sub)
	})
	if !ok {
		return false
	}
	if ws == nil {
		ws = []WorkerReport{} // [] is an empty list, not null
	}
	hb.Workers = ws
	return true
}

// worker reads one worker report.
func (p *scanner) worker(w *WorkerReport, sub func([]byte, any) error) bool {
	return p.object(func(key []byte) bool {
		var ok bool
		switch string(key) {
		case "id":
			w.ID, ok = p.str()
		case "state":
			var s []byte
			s, ok = p.raw()
			w.State = state(s)
		case "pid":
			w.PID, ok = p.int()
		case "pids":
			var v []byte
			if v, ok = p.flatArray(); ok {
				ok = w.PIDs.UnmarshalJSON(v) == nil
			}
		case "stats":
			var v []byte
			if v, ok = p.flatArray(); ok {
				ok = w.Stats.UnmarshalJSON(v) == nil
			}
		case "gpus":
			gs := w.GPUs[:0]
			ok = p.array(func() bool {
				v, ok := p.flatArray()
				if !ok {
					return false
				}
				var g GPUStat
				if g.UnmarshalJSON(v) != nil {
					return false
				}
				gs = append(gs, g)
				return true
			})
			if gs == nil {
				gs = []GPUStat{}
			}
			w.GPUs = gs
		case "gpu_error":
			w.GPUError, ok = p.str()
		case "errors", "exit", "health", "static":
			var v []byte
			if v, ok = p.skip(); ok && v[0] != 'n' { // null: left to the general decoder
				var dst any
				switch string(key) {
				case "errors":
					dst = &w.Errors
				case "exit":
					dst = &w.Exit
				case "health":
					dst = &w.Health
				default:
					dst = &w.Static
				}
				ok = sub(v, dst) == nil
			} else {
				ok = false
			}
		default:
			// A field this queen does not know (a newer hive's): the
			// general decoder checks and skips it.
			return false
		}
		return ok
	})
}

// state returns the constant for a known state, so that decoding one
// allocates nothing.
func state(s []byte) State {
	for _, k := range [...]State{StateReady, StateStarting, StateUnhealthy, StateExited} {
		if string(s) == string(k) {
			return k
		}
	}
	return State(s)
}

// scanner reads JSON from b at i. Its methods report false on anything
// they decline, valid JSON or not.
type scanner struct {
	b []byte
	i int
}

// ws skips JSON whitespace and returns the position after it.
func (p *scanner) ws() int {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return p.i
		}
	}
	return p.i
}

// eat takes c, after whitespace.
func (p *scanner) eat(c byte) bool {
	if p.ws() < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// object reads {"key": value, ...}, calling field with each key with the
// scanner at its value, which field must read.
func (p *scanner) object(field func(key []byte) bool) bool {
	if !p.eat('{') {
		return false
	}
	if p.eat('}') {
		return true
	}
	for {
		p.ws()
		k, ok := p.raw()
		if !ok || !p.eat(':') {
			return false
		}
		p.ws()
		if !field(k) {
			return false
		}
		if p.eat('}') {
			return true
		}
		if !p.eat(',') {
			return false
		}
	}
}

// array reads [elem, ...], calling elem with the scanner at each.
func (p *scanner) array(elem func() bool) bool {
	if !p.eat('[') {
		return false
	}
	if p.eat(']') {
		return true
	}
	for {
		p.ws()
		if !elem() {
			return false
		}
		if p.eat(']') {
			return true
		}
		if !p.eat(',') {
			return false
		}
	}
}

// str reads a string without escapes, control characters or non-ASCII.
func (p *scanner) str() (string, bool) {
	s, ok := p.raw()
	return string(s), ok
}

// raw reads what str does, as the bytes in b.
func (p *scanner) raw() ([]byte, bool) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return nil, false
	}
	j := bytes.IndexByte(p.b[p.i+1:], '"')
	if j < 0 {
		return nil, false
	}
	s := p.b[p.i+1 : p.i+1+j]
	for _, c := range s {
		if c < 0x20 || c == '\\' || c >= 0x80 {
			return nil, false // escapes, control characters, UTF-8 to validate: the general decoder's
		}
	}
	p.i += j + 2
	return s, true
}

// int reads an integer as hives write it: an optional minus and up to 18
// digits, no leading zero.
func (p *scanner) int() (int, bool) {
	start := p.i
	if p.i < len(p.b) && p.b[p.i] == '-' {
		p.i++
	}
	d := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	n := p.i - d
	if n == 0 || n > 18 || n > 1 && p.b[d] == '0' {
		return 0, false
	}
	if p.i < len(p.b) && (p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		return 0, false
	}
	v, err := strconv.Atoi(string(p.b[start:p.i]))
	return v, err == nil
}

// flatArray returns an array of numbers and nulls as it is, for its own
// decoder: up to its first ']', with no string, object or array inside.
func (p *scanner) flatArray() ([]byte, bool) {
	if p.i >= len(p.b) || p.b[p.i] != '[' {
		return nil, false
	}
	for j := p.i + 1; j < len(p.b); j++ {
		switch p.b[j] {
		case ']':
			v := p.b[p.i : j+1]
			p.i = j + 1
			return v, true
		case '[', '{', '"':
			return nil, false
		}
	}
	return nil, false
}

// skip passes over one value and returns it. Strings may hold escapes
// here (the general decoder reads them); the value's syntax is checked
// by whatever decodes it, or, for a field nobody reads, only as far as
// finding its end.
func (p *scanner) skip() ([]byte, bool) {
	start := p.ws()
	if p.i >= len(p.b) {
		return nil, false
	}
	switch c := p.b[p.i]; {
	case c == '"':
		if !p.skipString() {
			return nil, false
		}
	case c == '{' || c == '[':
		depth := 0
		for p.i < len(p.b) {
			switch p.b[p.i] {
			case '"':
				if !p.skipString() {
					return nil, false
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			p.i++
			if depth == 0 {
				return p.b[start:p.i], true
			}
		}
		return nil, false
	default:
		// A number or a literal: up to a delimiter, checked whole.
		for p.i < len(p.b) && !delim(p.b[p.i]) {
			p.i++
		}
		v := p.b[start:p.i]
		switch string(v) {
		case "true", "false", "null":
		default:
			if !jsonNumber(v) {
				return nil, false
			}
		}
	}
	return p.b[start:p.i], true
}

// skipString passes over a string, escapes and all.
func (p *scanner) skipString() bool {
	for j := p.i + 1; j < len(p.b); j++ {
		switch p.b[j] {
		case '\\':
			j++
		case '"':
			p.i = j + 1
			return true
		}
	}
	return false
}

// delim reports whether c ends a number or a literal.
func delim(c byte) bool {
	switch c {
	case ',', '}', ']', ' ', '\t', '\n', '\r':
		return true
	}
	return false
}
