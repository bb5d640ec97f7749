package stream

import (
	sse "github.com/tmaxmax/go-sse"
)

// replayer keeps recent events for clients that reconnect with
// Last-Event-ID, bounded by count and by bytes: hive_telemetry carries a
// hive's whole worker list, so a count alone could hold gigabytes for a
// cluster of large hives. It replays like go-sse's FiniteReplayer: the
// events after the given id, or none when the id is no longer kept.
//
// Joe calls Put and Replay from its one goroutine, so no lock is needed;
// the size of the message being put comes from the publishing Broker,
// which holds it while Joe runs Put (Publish waits for Put to finish).
type replayer struct {
	maxCount int
	maxBytes int
	size     *int // set by Broker.Publish for the message it publishes

	ring  []replayed // oldest first
	bytes int
}

type replayed struct {
	msg  *sse.Message
	size int
}

// Put stores msg (which already has its id) and drops the oldest events
// past either bound.
func (r *replayer) Put(msg *sse.Message, topics []string) (*sse.Message, error) {
	if len(topics) == 0 {
		return nil, sse.ErrNoTopic
	}
	size := *r.size
	r.ring = append(r.ring, replayed{msg, size})
	r.bytes += size
	drop := 0
	for len(r.ring)-drop > r.maxCount || r.bytes > r.maxBytes && len(r.ring)-drop > 1 {
		r.bytes -= r.ring[drop].size
		drop++
	}
	if drop > 0 {
		r.ring = append(r.ring[:0], r.ring[drop:]...)
	}
	return msg, nil
}

// Replay sends the events after the subscription's LastEventID.
func (r *replayer) Replay(sub sse.Subscription) error {
	if !sub.LastEventID.IsSet() {
		return nil
	}
	last := sub.LastEventID.String()
	start := -1
	for i := len(r.ring) - 1; i >= 0; i-- {
		if r.ring[i].msg.ID.String() == last {
			start = i + 1
			break
		}
	}
	if start < 0 || start == len(r.ring) {
		return nil
	}
	for _, e := range r.ring[start:] {
		if err := sub.Client.Send(e.msg); err != nil {
			return err
		}
	}
	return sub.Client.Flush()
}
