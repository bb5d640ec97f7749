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
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		*p = nil
		return nil
	}
	if len(b) < 2 || b[0] != '[' || b[len(b)-1] != ']' {
		return errors.New("pids: want an array of integers")
	}
	body := bytes.TrimSpace(b[1 : len(b)-1])
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
			if len(bytes.TrimSpace(body)) == 0 {
				return errors.New("pids: trailing comma")
			}
		} else {
			tok, body = body, nil
		}
		v, err := strconv.Atoi(string(bytes.TrimSpace(tok)))
		if err != nil {
			return fmt.Errorf("pids: %q is not an integer", bytes.TrimSpace(tok))
		}
		out = append(out, v)
	}
	*p = out
	return nil
}
