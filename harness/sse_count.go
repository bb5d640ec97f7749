package harness

import (
	"context"
	"sync"

	sse "github.com/tmaxmax/go-sse"
)

// StreamCounter reads an SSE stream and counts its events by type and its
// bytes of data, keeping none: a client for load tests that would
// otherwise hold gigabytes.
type StreamCounter struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	counts map[string]int
	bytes  int64
	err    error
}

// CountStream connects to url (as Subscribe, with Token) and counts until
// the test ends.
func CountStream(t TB, url string) *StreamCounter {
	t.Helper()
	resp, cancel := openStream(t, url, SSEOptions{})
	c := &StreamCounter{cancel: cancel, done: make(chan struct{}), counts: map[string]int{}}
	go func() {
		defer close(c.done)
		defer resp.Body.Close()
		for ev, err := range sse.Read(resp.Body, &sse.ReadConfig{MaxEventSize: 256 << 20}) {
			c.mu.Lock()
			if err != nil {
				c.err = err
				c.mu.Unlock()
				return
			}
			c.counts[ev.Type]++
			c.bytes += int64(len(ev.Data))
			c.mu.Unlock()
		}
	}()
	t.Cleanup(c.Close)
	return c
}

// Count returns how many events of type typ arrived.
func (c *StreamCounter) Count(typ string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[typ]
}

// Bytes returns the bytes of event data that arrived.
func (c *StreamCounter) Bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

// Close disconnects and waits for the reader.
func (c *StreamCounter) Close() {
	c.cancel()
	<-c.done
}
