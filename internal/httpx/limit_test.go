package httpx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// limitFixture runs a Limited listener whose accepted connections the
// test holds (nothing reads them unless the test does).
type limitFixture struct {
	t        *testing.T
	l        *Limited
	accepted chan net.Conn
}

func newLimitFixture(t *testing.T, lim ConnLimits) *limitFixture {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &limitFixture{t: t, l: NewLimited(ln, lim), accepted: make(chan net.Conn, 1024)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := f.l.Accept()
			if err != nil {
				return
			}
			f.accepted <- c
		}
	}()
	t.Cleanup(func() {
		f.l.Close()
		<-done
		close(f.accepted)
		for c := range f.accepted {
			c.Close()
		}
	})
	return f
}

// dial connects from the loopback address src and returns the client's
// end and, once accepted, the server's.
func (f *limitFixture) dial(src string) (client net.Conn, server *trackedConn) {
	f.t.Helper()
	client = f.connect(src)
	select {
	case c := <-f.accepted:
		f.t.Cleanup(func() { c.Close() })
		return client, c.(*trackedConn)
	case <-time.After(5 * time.Second):
		f.t.Fatalf("connection from %s not accepted", src)
		return nil, nil
	}
}

// connect connects from src without waiting for the server.
func (f *limitFixture) connect(src string) net.Conn {
	f.t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", f.l.Addr().String())
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { c.Close() })
	return c
}

// speak sends a byte on client and waits until the server's kernel has
// it, unread.
func speak(t *testing.T, client net.Conn, server *trackedConn) {
	t.Helper()
	if _, err := client.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the byte arrives", func() bool { return pending(server.Conn) })
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

// closedByServer reports whether the server closed c: a read ends in EOF
// (or a reset, when the server closed with our byte unread) instead of
// waiting.
func closedByServer(c net.Conn, wait time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(wait))
	_, err := c.Read(make([]byte, 1))
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

func (f *limitFixture) counts() [3]uint64 {
	r := f.l.Refusals()
	return [3]uint64{r[RefusedOverMax], r[RefusedEvicted], r[RefusedFirstByte]}
}

// A newcomer over the unauthenticated pool takes the place of the oldest
// silent connection; one that has sent a byte (even unread yet) goes
// after every silent one, and an authenticated one never goes.
func TestLimitedEvictsOldestSilentFirst(t *testing.T) {
	f := newLimitFixture(t, ConnLimits{Max: 10, Unauthenticated: 3})
	auth, sAuth := f.dial("127.0.0.1")
	speak(t, auth, sAuth)
	sAuth.trust()
	talker, sTalker := f.dial("127.0.0.1")
	speak(t, talker, sTalker)
	silent1, _ := f.dial("127.0.0.1")
	silent2, _ := f.dial("127.0.0.1")

	f.dial("127.0.0.1") // the pool (3) is full: the oldest silent goes
	if !closedByServer(silent1, 2*time.Second) {
		t.Fatal("the oldest silent connection was not evicted")
	}
	if got := f.counts(); got != [3]uint64{0, 1, 0} {
		t.Fatalf("counts %v, want one eviction", got)
	}
	f.dial("127.0.0.1")
	if !closedByServer(silent2, 2*time.Second) {
		t.Fatal("the next silent connection was not evicted")
	}
	// Now the queue is the talker and two newer silent ones: while one
	// is silent the talker stays; once they have spoken too, the talker
	// is the oldest and goes.
	f.dial("127.0.0.1")
	if closedByServer(talker, 50*time.Millisecond) {
		t.Fatal("the talker was evicted while a silent connection was left")
	}
	c2, s2 := f.dial("127.0.0.1")
	c3, s3 := f.dial("127.0.0.1")
	speak(t, c2, s2)
	speak(t, c3, s3)
	f.dial("127.0.0.1")
	if !closedByServer(talker, 2*time.Second) {
		t.Fatal("the talker was not evicted once every other one had spoken too")
	}
	if closedByServer(auth, 50*time.Millisecond) {
		t.Fatal("an authenticated connection was evicted")
	}
	if got := f.counts(); got != [3]uint64{0, 6, 0} {
		t.Fatalf("counts %v, want six evictions", got)
	}
}

// One source may hold PerAddress unauthenticated connections: past that
// its own oldest goes, and other sources' connections stay.
func TestLimitedPerAddress(t *testing.T) {
	f := newLimitFixture(t, ConnLimits{Max: 10, Unauthenticated: 8, PerAddress: 2})
	other, _ := f.dial("127.0.0.2")
	first, _ := f.dial("127.0.0.1")
	second, _ := f.dial("127.0.0.1")
	f.dial("127.0.0.1")
	if !closedByServer(first, 2*time.Second) {
		t.Fatal("the source's oldest connection was not evicted")
	}
	if closedByServer(second, 50*time.Millisecond) || closedByServer(other, 50*time.Millisecond) {
		t.Fatal("a connection within its source's bound was evicted")
	}
	if got := f.counts(); got != [3]uint64{0, 1, 0} {
		t.Fatalf("counts %v, want one eviction", got)
	}
	if n := len(f.l.bySrc); n != 2 {
		t.Fatalf("%d sources tracked, want 2", n)
	}
}

// Max counts every connection. A newcomer past it takes an
// unauthenticated connection's place, even within the pool; with every
// slot authenticated it is refused.
func TestLimitedOverMax(t *testing.T) {
	f := newLimitFixture(t, ConnLimits{Max: 3, Unauthenticated: 3})
	var trusted []*trackedConn
	for range 2 {
		c, s := f.dial("127.0.0.1")
		speak(t, c, s)
		s.trust()
		trusted = append(trusted, s)
	}
	unauth, _ := f.dial("127.0.0.1")
	c, s := f.dial("127.0.0.1")
	if !closedByServer(unauth, 2*time.Second) {
		t.Fatal("a newcomer past Max did not take the unauthenticated connection's place")
	}
	speak(t, c, s)
	s.trust()
	if !closedByServer(f.connect("127.0.0.1"), 2*time.Second) {
		t.Fatal("a newcomer with every slot authenticated was not refused")
	}
	if got := f.counts(); got != [3]uint64{1, 1, 0} {
		t.Fatalf("counts %v, want one refusal and one eviction", got)
	}
	// A slot freed (net/http closes its end) is a slot again.
	trusted[0].Close()
	trusted[0].Close() // a second Close frees nothing more
	f.l.mu.Lock()
	open := f.l.open
	f.l.mu.Unlock()
	if open != 2 {
		t.Fatalf("%d connections open after one closed twice, want 2", open)
	}
	f.dial("127.0.0.1")
}

// A connection that sends nothing within FirstByte is closed and
// counted; one that sent a byte stays, whether the server has read it
// yet or not.
func TestLimitedFirstByte(t *testing.T) {
	f := newLimitFixture(t, ConnLimits{Max: 10, Unauthenticated: 5, FirstByte: 100 * time.Millisecond})
	silent, _ := f.dial("127.0.0.1")
	unread, sUnread := f.dial("127.0.0.1")
	speak(t, unread, sUnread)
	read, sRead := f.dial("127.0.0.1")
	read.Write([]byte("x"))
	if _, err := io.ReadFull(sRead, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if !closedByServer(silent, 2*time.Second) {
		t.Fatal("a silent connection outlived the first-byte deadline")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("the silent connection was closed after %v", d)
	}
	time.Sleep(200 * time.Millisecond) // past the deadline of the others
	if closedByServer(unread, 10*time.Millisecond) || closedByServer(read, 10*time.Millisecond) {
		t.Fatal("a connection that spoke in time was closed")
	}
	if got := f.counts(); got != [3]uint64{0, 0, 1} {
		t.Fatalf("counts %v, want one first-byte timeout", got)
	}
	// The server's read on a shed connection says so (and stays a read
	// *net.OpError, which net/http drops quietly).
	_, s := f.dial("127.0.0.1")
	_, err := s.Read(make([]byte, 1))
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" || !strings.Contains(err.Error(), shedMark) || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read on a shed connection: %v", err)
	}
}

// A connection younger than MinAge is not evicted: the newcomer waits
// (in the kernel's queue) until the victim is that old, and one that
// speaks meanwhile is spared.
func TestLimitedMinAge(t *testing.T) {
	const minAge = 300 * time.Millisecond
	f := newLimitFixture(t, ConnLimits{Max: 10, Unauthenticated: 2, MinAge: minAge})
	a, sa := f.dial("127.0.0.1")
	b, _ := f.dial("127.0.0.1")
	f.connect("127.0.0.1")
	time.Sleep(minAge / 3)
	select {
	case <-f.accepted:
		t.Fatalf("a newcomer was admitted by evicting a connection %v old", time.Since(sa.admitted))
	default:
	}
	speak(t, a, sa)
	select {
	case c := <-f.accepted:
		c.Close()
		if age := time.Since(sa.admitted); age < minAge {
			t.Fatalf("the newcomer was admitted after %v, before MinAge", age)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the newcomer was never admitted")
	}
	if !closedByServer(b, 2*time.Second) || closedByServer(a, 50*time.Millisecond) {
		t.Fatal("the connection that spoke while the newcomer waited was evicted, or the silent one was not")
	}
	if got := f.counts(); got != [3]uint64{0, 1, 0} {
		t.Fatalf("counts %v, want one eviction", got)
	}
}

// A newcomer waiting for room when the listener closes is closed, not
// handed to the server after its shutdown began.
func TestLimitedCloseWhileWaiting(t *testing.T) {
	f := newLimitFixture(t, ConnLimits{Max: 10, Unauthenticated: 1, MinAge: 300 * time.Millisecond})
	f.dial("127.0.0.1")
	waiting := f.connect("127.0.0.1")
	time.Sleep(50 * time.Millisecond)
	f.l.Close()
	if !closedByServer(waiting, 2*time.Second) {
		t.Fatal("the waiting newcomer was not closed")
	}
	select {
	case c := <-f.accepted:
		t.Fatalf("a newcomer was accepted after the listener closed: %v", c.RemoteAddr())
	default:
	}
}

// Without Unauthenticated the listener is a plain cap: connections are
// not told apart, none is evicted, a newcomer past Max is refused.
func TestLimitedPlainCap(t *testing.T) {
	f := newLimitFixture(t, ConnLimits{Max: 2})
	a, _ := f.dial("127.0.0.1")
	b, _ := f.dial("127.0.0.1")
	if !closedByServer(f.connect("127.0.0.1"), 2*time.Second) {
		t.Fatal("a newcomer past Max was not refused")
	}
	if closedByServer(a, 20*time.Millisecond) || closedByServer(b, 20*time.Millisecond) {
		t.Fatal("a plain cap evicted a connection")
	}
	if got := f.counts(); got != [3]uint64{1, 0, 0} {
		t.Fatalf("counts %v", got)
	}
}

func TestSource(t *testing.T) {
	for _, tc := range []struct {
		name, addr, want string
	}{
		{"IPv4", "127.0.0.1:80", "127.0.0.1/32"},
		{"IPv4 in IPv6", "[::ffff:10.1.2.3]:80", "10.1.2.3/32"},
		{"IPv6 by /64", "[2001:db8:1:2:3:4:5:6]:80", "2001:db8:1:2::/64"},
		{"loopback IPv6", "[::1]:80", "::/64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := net.TCPAddrFromAddrPort(netip.MustParseAddrPort(tc.addr))
			if got := source(a).String(); got != tc.want {
				t.Fatalf("source(%s) = %s, want %s", tc.addr, got, tc.want)
			}
		})
	}
}

// Through NewServer, plain and over TLS: a request whose handler calls
// MarkAuthenticated (the guard does) makes its kept-alive connection
// survive a flood of silent connections from its own address, a fresh
// client is served during the flood, and the shed TLS handshakes leave the error log
// empty.
func TestLimitedServerKeepsAuthenticated(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "http", true: "https"}[useTLS], func(t *testing.T) {
			var logs syncBuffer
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Authorization") == "Bearer ok" {
					MarkAuthenticated(r.Context())
				}
				io.WriteString(w, "ok")
			})
			srv := httptest.NewUnstartedServer(h)
			srv.Config = NewServer(h, nil, slog.New(slog.NewTextHandler(&logs, nil)))
			l := NewLimited(srv.Listener, ConnLimits{Max: 16, Unauthenticated: 4, PerAddress: 4, FirstByte: FirstByteTimeout})
			srv.Listener = l
			if useTLS {
				srv.StartTLS()
			} else {
				srv.Start()
			}
			defer srv.Close()
			newClient := func() *http.Client {
				c := srv.Client()
				tr := c.Transport.(*http.Transport).Clone()
				t.Cleanup(tr.CloseIdleConnections)
				c.Transport = tr
				return c
			}
			get := func(c *http.Client, token string) (reused bool) {
				t.Helper()
				req, _ := http.NewRequest("GET", srv.URL, nil)
				if token != "" {
					req.Header.Set("Authorization", "Bearer "+token)
				}
				req = req.WithContext(httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
					GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
				}))
				resp, err := c.Do(req)
				if err != nil {
					t.Fatalf("GET during the flood: %v", err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return reused
			}
			operator, anon := newClient(), newClient()
			get(operator, "ok")
			get(anon, "")

			var flood []net.Conn
			defer func() {
				for _, c := range flood {
					c.Close()
				}
			}()
			addr := strings.TrimPrefix(strings.TrimPrefix(srv.URL, "https://"), "http://")
			for i := range 40 {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				flood = append(flood, c)
				if i%10 == 9 {
					// A fresh client of the operator's address, amid the
					// flood, is served.
					get(newClient(), "ok")
				}
			}
			waitUntil(t, "the flood is evicted", func() bool { return l.Refusals()[RefusedEvicted] >= 30 })
			if !get(operator, "ok") {
				t.Fatal("the operator's authenticated keep-alive connection did not survive the flood")
			}
			// The silent go first: a client that has sent a request,
			// even without a token, outlives a silent flood.
			if !get(anon, "") {
				t.Fatal("a silent flood evicted a connection that had sent a request")
			}
			if got := l.Refusals(); got[RefusedOverMax] != 0 || got[RefusedFirstByte] != 0 {
				t.Fatalf("counts %v", got)
			}
			if s := logs.String(); strings.Contains(s, shedMark) || strings.Contains(s, "handshake") {
				t.Fatalf("the shed connections were logged:\n%s", s)
			}
		})
	}
}

// The error log drops only the lines about shed connections.
func TestDropShed(t *testing.T) {
	var buf bytes.Buffer
	w := dropShed{&buf}
	fmt.Fprintf(w, "http: TLS handshake error from 1.2.3.4:5: read tcp: %v\n", errShed)
	fmt.Fprintf(w, "http: TLS handshake error from 1.2.3.4:5: EOF\n")
	if got := buf.String(); got != "http: TLS handshake error from 1.2.3.4:5: EOF\n" {
		t.Fatalf("log: %q", got)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
