// Package stream is queen-rbee's Server-Sent Events fan-out, built on
// go-sse's Joe provider and replay buffer.
//
// Joe hands each message to its subscribers one after another and blocks
// every publisher while a subscriber's Send blocks. So every subscriber is
// wrapped in a bounded queue: Joe's Send only enqueues (never blocks), a
// writer goroutine per client drains the queue to the connection under a
// write deadline, hive_telemetry events of the same hive coalesce in the
// queue (only the newest matters), and a client whose queue still
// overflows is disconnected and counted. A stalled client therefore never
// delays the others or the publisher.
package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/httpx"
	sse "github.com/tmaxmax/go-sse"
)

// Config configures a Broker. The zero value works.
type Config struct {
	// QueueSize bounds each client's queue; 0 means 1024 events (a hive
	// restart can emit hundreds of worker events at once).
	QueueSize int
	// ReplaySize is how many past events a reconnecting client can get
	// back with Last-Event-ID; 0 means 4096.
	ReplaySize int
	// ReplayBytes bounds the replay buffer's payload bytes too; 0 means
	// 64 MiB.
	ReplayBytes int
	// KeepAlive is the interval of keep-alive comments; 0 means 15 s.
	KeepAlive time.Duration
	// WriteTimeout bounds one write to a client; 0 means 10 s.
	WriteTimeout time.Duration
	// Coalesce names the event type whose events of the same key replace
	// each other in a client's queue; "" means none.
	Coalesce string
	// MaxClients bounds the connected clients; one more is answered 503
	// with Retry-After. 0 means 1000.
	MaxClients int
	Logger     *slog.Logger
}

// Stats counts the broker's clients and what slow clients cost.
type Stats struct {
	Clients   int64  // connected now
	Published uint64 // events published
	Coalesced uint64 // queued events replaced by a newer one of the same key
	Evicted   uint64 // clients disconnected for falling behind
	Refused   uint64 // clients refused over MaxClients
}

// Broker publishes events to every connected SSE client.
type Broker struct {
	cfg Config
	joe *sse.Joe
	log *slog.Logger

	pubMu   sync.Mutex // assigns ids in publish order
	nextID  uint64
	pubSize int // payload size of the message being published, for the replayer

	keyMu sync.Mutex
	keys  map[string]string // event id -> coalescing key, for recent events
	ring  []string          // ids in keys, oldest first

	clients                                atomic.Int64
	published, coalesced, evicted, refused atomic.Uint64
}

// New returns a Broker.
func New(cfg Config) (*Broker, error) {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 1024
	}
	if cfg.ReplaySize <= 0 {
		cfg.ReplaySize = 4096
	}
	if cfg.ReplayBytes <= 0 {
		cfg.ReplayBytes = 64 << 20
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 15 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.MaxClients <= 0 {
		cfg.MaxClients = 1000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	// IDs are assigned by Publish, so the queues see the published
	// pointer's id.
	b := &Broker{cfg: cfg, log: cfg.Logger, keys: map[string]string{}}
	rp := &replayer{maxCount: cfg.ReplaySize, maxBytes: cfg.ReplayBytes, size: &b.pubSize}
	b.joe = &sse.Joe{Replayer: subscribedReplayer{rp}}
	return b, nil
}

// subscribedReplayer tells a client when Joe has subscribed it. Joe calls
// Replay in its own goroutine just before it adds the subscriber, and
// handles no publish in between, so any event published after the signal
// reaches the client. The client's response headers wait for it: a 200
// means "subscribed", and nothing published after it is missed.
type subscribedReplayer struct{ sse.Replayer }

func (r subscribedReplayer) Replay(sub sse.Subscription) error {
	err := r.Replayer.Replay(sub)
	if c, ok := sub.Client.(*client); ok {
		c.subscribedOnce.Do(func() { close(c.subscribed) })
	}
	return err
}

var topics = []string{sse.DefaultTopic}

// Publish sends an event of type typ with data marshalled as JSON. key
// groups events that coalesce (for the Coalesce type: the hive id).
func (b *Broker) Publish(typ, key string, data any) error {
	payload, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("publish %s: %w", typ, err)
	}
	b.pubMu.Lock()
	defer b.pubMu.Unlock()
	b.nextID++
	id := strconv.FormatUint(b.nextID, 10)
	msg := &sse.Message{ID: sse.ID(id), Type: sse.Type(typ)}
	msg.AppendData(string(payload))
	b.pubSize = len(payload)
	if typ == b.cfg.Coalesce && key != "" {
		b.remember(id, key)
	}
	if err := b.joe.Publish(msg, topics); err != nil {
		return fmt.Errorf("publish %s: %w", typ, err)
	}
	b.published.Add(1)
	return nil
}

// remember records id's coalescing key, forgetting the oldest beyond what
// any queue can hold.
func (b *Broker) remember(id, key string) {
	b.keyMu.Lock()
	defer b.keyMu.Unlock()
	b.keys[id] = key
	b.ring = append(b.ring, id)
	if limit := 4 * (b.cfg.QueueSize + b.cfg.ReplaySize); len(b.ring) > limit {
		drop := len(b.ring) - limit
		for _, old := range b.ring[:drop] {
			delete(b.keys, old)
		}
		b.ring = append(b.ring[:0], b.ring[drop:]...)
	}
}

func (b *Broker) keyOf(m *sse.Message) string {
	if m.Type.String() != b.cfg.Coalesce {
		return ""
	}
	b.keyMu.Lock()
	defer b.keyMu.Unlock()
	return b.keys[m.ID.String()]
}

// Stats returns the counters.
func (b *Broker) Stats() Stats {
	return Stats{Clients: b.clients.Load(), Published: b.published.Load(), Coalesced: b.coalesced.Load(),
		Evicted: b.evicted.Load(), Refused: b.refused.Load()}
}

// Shutdown disconnects every client.
func (b *Broker) Shutdown(ctx context.Context) error {
	err := b.joe.Shutdown(ctx)
	if errors.Is(err, sse.ErrProviderClosed) {
		return nil
	}
	return err
}

// ServeHTTP streams events to one client until it goes away, is evicted,
// or the broker shuts down. A Last-Event-ID header replays what it missed.
func (b *Broker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if n := b.clients.Add(1); n > int64(b.cfg.MaxClients) {
		b.clients.Add(-1)
		b.refused.Add(1)
		w.Header().Set("Retry-After", "5")
		httpx.Error(w, api.Errorf(api.ErrUnavailable, "the queen serves %d stream clients, its --max-stream-clients; retry later", b.cfg.MaxClients))
		return
	}
	defer b.clients.Add(-1)
	// A stream lives for hours: the server's read deadline (which guards
	// request bodies) must not end it.
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	sess, err := sse.Upgrade(w, r)
	if err != nil {
		http.Error(w, "server-sent events unsupported: "+err.Error(), http.StatusInternalServerError)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	c := &client{b: b, sess: sess, rc: http.NewResponseController(w), cancel: cancel,
		wake: make(chan struct{}, 1), subscribed: make(chan struct{})}
	done := make(chan struct{})
	go func() { defer close(done); c.write(ctx) }()
	err = b.joe.Subscribe(ctx, sse.Subscription{Client: c, LastEventID: sess.LastEventID, Topics: topics})
	cancel()
	<-done
	if err != nil && !errors.Is(err, sse.ErrProviderClosed) && !errors.Is(err, errEvicted) {
		b.log.Debug("sse client ended", "remote", r.RemoteAddr, "err", err)
	}
}

var errEvicted = errors.New("client fell behind")

// queued is a message waiting for a client, with its coalescing key looked
// up once on arrival.
type queued struct {
	msg *sse.Message
	key string
}

// client is one subscriber: Joe's Send and Flush enqueue, write drains.
type client struct {
	b      *Broker
	sess   *sse.Session
	rc     *http.ResponseController
	cancel context.CancelFunc
	wake   chan struct{}
	// subscribed is closed once Joe has the client (see subscribedReplayer).
	subscribed     chan struct{}
	subscribedOnce sync.Once

	mu      sync.Mutex
	queue   []queued
	evicted bool
	// primed is set by the first Flush. Joe replays missed events with
	// Sends and one Flush before any live event, so until then the queue
	// may also hold a whole replay.
	primed  bool
	writeMu sync.Mutex // sess is written by write and flushNow
}

// Send enqueues m without blocking. Called only from Joe's goroutine.
func (c *client) Send(m *sse.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.evicted {
		return errEvicted
	}
	key := c.b.keyOf(m)
	if key != "" {
		for i, q := range c.queue {
			if q.key == key && q.msg.Type == m.Type {
				// Only the newest telemetry of a hive matters; moving it
				// to the back keeps ids increasing for Last-Event-ID.
				c.queue = append(c.queue[:i], c.queue[i+1:]...)
				c.queue = append(c.queue, queued{m, key})
				c.b.coalesced.Add(1)
				return nil
			}
		}
	}
	limit := c.b.cfg.QueueSize
	if !c.primed {
		limit += c.b.cfg.ReplaySize
	}
	if len(c.queue) >= limit {
		c.evicted = true
		c.queue = nil
		c.b.evicted.Add(1)
		c.cancel()
		return errEvicted
	}
	c.queue = append(c.queue, queued{m, key})
	return nil
}

// Flush wakes the writer.
func (c *client) Flush() error {
	select {
	case c.wake <- struct{}{}:
	default:
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.primed = true
	if c.evicted {
		return errEvicted
	}
	return nil
}

func (c *client) write(ctx context.Context) {
	// The response headers go out once the client is subscribed, so a
	// client that sees them will get every event published afterwards.
	select {
	case <-c.subscribed:
		if err := c.flushNow(); err != nil {
			c.cancel()
			return
		}
	case <-ctx.Done():
		return
	}
	keep := time.NewTicker(c.b.cfg.KeepAlive)
	defer keep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		case <-keep.C:
			ka := &sse.Message{}
			ka.AppendComment("keep-alive")
			if err := c.send([]queued{{msg: ka}}); err != nil {
				c.cancel()
				return
			}
			continue
		}
		c.mu.Lock()
		batch := c.queue
		c.queue = nil
		c.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		if err := c.send(batch); err != nil {
			c.cancel()
			return
		}
	}
}

// send writes msgs and flushes, under the write deadline.
func (c *client) send(msgs []queued) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_ = c.rc.SetWriteDeadline(time.Now().Add(c.b.cfg.WriteTimeout))
	for _, q := range msgs {
		if err := c.sess.Send(q.msg); err != nil {
			return err
		}
	}
	return c.sess.Flush()
}

func (c *client) flushNow() error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_ = c.rc.SetWriteDeadline(time.Now().Add(c.b.cfg.WriteTimeout))
	return c.sess.Flush()
}
