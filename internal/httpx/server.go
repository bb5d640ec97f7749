package httpx

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
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
//
// Served on a Limited listener, each request's context carries its
// connection, for MarkAuthenticated.
func NewServer(h http.Handler, tc *tls.Config, log *slog.Logger) *http.Server {
	errLog := slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	errLog.SetOutput(dropShed{errLog.Writer()})
	return &http.Server{
		ErrorLog:    errLog,
		ConnContext: withConn,
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

// dropShed passes on the server's error lines but those about a
// connection the listener shed (a TLS handshake cut short): each is
// counted, and a flood would otherwise write one line per connection.
type dropShed struct{ w io.Writer }

func (d dropShed) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte(shedMark)) {
		return len(p), nil
	}
	return d.w.Write(p)
}
