package monitor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/ids"
)

// maxHealthChecks bounds the health checks in flight at once, over every
// worker: a thousand slow endpoints cannot make the hive open a thousand
// connections.
const maxHealthChecks = 32

// healthSpec is a validated health check.
type healthSpec struct {
	target      string // URL, or host:port for TCP
	http        bool
	interval    time.Duration
	timeout     time.Duration
	startPeriod time.Duration
	failures    int
}

// String is what the worker's record shows as the check's target.
func (h *healthSpec) String() string {
	if h.http {
		return h.target
	}
	return "tcp://" + h.target
}

// parseHealth validates a spawn request's health check. Its target must
// be on the worker's own host: a loopback address, one of the host's own,
// or localhost. The hive is not a way to make requests elsewhere.
func parseHealth(h *api.HealthCheck) (*healthSpec, error) {
	if h == nil {
		return nil, nil
	}
	hs := &healthSpec{interval: time.Duration(h.Interval), timeout: time.Duration(h.Timeout),
		startPeriod: time.Duration(h.StartPeriod), failures: h.Failures}
	var host string
	switch {
	case h.HTTP != "" && h.TCP != "":
		return nil, fmt.Errorf("%w: health: give http or tcp, not both", ErrSpec)
	case h.HTTP != "":
		if len(h.HTTP) > 2048 {
			return nil, fmt.Errorf("%w: health.http: longer than 2048 bytes", ErrSpec)
		}
		u, err := url.Parse(h.HTTP)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			return nil, fmt.Errorf("%w: health.http %s: want http(s)://host:port/path", ErrSpec, ids.Quote(h.HTTP))
		}
		host = u.Hostname()
		if strings.EqualFold(host, "localhost") {
			// Checked as the loopback address, not through a resolver.
			u.Host = net.JoinHostPort("127.0.0.1", u.Port())
			if u.Port() == "" {
				u.Host = "127.0.0.1"
			}
			host = "127.0.0.1"
		}
		hs.target, hs.http = u.String(), true
	case h.TCP != "":
		hst, port, err := net.SplitHostPort(h.TCP)
		if err != nil || port == "" {
			return nil, fmt.Errorf("%w: health.tcp %s: want host:port", ErrSpec, ids.Quote(h.TCP))
		}
		if strings.EqualFold(hst, "localhost") {
			hst = "127.0.0.1"
		}
		host, hs.target = hst, net.JoinHostPort(hst, port)
	default:
		return nil, fmt.Errorf("%w: health: give http (a URL) or tcp (host:port)", ErrSpec)
	}
	if err := onThisHost(host); err != nil {
		return nil, fmt.Errorf("%w: health: %v", ErrSpec, err)
	}
	if hs.interval == 0 {
		hs.interval = 5 * time.Second
	}
	if hs.timeout == 0 {
		hs.timeout = min(2*time.Second, hs.interval)
	}
	if hs.failures == 0 {
		hs.failures = 3
	}
	switch {
	case hs.interval < 100*time.Millisecond || hs.interval > time.Hour:
		return nil, fmt.Errorf("%w: health.interval %v: want 100ms to 1h", ErrSpec, hs.interval)
	case hs.timeout <= 0 || hs.timeout > hs.interval:
		return nil, fmt.Errorf("%w: health.timeout %v: want above 0 and at most the interval (%v)", ErrSpec, hs.timeout, hs.interval)
	case hs.startPeriod < 0 || hs.startPeriod > 24*time.Hour:
		return nil, fmt.Errorf("%w: health.start_period %v: want 0 to 24h", ErrSpec, hs.startPeriod)
	case hs.failures < 1 || hs.failures > 100:
		return nil, fmt.Errorf("%w: health.failures %d: want 1 to 100", ErrSpec, hs.failures)
	}
	return hs, nil
}

// onThisHost accepts an IP address of this host (loopback included); a
// name is refused, as it could resolve anywhere.
func onThisHost(host string) error {
	ip := net.ParseIP(strings.Trim(host, "[]"))
	if ip == nil {
		return fmt.Errorf("%s is a name: give an IP address of this host, or localhost", ids.Quote(host))
	}
	if localIP(ip) {
		return nil
	}
	return fmt.Errorf("%s is not an address of this host: a health check stays on the worker's own host", ip)
}

func localIP(ip net.IP) bool {
	if ip.IsLoopback() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// dialer connects only to this host's addresses: a redirect or a name
// cannot lead a check elsewhere.
var dialer = &net.Dialer{Control: func(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !localIP(ip) {
		return fmt.Errorf("health check to %s refused: not this host", host)
	}
	return nil
}}

// healthClient makes checks: no proxy, no redirects followed (a 3xx is
// a failure), no connection kept between checks.
var healthClient = &http.Client{
	Transport: &http.Transport{Proxy: nil, DialContext: dialer.DialContext, DisableKeepAlives: true,
		ResponseHeaderTimeout: time.Hour /* the request's context bounds it */},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// check runs the health check once.
func (h *healthSpec) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	if !h.http {
		c, err := dialer.DialContext(ctx, "tcp", h.target)
		if err != nil {
			return shortErr(err, h.timeout)
		}
		return c.Close()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.target, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "rbee-hive health check")
	resp, err := healthClient.Do(req)
	if err != nil {
		return shortErr(err, h.timeout)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("HTTP %s", resp.Status)
	}
	return nil
}

func shortErr(err error, timeout time.Duration) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("no answer within %v", timeout)
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}

// workerHealth is a worker's health state. Guarded by Monitor.mu.
type workerHealth struct {
	spec      *healthSpec
	state     api.State // starting, ready or unhealthy
	failures  int
	lastErr   string
	checkedAt time.Time
	healthyAt time.Time
}

func (h *workerHealth) record() *api.WorkerHealth {
	r := &api.WorkerHealth{Target: h.spec.String(), Failures: h.failures, LastError: h.lastErr}
	if !h.checkedAt.IsZero() {
		r.CheckedAt = api.Ptr(h.checkedAt)
	}
	if !h.healthyAt.IsZero() {
		r.HealthyAt = api.Ptr(h.healthyAt)
	}
	return r
}

// note applies one check's result; it reports whether the state changed.
func (h *workerHealth) note(err error, now, started time.Time) bool {
	h.checkedAt = now
	before := h.state
	if err == nil {
		h.failures, h.lastErr, h.healthyAt = 0, "", now
		h.state = api.StateReady
		return before != h.state
	}
	h.failures++
	h.lastErr = ids.Clean(err.Error(), 512)
	// A ready worker failing enough checks in a row is unhealthy; so is
	// one never healthy by the end of its start period. Before that, a
	// starting worker's failures are only shown.
	if h.failures >= h.spec.failures && (h.state == api.StateReady || h.state == api.StateStarting && now.Sub(started) >= h.spec.startPeriod && h.spec.startPeriod > 0) {
		h.state = api.StateUnhealthy
	}
	return before != h.state
}

// watchHealth runs a worker's health check every interval until it
// exits or the monitor closes, never more than maxHealthChecks at once
// over all workers, and outside the collection pass.
func (m *Monitor) watchHealth(w *worker) {
	defer m.wg.Done()
	spec := w.health.spec
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-w.done:
		case <-m.closed:
		}
		cancel()
	}()
	started := m.now()
	wait := time.Duration(0) // the first check at once
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = spec.interval
		select {
		case m.healthSem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		err := spec.check(ctx)
		<-m.healthSem
		if ctx.Err() != nil {
			return
		}
		m.mu.Lock()
		changed := w.health.note(err, m.now(), started)
		state := w.health.state
		m.mu.Unlock()
		if changed {
			m.log.Info("worker health", "worker", w.id, "state", state, "err", err)
			m.changed()
		}
	}
}

// ProbeHealth validates h and runs it once, as the hive would.
func ProbeHealth(ctx context.Context, h *api.HealthCheck) error {
	hs, err := parseHealth(h)
	if err != nil {
		return err
	}
	if hs == nil {
		return fmt.Errorf("%w: no health check", ErrSpec)
	}
	return hs.check(ctx)
}
