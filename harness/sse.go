package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
	sse "github.com/tmaxmax/go-sse"
)

// Event is one server-sent event as a client received it.
type Event struct {
	ID, Type, Data string
	At             time.Time
}

// Decode unmarshals the event's JSON data into v.
func (e Event) Decode(v any) error { return json.Unmarshal([]byte(e.Data), v) }

// Worker returns worker id's record when e brings it: a worker_added,
// worker_changed or snapshot, or a hive_online whose hive has it (a hive
// joining brings its workers in that one event).
func (e Event) Worker(id string) (api.Worker, bool) {
	var hives []api.Hive
	switch e.Type {
	case api.EventWorkerAdded, api.EventWorkerChanged:
		var d api.WorkerAdded
		if e.Decode(&d) == nil && d.Worker.ID == id {
			return d.Worker, true
		}
		return api.Worker{}, false
	case api.EventHiveOnline:
		var d api.HiveOnline
		if e.Decode(&d) != nil {
			return api.Worker{}, false
		}
		hives = []api.Hive{d.Hive}
	case api.EventSnapshot:
		var d api.Snapshot
		if e.Decode(&d) != nil {
			return api.Worker{}, false
		}
		hives = d.Hives
	}
	for _, h := range hives {
		for _, w := range h.Workers {
			if w.ID == id {
				return w, true
			}
		}
	}
	return api.Worker{}, false
}

// Brings matches an event that brings worker id (see Event.Worker).
func Brings(id string) func(Event) bool {
	return func(e Event) bool {
		_, ok := e.Worker(id)
		return ok
	}
}

// SSEClient reads a Server-Sent Events stream in the background and keeps
// every event. It is closed when the test ends.
type SSEClient struct {
	t      TB
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	events []Event
	err    error
	notify chan struct{}
}

// SSEOptions adjusts a subscription.
type SSEOptions struct {
	LastEventID string
	Header      http.Header
	// Client makes the request; nil means harness.HTTP (with Token).
	Client *http.Client
}

// Subscribe connects to url and starts reading. It fails t if the stream
// does not answer 200 with text/event-stream.
func Subscribe(t TB, url string, opt SSEOptions) *SSEClient {
	t.Helper()
	resp, cancel := openStream(t, url, opt)
	c := &SSEClient{t: t, cancel: cancel, done: make(chan struct{}), notify: make(chan struct{})}
	go func() {
		defer close(c.done)
		defer resp.Body.Close()
		// A snapshot of a large fleet is one large event.
		for ev, err := range sse.Read(resp.Body, &sse.ReadConfig{MaxEventSize: 256 << 20}) {
			c.mu.Lock()
			if err != nil {
				c.err = err
			} else {
				c.events = append(c.events, Event{ID: ev.LastEventID, Type: ev.Type, Data: ev.Data, At: time.Now()})
			}
			close(c.notify)
			c.notify = make(chan struct{})
			c.mu.Unlock()
			if err != nil {
				return
			}
		}
		c.mu.Lock()
		if c.err == nil {
			c.err = fmt.Errorf("stream ended")
		}
		close(c.notify)
		c.notify = make(chan struct{})
		c.mu.Unlock()
	}()
	t.Cleanup(c.Close)
	return c
}

// openStream requests the stream at url and fails t unless it answers
// 200 with text/event-stream; cancel ends the request.
func openStream(t TB, url string, opt SSEOptions) (*http.Response, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	for k, vs := range opt.Header {
		req.Header[k] = vs
	}
	if opt.LastEventID != "" {
		req.Header.Set("Last-Event-ID", opt.LastEventID)
	}
	hc := opt.Client
	if hc == nil {
		hc = HTTP
	}
	if hc.Timeout != 0 {
		// A whole-request timeout would cut the endless stream.
		c := *hc
		c.Timeout = 0
		hc = &c
	}
	resp, err := hc.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("subscribe %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		resp.Body.Close()
		cancel()
		t.Fatalf("subscribe %s: %s, content type %q", url, resp.Status, resp.Header.Get("Content-Type"))
	}
	return resp, cancel
}

// Close disconnects and waits for the reader to stop.
func (c *SSEClient) Close() {
	c.cancel()
	<-c.done
}

// Events returns every event received so far.
func (c *SSEClient) Events() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Event(nil), c.events...)
}

// Err returns why the stream ended, or nil while it runs.
func (c *SSEClient) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// WaitFor returns the first event at or after index from for which match
// is true, waiting up to timeout; it fails the test listing what arrived.
func (c *SSEClient) WaitFor(timeout time.Duration, from int, match func(Event) bool) (Event, int) {
	c.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		for i := from; i < len(c.events); i++ {
			if match(c.events[i]) {
				ev := c.events[i]
				c.mu.Unlock()
				return ev, i
			}
		}
		notify, err, n := c.notify, c.err, len(c.events)
		c.mu.Unlock()
		if err != nil {
			c.t.Fatalf("stream ended (%v) without the awaited event; got %d events: %s", err, n, c.summary())
		}
		select {
		case <-notify:
		case <-deadline.C:
			c.t.Fatalf("no matching event within %v; got %d events: %s", timeout, n, c.summary())
		}
	}
}

// WaitType waits for the next event of type typ at or after index from.
func (c *SSEClient) WaitType(timeout time.Duration, from int, typ string) (Event, int) {
	c.t.Helper()
	return c.WaitFor(timeout, from, func(e Event) bool { return e.Type == typ })
}

func (c *SSEClient) summary() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	start := max(0, len(c.events)-20)
	for _, e := range c.events[start:] {
		d := e.Data
		if len(d) > 120 {
			d = d[:120] + "…"
		}
		fmt.Fprintf(&b, "\n  id=%s %s %s", e.ID, e.Type, d)
	}
	return b.String()
}
