package httpx

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Timeouts of a daemon's HTTP server. Streams (SSE, log follow) lift the
// read and write deadlines for themselves.
const (
	ReadHeaderTimeout = 10 * time.Second
	ReadTimeout       = 30 * time.Second
	WriteTimeout      = 60 * time.Second
	IdleTimeout       = 90 * time.Second
	MaxHeaderBytes    = 64 << 10
)

// NewServer returns an http.Server for h with the daemons' timeouts: slow
// headers, slow bodies, idle keep-alive connections and slow readers of an
// answer are all cut. tc, when not nil, is its TLS configuration; the
// server's own errors (a failed TLS handshake) go to log.
func NewServer(h http.Handler, tc *tls.Config, log *slog.Logger) *http.Server {
	return &http.Server{
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(WriteTimeout))
			h.ServeHTTP(w, r)
		}),
		TLSConfig:         tc,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
	}
}

// Serve serves srv on ln, over TLS when srv has a TLS configuration.
func Serve(srv *http.Server, ln net.Listener) error {
	if srv.TLSConfig != nil {
		return srv.ServeTLS(ln, "", "")
	}
	return srv.Serve(ln)
}

// ServerTLS loads a daemon's certificate and key. TLS 1.2 is the oldest
// version served.
func ServerTLS(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS key pair: %w", err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}, nil
}

// LimitListener accepts at most n connections at once; one over the limit
// is closed at once (and counted) instead of queueing without bound.
func LimitListener(ln net.Listener, n int) *Limited {
	return &Limited{Listener: ln, max: int64(n)}
}

// Limited is a listener with a connection cap.
type Limited struct {
	net.Listener
	max     int64
	open    atomic.Int64
	refused atomic.Uint64
}

// Refused returns how many connections were closed for being over the cap.
func (l *Limited) Refused() uint64 { return l.refused.Load() }

// Accept returns the next connection within the cap.
func (l *Limited) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) > l.max {
			l.open.Add(-1)
			l.refused.Add(1)
			c.Close()
			continue
		}
		return &limitedConn{Conn: c, l: l}, nil
	}
}

type limitedConn struct {
	net.Conn
	l    *Limited
	once sync.Once
}

func (c *limitedConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}
