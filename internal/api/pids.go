package api

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// PIDList is a worker's pids. Decoding refuses more than MaxWorkerPIDs
// before allocating them: a hostile heartbeat cannot make the queen build
// millions of integers it will refuse anyway.
type PIDList []int

// UnmarshalJSON decodes a JSON array of integers (or null).
func (p *PIDList) UnmarshalJSON(b []byte) error {
	b = trimJSONSpace(b)
	if string(b) == "null" {
		*p = nil
		return nil
	}
	if len(b) < 2 || b[0] != '[' || b[len(b)-1] != ']' {
		return errors.New("pids: want an array of integers")
	}
	body := trimJSONSpace(b[1 : len(b)-1])
	if len(body) == 0 {
		*p = PIDList{}
		return nil
	}
	if n := bytes.Count(body, []byte{','}) + 1; n > MaxWorkerPIDs {
		return fmt.Errorf("pids: %d, at most %d", n, MaxWorkerPIDs)
	}
	out := make(PIDList, 0, bytes.Count(body, []byte{','})+1)
	for len(body) > 0 {
		var tok []byte
		if i := bytes.IndexByte(body, ','); i >= 0 {
			tok, body = body[:i], body[i+1:]
			if len(trimJSONSpace(body)) == 0 {
				return errors.New("pids: trailing comma")
			}
		} else {
			tok, body = body, nil
		}
		tok = trimJSONSpace(tok)
		v, err := strconv.Atoi(string(tok))
		if err != nil || !jsonInt(tok) {
			return fmt.Errorf("pids: %q is not an integer", tok)
		}
		out = append(out, v)
	}
	*p = out
	return nil
}

// jsonInt reports whether b is an integer as JSON writes them: Atoi also
// takes "+1" and "007".
func jsonInt(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 1 && b[0] == '0' {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
