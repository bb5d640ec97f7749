// Package stream is queen-rbee's Server-Sent Events fan-out.
//
// go-sse does the wire protocol: each event is encoded once, as a go-sse
// Message marshalled to its frame, and written as those bytes to every
// client; go-sse's Upgrade opens each client's session and reads its
// Last-Event-ID. The fan-out is rbee's own, because every client needs
// what go-sse's Joe does not give: a snapshot that opens its stream
// (consistent with what follows), filters, a bounded queue in which a
// hive's telemetry coalesces, and eviction when it still falls behind. A
// stalled client therefore never delays the others or the publisher.
//
// Event ids are "<epoch>-<n>": the epoch is new at every start, so an id
// from another run of the queen is never mistaken for one of this run. A
// client that resumes from an id the broker still holds gets what it
// missed; one that resumes from any other id gets a snapshot marked
// resync instead of a silent gap.
package stream

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	sse "github.com/tmaxmax/go-sse"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/httpx"
)

// Config configures a Broker. The zero value works (without snapshots).
type Config struct {
	// QueueSize bounds each client's queue; 0 means 1024 events (a hive
	// restart can emit hundreds of worker events at once).
	QueueSize int
	// ReplaySize and ReplayBytes bound the events kept for clients that
	// reconnect with Last-Event-ID; 0 means 4096 events and 4 MiB (a
	// fleet's worth of worker events; telemetry keeps only its newest per
	// hive).
	ReplaySize, ReplayBytes int
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
	// Snapshot returns the data of the snapshot event that opens a
	// client's stream, for its filter; resync says the client asked for
	// events the broker no longer has. nil means no snapshot.
	Snapshot func(f Filter, resync bool) any
	Logger   *slog.Logger
}

// Stats counts the broker's clients and what slow clients cost.
type Stats struct {
	Clients   int64  // connected now
	Published uint64 // events published
	Coalesced uint64 // queued events replaced by a newer one of the same key
	Evicted   uint64 // clients disconnected for falling behind
	Refused   uint64 // clients refused over MaxClients
	Resyncs   uint64 // clients resumed with a snapshot instead of a replay
	// SnapshotsBuilt counts the snapshots made; SnapshotsShared the
	// clients that took one made for another client.
	SnapshotsBuilt, SnapshotsShared uint64
}

// Event is what Publish takes.
type Event struct {
	Type string
	// Key is the hive the event is about, for ?hive= and, for the
	// Coalesce type, coalescing; "" for the queen's own events.
	Key string
	// Models are the models the event concerns, for ?model=; nil means
	// it concerns every client.
	Models []string
	// Data is marshalled as JSON, once.
	Data any
	// View, when set, returns Data as a client filtering on one model
	// sees it; each model's view is encoded once, when a client first
	// needs it.
	View func(model string) any
}

// event is one published event: its frame is encoded once and written as
// is to every client.
type event struct {
	seq    uint64
	typ    string
	key    string   // the hive, for filters and coalescing
	models []string // for ?model=
	frame  *wire
	view   func(model string) any
	views  map[string]*wire // frames of view, by model; guarded by Broker.mu
	// dead marks telemetry superseded by a newer event of the same key:
	// replay skips it, and its bytes are released.
	dead bool
}

// size is what e holds of the replay buffer's bytes.
func (e *event) size() int {
	if e.frame == nil {
		return 0
	}
	n := len(e.frame.raw)
	for _, f := range e.views {
		n += len(f.raw)
	}
	return n
}

// Broker publishes events to every connected SSE client.
type Broker struct {
	cfg   Config
	log   *slog.Logger
	epoch string

	mu   sync.Mutex // publish order, the ring, the client set
	seq  uint64
	ring []*event // oldest first
	// latest is each key's newest Coalesce event in the ring; dead counts
	// the superseded ones still in it; lost is the newest seq dropped for
	// room while alive: a client that saw it can still be replayed to.
	latest  map[string]*event
	dead    int
	lost    uint64
	bytes   int
	clients map[*client]struct{}
	snaps   map[string]*snapshot // shared snapshots, by snapshotKey
	closed  bool

	nclients, ncoalesced                   atomic.Int64
	published, coalesced, evicted, refused atomic.Uint64
	resyncs                                atomic.Uint64
	snapshotsBuilt, snapshotsShared        atomic.Uint64
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
		cfg.ReplayBytes = 4 << 20
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
	var b [3]byte
	_, _ = rand.Read(b[:])
	epoch := strconv.FormatInt(time.Now().UnixMilli(), 36) + hex.EncodeToString(b[:])
	return &Broker{cfg: cfg, log: cfg.Logger, epoch: epoch, clients: map[*client]struct{}{}, latest: map[string]*event{}, snaps: map[string]*snapshot{}}, nil
}

// Epoch is this run's part of every event id.
func (b *Broker) Epoch() string { return b.epoch }

func (b *Broker) id(seq uint64) string { return b.epoch + "-" + strconv.FormatUint(seq, 10) }

// frame encodes one event for the wire, with go-sse.
func frame(id, typ string, payload []byte) []byte {
	m := &sse.Message{Type: sse.Type(typ)}
	if id != "" {
		m.ID = sse.ID(id)
	}
	// payload is never changed after this; the frame copies it once.
	m.AppendData(unsafe.String(unsafe.SliceData(payload), len(payload)))
	// Sized up front: the frame stays in the replay buffer, and a grown
	// buffer's slack would stay with it.
	buf := bytes.NewBuffer(make([]byte, 0, len(payload)+len(id)+len(typ)+32))
	_, _ = m.WriteTo(buf)
	return buf.Bytes()
}

// Clients reports how many clients are connected.
func (b *Broker) Clients() int { return int(b.nclients.Load()) }

// CoalescedWanted reports whether any connected client takes the Coalesce
// type (telemetry): the queen skips building it when none does.
func (b *Broker) CoalescedWanted() bool { return b.ncoalesced.Load() > 0 }

// Appender is data that writes its own JSON, skipping encoding/json's
// reflection and its re-validation of a MarshalJSON method's output (the
// queen's telemetry, every heartbeat).
type Appender interface {
	AppendJSON(b []byte) []byte
}

// encode marshals data as JSON.
func encode(data any) ([]byte, error) {
	if a, ok := data.(Appender); ok {
		return a.AppendJSON(nil), nil
	}
	return json.Marshal(data)
}

// Publish sends e to every client whose filter takes it.
func (b *Broker) Publish(e Event) error {
	payload, err := encode(e.Data)
	if err != nil {
		return fmt.Errorf("publish %s: %w", e.Type, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.seq++
	ev := &event{seq: b.seq, typ: e.Type, key: e.Key, models: e.Models, frame: newWire(frame(b.id(b.seq), e.Type, payload)), view: e.View}
	b.ring = append(b.ring, ev)
	b.bytes += len(ev.frame.raw)
	for c := range b.clients {
		if c.filter.match(ev) {
			c.enqueueLocked(ev, b.frameForLocked(ev, c.filter.Model))
		}
	}
	b.retainLocked(ev)
	b.published.Add(1)
	return nil
}

// retain keeps the replay buffer to what a resuming client needs: of a
// key's Coalesce events only the newest (older telemetry of a hive is
// worth nothing once a newer one exists), and within ReplaySize live
// events and ReplayBytes. Caller holds mu.
func (b *Broker) retainLocked(ev *event) {
	if ev.typ == b.cfg.Coalesce && ev.key != "" {
		if old := b.latest[ev.key]; old != nil {
			b.bytes -= old.size()
			old.dead, old.frame, old.view, old.views = true, nil, nil, nil
			b.dead++
		}
		b.latest[ev.key] = ev
	}
	drop := 0
	for len(b.ring)-drop > 1 && (len(b.ring)-b.dead-drop > b.cfg.ReplaySize || b.bytes > b.cfg.ReplayBytes || b.ring[drop].dead) {
		e := b.ring[drop]
		if e.dead {
			b.dead--
		} else {
			b.bytes -= e.size()
			b.lost = e.seq
			if b.latest[e.key] == e {
				delete(b.latest, e.key)
			}
		}
		b.ring[drop] = nil
		drop++
	}
	if drop > 0 {
		b.ring = append(b.ring[:0], b.ring[drop:]...)
	}
	if b.dead > len(b.ring)/2 {
		live := b.ring[:0]
		for _, e := range b.ring {
			if !e.dead {
				live = append(live, e)
			}
		}
		clear(b.ring[len(live):])
		b.ring, b.dead = live, 0
	}
}

// frameFor returns e's frame as a client filtering on model sees it,
// encoding that view the first time a client needs it. Caller holds mu.
func (b *Broker) frameForLocked(e *event, model string) *wire {
	if model == "" || e.view == nil || e.dead {
		return e.frame
	}
	if f, ok := e.views[model]; ok {
		return f
	}
	payload, err := encode(e.view(model))
	if err != nil {
		b.log.Error("encode event view", "type", e.typ, "model", model, "err", err)
		return e.frame
	}
	if e.views == nil {
		e.views = map[string]*wire{}
	}
	f := newWire(frame(b.id(e.seq), e.typ, payload))
	e.views[model] = f
	b.bytes += len(f.raw)
	return f
}

// since returns the live events after the one with id last, or false
// when the broker cannot tell (another epoch, an id it never gave, or
// one before an event it dropped for room). Caller holds mu.
func (b *Broker) sinceLocked(last string) ([]*event, bool) {
	epoch, n, ok := strings.Cut(last, "-")
	if !ok || epoch != b.epoch {
		return nil, false
	}
	seq, err := strconv.ParseUint(n, 10, 64)
	if err != nil {
		return nil, false
	}
	return b.sinceSeqLocked(seq)
}

// sinceSeqLocked returns the live events after seq, or false when the
// ring no longer holds all of them. Caller holds mu.
func (b *Broker) sinceSeqLocked(seq uint64) ([]*event, bool) {
	if seq > b.seq || seq < b.lost {
		return nil, false
	}
	i, _ := slices.BinarySearchFunc(b.ring, seq+1, func(e *event, s uint64) int { return cmp.Compare(e.seq, s) })
	var out []*event
	for _, e := range b.ring[i:] {
		if !e.dead {
			out = append(out, e)
		}
	}
	return out, true
}

// Stats returns the counters.
func (b *Broker) Stats() Stats {
	return Stats{Clients: b.nclients.Load(), Published: b.published.Load(), Coalesced: b.coalesced.Load(),
		Evicted: b.evicted.Load(), Refused: b.refused.Load(), Resyncs: b.resyncs.Load(),
		SnapshotsBuilt: b.snapshotsBuilt.Load(), SnapshotsShared: b.snapshotsShared.Load()}
}

// Shutdown disconnects every client and waits for their handlers, until
// ctx is done.
func (b *Broker) Shutdown(ctx context.Context) error {
	b.mu.Lock()
	b.closed = true
	for c := range b.clients {
		c.cancel()
	}
	b.mu.Unlock()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for b.nclients.Load() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("stream shutdown: %d clients still connected: %w", b.nclients.Load(), ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// ServeHTTP streams events to one client until it goes away, is evicted,
// or the broker shuts down. The stream opens with a snapshot, or, with a
// Last-Event-ID the broker still holds, with the events the client missed.
func (b *Broker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, err := ParseFilter(r.URL.Query())
	if err != nil {
		httpx.Error(w, err)
		return
	}
	if r.Method == http.MethodHead {
		// The headers a GET would get, and no stream: net/http would
		// discard what a stream wrote, and the request would never end.
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		return
	}
	if n := b.nclients.Add(1); n > int64(b.cfg.MaxClients) {
		b.nclients.Add(-1)
		b.refused.Add(1)
		w.Header().Set("Retry-After", "5")
		httpx.Error(w, api.Errorf(api.ErrUnavailable, "the queen serves %d stream clients, its --max-stream-clients; retry later", b.cfg.MaxClients))
		return
	}
	defer b.nclients.Add(-1)
	// A stream lives for hours: the server's read deadline (which guards
	// request bodies) must not end it.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	sess, err := sse.Upgrade(w, r)
	if err != nil {
		httpx.Error(w, fmt.Errorf("server-sent events: %w", err))
		return
	}
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.Header().Add("Vary", "Accept-Encoding")
	if r.ProtoMajor == 1 {
		// The stream ends only when the connection does, so HTTP/1.1
		// needs no chunks to mark where it ends (the setup the SSE
		// recommendation gives): net/http then writes each send as it
		// is, in one syscall, where a chunk took three, two of them
		// tiny (its size, then the 4 KB its buffer held, the rest, and
		// its CRLF at the flush): a third of the TCP segments, and of
		// the wakeups, when a hive's join goes to a thousand viewers.
		// HTTP/2 has no chunks and drops the header.
		w.Header().Set("Transfer-Encoding", "identity")
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	c := &client{b: b, filter: f, w: w, sess: sess, rc: rc, cancel: cancel, wake: make(chan struct{}, 1)}
	if httpx.AcceptsGzip(r.Header.Get("Accept-Encoding")) {
		w.Header().Set("Content-Encoding", "gzip")
		c.gz = &gzipState{}
	}
	if !b.subscribe(c, sess.LastEventID.String()) {
		// Nothing is written yet: say why, in plain JSON, rather than an
		// empty 200 that claims a gzip body.
		for _, h := range []string{"Content-Encoding", "Transfer-Encoding", "Vary"} {
			w.Header().Del(h)
		}
		w.Header().Set("Retry-After", "5")
		httpx.Error(w, api.Errorf(api.ErrUnavailable, "the queen is shutting down; retry"))
		return
	}
	defer b.unsubscribe(c)
	c.write(ctx)
}

// subscribe adds c: with the events it missed when last is an id the
// broker holds, else after a snapshot and the events since it. It returns
// false when the broker is closed.
func (b *Broker) subscribe(c *client, last string) bool {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return false
	}
	replayed, resync := false, false
	if last != "" {
		if evs, ok := b.sinceLocked(last); ok {
			replayed = true
			c.queueLocked(evs)
		} else {
			resync = true
			b.resyncs.Add(1)
		}
	}
	// A resync goes even to a client whose ?types= leaves snapshots out:
	// without it, it would not know it missed events.
	var snap *snapshot
	if !replayed && b.cfg.Snapshot != nil && (resync || c.filter.Wants(api.EventSnapshot)) {
		snap = b.snapshotLocked(c.filter, resync)
		evs, _ := b.sinceSeqLocked(snap.seq) // snapshotLocked checked the ring holds them
		c.queueLocked(evs)
	}
	b.clients[c] = struct{}{}
	if c.filter.Wants(b.cfg.Coalesce) {
		b.ncoalesced.Add(1)
	}
	b.mu.Unlock()
	if snap != nil {
		f := snap.frame() // built by the first client that needs it, outside the lock
		c.mu.Lock()
		c.first = f
		c.mu.Unlock()
	}
	c.signal()
	return true
}

// queueLocked puts evs, as c's filter takes them, in c's queue, before
// anything published after. Caller holds the broker's mu.
func (c *client) queueLocked(evs []*event) {
	for _, e := range evs {
		if c.filter.match(e) {
			c.queue = append(c.queue, queued{e, c.b.frameForLocked(e, c.filter.Model)})
		}
	}
}

func (b *Broker) unsubscribe(c *client) {
	b.mu.Lock()
	delete(b.clients, c)
	if c.filter.Wants(b.cfg.Coalesce) {
		b.ncoalesced.Add(-1)
	}
	b.mu.Unlock()
}

var errEvicted = errors.New("client fell behind")

// client is one subscriber: Publish enqueues, write drains.
type client struct {
	b      *Broker
	filter Filter
	w      http.ResponseWriter
	sess   *sse.Session
	rc     *http.ResponseController
	cancel context.CancelFunc
	wake   chan struct{}

	mu      sync.Mutex
	gz      *gzipState // nil unless the client takes gzip
	first   *wire      // the snapshot frame, written before the queue
	queue   []queued
	evicted bool
}

// queued is an event in a client's queue, with the frame it gets.
type queued struct {
	ev    *event
	frame *wire
}

func (c *client) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// enqueue adds e, as frame, without blocking. Caller holds the broker's
// mu.
func (c *client) enqueueLocked(e *event, frame *wire) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.evicted {
		return
	}
	if e.typ == c.b.cfg.Coalesce && e.key != "" {
		for i, q := range c.queue {
			if q.ev.typ == e.typ && q.ev.key == e.key {
				// Only the newest telemetry of a hive matters; moving it
				// to the back keeps ids increasing for Last-Event-ID.
				copy(c.queue[i:], c.queue[i+1:])
				c.queue[len(c.queue)-1] = queued{e, frame}
				c.b.coalesced.Add(1)
				c.signal()
				return
			}
		}
	}
	if len(c.queue) >= c.b.cfg.QueueSize {
		c.evicted = true
		c.queue = nil
		c.b.evicted.Add(1)
		c.cancel()
		return
	}
	c.queue = append(c.queue, queued{e, frame})
	c.signal()
}

// write sends the response headers, then the snapshot and queued events
// as they come, and a keep-alive comment when there is nothing to send.
func (c *client) write(ctx context.Context) {
	c.rc.SetWriteDeadline(time.Now().Add(c.b.cfg.WriteTimeout))
	if err := c.sess.Flush(); err != nil { // the headers
		return
	}
	if c.gz != nil {
		if _, err := c.w.Write(gzipHeader); err != nil {
			return
		}
		if err := c.rc.Flush(); err != nil {
			return
		}
	}
	keep := time.NewTicker(c.b.cfg.KeepAlive)
	defer keep.Stop()
	var batch []queued
	for {
		select {
		case <-ctx.Done():
			c.end()
			return
		case <-keep.C:
			if err := c.send(nil, keepAlive, nil); err != nil {
				c.dropped(err)
				return
			}
			continue
		case <-c.wake:
		}
		c.mu.Lock()
		first := c.first
		c.first = nil
		batch = append(batch[:0], c.queue...)
		clear(c.queue)
		c.queue = c.queue[:0]
		c.mu.Unlock()
		if first == nil && len(batch) == 0 {
			continue
		}
		if err := c.send(first, nil, batch); err != nil {
			c.dropped(err)
			return
		}
		clear(batch)
	}
}

// end closes a gzip stream cleanly (its final block and trailer), so a
// client told to go (the queen stopping, eviction) sees the end of a
// stream rather than a truncated one. Best effort: the client may be gone
// or not reading.
func (c *client) end() {
	if c.gz == nil {
		return
	}
	_ = c.rc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := c.w.Write(c.gz.end()); err == nil {
		_ = c.rc.Flush()
	}
}

// dropped counts a client whose write timed out as evicted: it stopped
// reading, as surely as one whose queue overflowed. One that went away
// is not counted.
func (c *client) dropped(err error) {
	c.mu.Lock()
	counted := c.evicted // its queue overflowed first
	c.evicted = true
	c.mu.Unlock()
	if !counted && errors.Is(err, os.ErrDeadlineExceeded) {
		c.b.evicted.Add(1)
		c.b.log.Info("stream client dropped: not reading", "err", err)
	}
}

// send writes frames and flushes, under the write deadline: one write
// for them all, as one syscall, where a frame at a time took one each (a
// hive joining is ten events of 10 KB to each of a thousand clients).
func (c *client) send(first, comment *wire, evs []queued) error {
	_ = c.rc.SetWriteDeadline(time.Now().Add(c.b.cfg.WriteTimeout))
	bp := sendBufs.Get().(*[]byte)
	buf := (*bp)[:0]
	for _, f := range [...]*wire{first, comment} {
		if f != nil {
			buf = append(buf, c.bytes(f)...)
		}
	}
	for _, q := range evs {
		buf = append(buf, c.bytes(q.frame)...)
	}
	_, err := c.w.Write(buf)
	if cap(buf) <= maxSendBuf { // a snapshot's megabytes are not kept
		*bp = buf[:0]
		sendBufs.Put(bp)
	}
	if err != nil {
		return err
	}
	return c.rc.Flush()
}

// sendBufs are send's buffers, shared by the clients (a buffer each would
// hold a thousand clients' worth of memory).
var sendBufs = sync.Pool{New: func() any { return new([]byte) }}

const maxSendBuf = 256 << 10

// bytes returns f as the client's stream carries it: raw, or deflated
// for its gzip stream.
func (c *client) bytes(f *wire) []byte {
	if c.gz != nil {
		return c.gz.segment(f)
	}
	return f.raw
}
