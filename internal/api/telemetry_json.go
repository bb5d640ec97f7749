package api

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// The queen encodes a hive_telemetry event for every heartbeat while
// anyone watches; through encoding/json it cost a quarter of the queen's
// CPU per heartbeat (reflection, then re-validating what MarshalJSON
// methods wrote). These append the same bytes directly; tests hold them
// to encoding/json's output.

// MarshalJSON encodes t; see AppendJSON.
func (t *HiveTelemetry) MarshalJSON() ([]byte, error) { return t.AppendJSON(nil), nil }

// AppendJSON appends t's JSON, as encoding/json would write it, to b.
func (t *HiveTelemetry) AppendJSON(b []byte) []byte {
	b = append(b, `{"hive_id":`...)
	b = appendString(b, t.HiveID)
	b = append(b, `,"at":`...)
	b = appendTime(b, t.At)
	b = append(b, `,"sent_at":`...)
	b = appendTime(b, t.SentAt)
	b = append(b, `,"node":{"cpu_pct":`...)
	if t.Node.CPUPct == nil {
		b = append(b, "null"...)
	} else {
		b = appendFloat(b, *t.Node.CPUPct)
	}
	b = append(b, `,"mem_used_bytes":`...)
	if t.Node.MemUsedBytes == nil {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendUint(b, *t.Node.MemUsedBytes, 10)
	}
	b = append(b, `,"gpus":`...)
	if t.Node.GPUs == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, g := range t.Node.GPUs {
			if i > 0 {
				b = append(b, ',')
			}
			b = g.AppendJSON(b)
		}
		b = append(b, ']')
	}
	if len(t.Node.Errors) > 0 {
		b = append(b, `,"errors":`...)
		b = appendStrings(b, t.Node.Errors)
	}
	b = append(b, `},"worker_fields":`...)
	b = appendStrings(b, t.WorkerFields)
	b = append(b, `,"stat_fields":`...)
	b = appendStrings(b, t.StatFields)
	b = append(b, `,"workers":`...)
	if t.Workers == nil {
		return append(b, "null}"...)
	}
	b = append(b, '[')
	for i := range t.Workers {
		w := &t.Workers[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = w.AppendJSON(b)
	}
	return append(b, "]}"...)
}

// MarshalJSON writes the row [id, state, stats, gpus].
func (w WorkerTelemetry) MarshalJSON() ([]byte, error) { return w.AppendJSON(nil), nil }

// AppendJSON appends the row [id, state, stats, gpus] to b: the stats
// TelemetryStats names, gpus only when the worker uses any.
func (w *WorkerTelemetry) AppendJSON(b []byte) []byte {
	b = append(b, '[')
	b = appendString(b, w.ID)
	b = append(b, ',')
	b = appendString(b, string(w.State))
	b = append(b, ",["...)
	for i, v := range w.Stats[:len(TelemetryStats)] {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendNum(b, v, StatTable[i].Decimals)
	}
	b = append(b, ']')
	if len(w.GPUs) > 0 {
		b = append(b, ",["...)
		for j, g := range w.GPUs {
			if j > 0 {
				b = append(b, ',')
			}
			b = g.AppendJSON(b)
		}
		b = append(b, ']')
	}
	return append(b, ']')
}

// UnmarshalJSON reads the row AppendJSON writes.
func (w *WorkerTelemetry) UnmarshalJSON(b []byte) error {
	var row []json.RawMessage
	if err := json.Unmarshal(b, &row); err != nil {
		return fmt.Errorf("worker row: %w", err)
	}
	if len(row) < 3 || len(row) > 4 {
		return fmt.Errorf("worker row: %d elements, want [id, state, stats, gpus]", len(row))
	}
	*w = WorkerTelemetry{}
	if err := json.Unmarshal(row[0], &w.ID); err != nil {
		return fmt.Errorf("worker row id: %w", err)
	}
	if err := json.Unmarshal(row[1], &w.State); err != nil {
		return fmt.Errorf("worker row state: %w", err)
	}
	if err := w.Stats.UnmarshalJSON(row[2]); err != nil {
		return err
	}
	if len(row) == 4 {
		if err := json.Unmarshal(row[3], &w.GPUs); err != nil {
			return fmt.Errorf("worker row gpus: %w", err)
		}
	}
	return nil
}

// appendStrings appends a JSON array of strings (null when nil).
func appendStrings(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

// appendString appends s as a JSON string, escaped as encoding/json
// escapes it.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			// Rare (ids are plain): let encoding/json escape it.
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendTime appends t as encoding/json does (RFC 3339 with nanoseconds);
// a time RFC 3339 cannot write (encoding/json's error) as null.
func appendTime(b []byte, t time.Time) []byte {
	if y := t.Year(); y < 0 || y > 9999 {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendFloat appends v as encoding/json writes a float64 (finite v).
func appendFloat(b []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(b, "null"...)
	}
	abs, fmtc := math.Abs(v), byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		fmtc = 'e'
	}
	b = strconv.AppendFloat(b, v, fmtc, -1, 64)
	if fmtc == 'e' {
		// clean up e-09 to e-9, as encoding/json does
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}
