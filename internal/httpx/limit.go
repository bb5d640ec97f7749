package httpx

import (
	"container/list"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// FirstByteTimeout is how long the daemons let a new connection stay
// silent. An honest client writes its request (or TLS ClientHello) as soon
// as it is connected; one that sends nothing only holds a slot, and
// ReadHeaderTimeout alone would let it hold one for 10 s.
const FirstByteTimeout = 3 * time.Second

// EvictMinAge is the daemons' ConnLimits.MinAge: every connection has at
// least this long, besides its wait in the kernel's accept queue, to send
// its request before a flood may evict it; a flood from one address is
// admitted at most PerAddress per EvictMinAge.
const EvictMinAge = 20 * time.Millisecond

// Reasons a Limited listener closes a connection itself, as its Refusals
// name them. They join the daemons' request refusals (/v1/info and
// rbee_http_requests_refused_total).
const (
	// RefusedOverMax: a newcomer closed unanswered because every slot
	// was held by an authenticated connection.
	RefusedOverMax = "connections_over_max"
	// RefusedEvicted: an unauthenticated connection closed to make room
	// for a newcomer.
	RefusedEvicted = "connections_unauthenticated_evicted"
	// RefusedFirstByte: a connection closed for sending nothing within
	// FirstByte.
	RefusedFirstByte = "connections_first_byte_timeout"
)

// errShed is the error of reads on a connection the listener closed. It
// keeps net/http quiet about plain connections (a read *net.OpError) and
// marks TLS handshake errors, which net/http always logs, so that
// NewServer's error log can drop them: a flood would write one line per
// connection shed.
var errShed = fmt.Errorf("%s (%w)", shedMark, net.ErrClosed)

const shedMark = "shed by the connection limiter"

// ConnLimits bound the connections a Limited listener holds.
//
// Loopback is not a trust boundary: an attacker may share the operator's
// address, so a per-address bound alone cannot keep the operator served.
// What tells them apart is the token: a connection counts as
// unauthenticated until a request on it passes the guard (see
// MarkAuthenticated). Unauthenticated connections have a pool of their
// own, and a newcomer over a bound takes the place of the oldest of them
// instead of being refused: an honest client sends its request at once and
// is authenticated soon after, long before a flood's newer connections
// push it to the front. Connections that have sent nothing go before
// those that have (whose bytes may wait unread in the kernel: it is
// asked), and none goes before MinAge.
type ConnLimits struct {
	// Max is how many connections may be open at once. A newcomer past it
	// takes the place of the oldest unauthenticated connection, and is
	// refused (closed unanswered) only when every slot is held by an
	// authenticated one.
	Max int
	// Unauthenticated is how many of them may be unauthenticated; a
	// newcomer past it takes the place of the oldest. 0 means the
	// listener does not tell connections apart: past Max a newcomer is
	// refused.
	Unauthenticated int
	// PerAddress bounds the unauthenticated connections from one source
	// (an IPv4 address, an IPv6 /64, as one host gets a whole /64): a
	// newcomer past it takes the place of that source's oldest, so one
	// source's flood cannot push out another's newcomers. 0 means no
	// bound besides Unauthenticated.
	PerAddress int
	// MinAge is the least time a connection is given, from its
	// admission, before it may be evicted. The oldest connection goes
	// first, so a flood churning through a pool of n evicts a newcomer
	// after n admissions: the accept rate alone would decide whether an
	// honest client's first bytes (its goroutine scheduled, its process
	// run on a loaded host) come in time. With MinAge the listener waits
	// instead, and newcomers wait in the kernel's accept queue, which
	// their requests reach meanwhile; a flood of f connections then
	// delays every newcomer by about f × MinAge / n. 0 means no wait.
	MinAge time.Duration
	// FirstByte closes a connection that has sent nothing this long after
	// it was accepted; 0 means never. The first byte of a TLS connection
	// is its ClientHello: the listener sits below TLS.
	FirstByte time.Duration
}

// Limited is a listener that bounds its connections as its ConnLimits
// say and counts what it closes.
type Limited struct {
	net.Listener
	lim ConnLimits

	mu     sync.Mutex
	open   int                         // accepted and not yet closed
	queued connQueue                   // the unauthenticated, oldest first
	bySrc  map[netip.Prefix]*connQueue // the same, by source

	overMax, evicted, firstByte atomic.Uint64
	closed                      atomic.Bool
}

// connQueue holds unauthenticated connections oldest first, the silent
// ones apart: a victim is the oldest silent one, else the oldest that has
// spoken (a request may be on its way through the guard).
type connQueue struct{ silent, spoke list.List }

func (q *connQueue) len() int { return q.silent.Len() + q.spoke.Len() }

// LimitListener accepts at most n connections at once, all alike; one
// over the limit is closed at once (and counted) instead of queueing
// without bound.
func LimitListener(ln net.Listener, n int) *Limited {
	return NewLimited(ln, ConnLimits{Max: n})
}

// NewLimited returns ln bounded by lim.
func NewLimited(ln net.Listener, lim ConnLimits) *Limited {
	lim.Unauthenticated = min(lim.Unauthenticated, lim.Max)
	return &Limited{Listener: ln, lim: lim, bySrc: map[netip.Prefix]*connQueue{}}
}

// Refused returns how many newcomers were closed for being over Max.
func (l *Limited) Refused() uint64 { return l.overMax.Load() }

// Refusals returns how many connections the listener closed itself, by
// reason (the Refused… names).
func (l *Limited) Refusals() map[string]uint64 {
	return map[string]uint64{
		RefusedOverMax:   l.overMax.Load(),
		RefusedEvicted:   l.evicted.Load(),
		RefusedFirstByte: l.firstByte.Load(),
	}
}

// Conns returns how many connections are open, and how many of them are
// unauthenticated.
func (l *Limited) Conns() (open, unauthenticated int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open, l.queued.len()
}

// Accept returns the next connection within the limits, closing what
// must make room for it.
func (l *Limited) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc, err := l.admit(c)
		if err != nil {
			return nil, err
		}
		if tc != nil {
			return tc, nil
		}
	}
}

// Close closes the listener; a newcomer waiting for room is closed too.
func (l *Limited) Close() error {
	l.closed.Store(true)
	return l.Listener.Close()
}

// admit tracks c, shedding the connections that must make room for it,
// or closes c and returns nil when every slot is authenticated. When the
// connection to shed is younger than MinAge it first waits (newcomers
// wait meanwhile in the kernel's accept queue); it fails if the listener
// is closed meanwhile.
func (l *Limited) admit(c net.Conn) (*trackedConn, error) {
	tc := &trackedConn{Conn: c, l: l, src: source(c.RemoteAddr())}
	for {
		if l.closed.Load() {
			c.Close()
			return nil, fmt.Errorf("accept: %w", net.ErrClosed)
		}
		l.mu.Lock()
		if l.open >= l.lim.Max && l.queued.len() == 0 {
			l.mu.Unlock()
			l.overMax.Add(1)
			c.Close()
			return nil, nil
		}
		shed, wait := l.makeRoomLocked(tc.src)
		if wait == 0 {
			l.addLocked(tc)
		}
		l.mu.Unlock()
		for _, v := range shed {
			l.evicted.Add(1)
			v.shed()
		}
		if wait == 0 {
			return tc, nil
		}
		time.Sleep(wait)
	}
}

// makeRoomLocked releases, one at a time, the connections that must go
// for a newcomer from src to fit, and returns them for the caller to shed
// once l.mu is released. wait > 0 says the next one to go is younger than
// MinAge, by how much: room is not made yet.
func (l *Limited) makeRoomLocked(src netip.Prefix) (shed []*trackedConn, wait time.Duration) {
	if l.lim.Unauthenticated == 0 {
		return nil, 0
	}
	for {
		var q *connQueue
		switch sq := l.bySrc[src]; {
		case l.lim.PerAddress > 0 && sq != nil && sq.len() >= l.lim.PerAddress:
			q = sq
		case l.queued.len() >= l.lim.Unauthenticated || l.open >= l.lim.Max:
			q = &l.queued
		}
		if q == nil || q.len() == 0 {
			return shed, 0
		}
		v := l.victimLocked(q)
		if age := time.Since(v.admitted); age < l.lim.MinAge {
			return shed, l.lim.MinAge - age
		}
		l.releaseLocked(v)
		shed = append(shed, v)
	}
}

// addLocked gives tc a slot: in the unauthenticated queues, unless the
// listener does not tell connections apart.
func (l *Limited) addLocked(tc *trackedConn) {
	tc.admitted = time.Now()
	if l.lim.Unauthenticated > 0 {
		q := l.bySrc[tc.src]
		if q == nil {
			q = new(connQueue)
			l.bySrc[tc.src] = q
		}
		tc.inAll, tc.inSrc = l.queued.silent.PushBack(tc), q.silent.PushBack(tc)
	} else {
		tc.state = stateTrusted
	}
	l.open++
	if l.lim.FirstByte > 0 {
		tc.timer = time.AfterFunc(l.lim.FirstByte, tc.firstByteDue)
	}
}

// victimLocked is q's oldest silent connection, else its oldest. A
// silent one whose bytes wait unread in the kernel has spoken (its
// goroutine has not run yet): it moves to the spoken, so a fresh
// client's request is never taken for silence.
func (l *Limited) victimLocked(q *connQueue) *trackedConn {
	for e := q.silent.Front(); e != nil; e = q.silent.Front() {
		c := e.Value.(*trackedConn)
		if !pending(c.Conn) {
			return c
		}
		l.spokeLocked(c)
	}
	return q.spoke.Front().Value.(*trackedConn)
}

// spokeLocked records that c has sent something: its first-byte deadline
// is met and, if unauthenticated, it now goes after the silent.
func (l *Limited) spokeLocked(c *trackedConn) {
	if c.spoke.Load() {
		return
	}
	c.spoke.Store(true)
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.state != stateQueued {
		return
	}
	q := l.bySrc[c.src]
	l.queued.silent.Remove(c.inAll)
	q.silent.Remove(c.inSrc)
	c.inAll, c.inSrc = l.queued.spoke.PushBack(c), q.spoke.PushBack(c)
}

// unqueueLocked takes c out of the unauthenticated queues.
func (l *Limited) unqueueLocked(c *trackedConn) {
	q := l.bySrc[c.src]
	// list.Remove ignores an element of another list: c is in one of
	// each pair.
	l.queued.silent.Remove(c.inAll)
	l.queued.spoke.Remove(c.inAll)
	q.silent.Remove(c.inSrc)
	q.spoke.Remove(c.inSrc)
	c.inAll, c.inSrc = nil, nil
	if q.len() == 0 {
		delete(l.bySrc, c.src)
	}
}

// releaseLocked frees c's slot; it reports false when c was already
// released.
func (l *Limited) releaseLocked(c *trackedConn) bool {
	switch c.state {
	case stateClosed:
		return false
	case stateQueued:
		l.unqueueLocked(c)
	}
	c.state = stateClosed
	l.open--
	return true
}

type connState uint8

const (
	stateQueued  connState = iota // unauthenticated, in the queues
	stateTrusted                  // authenticated, or not told apart
	stateClosed                   // its slot is free
)

// trackedConn is a connection of a Limited listener.
type trackedConn struct {
	net.Conn
	l        *Limited
	src      netip.Prefix
	admitted time.Time
	timer    *time.Timer // the first-byte deadline; nil for none

	spoke   atomic.Bool // it sent a byte; set under l.mu
	trusted atomic.Bool // a request on it was authenticated
	shedded atomic.Bool // the listener closed it

	// Guarded by l.mu.
	state        connState
	inAll, inSrc *list.Element // in l.queued and l.bySrc[src]
}

// Read notes the first byte, and says "shed" (errShed, still a read
// *net.OpError) when the listener closed the connection.
func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.spoke.Load() {
		c.l.mu.Lock()
		c.l.spokeLocked(c)
		c.l.mu.Unlock()
	}
	if err != nil && c.shedded.Load() {
		if oe, ok := err.(*net.OpError); ok {
			e := *oe
			e.Err = errShed
			err = &e
		}
	}
	return n, err
}

// Close frees the connection's slot.
func (c *trackedConn) Close() error {
	if c.timer != nil {
		c.timer.Stop()
	}
	c.l.mu.Lock()
	c.l.releaseLocked(c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}

// shed closes a connection the listener has already released.
func (c *trackedConn) shed() {
	c.shedded.Store(true)
	if c.timer != nil {
		c.timer.Stop()
	}
	c.Conn.Close()
}

// firstByteDue closes c if it is still silent (nothing read, nothing
// waiting to be).
func (c *trackedConn) firstByteDue() {
	l := c.l
	l.mu.Lock()
	if c.state == stateClosed || c.spoke.Load() {
		l.mu.Unlock()
		return
	}
	if pending(c.Conn) {
		l.spokeLocked(c)
		l.mu.Unlock()
		return
	}
	l.releaseLocked(c)
	l.mu.Unlock()
	l.firstByte.Add(1)
	c.shed()
}

// trust marks c authenticated: it leaves the unauthenticated pool and
// is never evicted.
func (c *trackedConn) trust() {
	if c.trusted.Swap(true) {
		return
	}
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	if c.state == stateQueued {
		c.l.unqueueLocked(c)
		c.state = stateTrusted
	}
}

// source is the key of a's per-address bound: the IPv4 address, or the
// IPv6 /64.
func source(a net.Addr) netip.Prefix {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Prefix{}
	}
	ip := ta.AddrPort().Addr().Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

type connKey struct{}

// withConn is NewServer's ConnContext: it puts the tracked connection
// under a request's context, for MarkAuthenticated. A TLS connection is
// unwrapped: the listener sits below TLS.
func withConn(ctx context.Context, c net.Conn) context.Context {
	if t, ok := c.(*tls.Conn); ok {
		c = t.NetConn()
	}
	if t, ok := c.(*trackedConn); ok {
		return context.WithValue(ctx, connKey{}, t)
	}
	return ctx
}

// MarkAuthenticated tells the Limited listener the request of ctx came
// from that its connection carries a valid credential: the connection
// leaves the unauthenticated pool for good (kept alive, hijacked for a
// stream). The guard calls it once the credential is accepted. It does
// nothing for a request served otherwise (httptest, another listener).
func MarkAuthenticated(ctx context.Context) {
	if c, ok := ctx.Value(connKey{}).(*trackedConn); ok {
		c.trust()
	}
}
