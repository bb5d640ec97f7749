package auth

import (
	"context"
	"crypto/sha256"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/httpx"
)

// GuardConfig configures Guard.
type GuardConfig struct {
	Tokens Tokens
	// Insecure serves every request as the operator, without credentials
	// (--insecure-no-auth). The cross-site checks still apply.
	Insecure bool
	// AllowedHosts are the names, besides IP literals, "localhost" and the
	// host's own name, that a request's Host header may carry. A name not
	// listed is refused, which is what stops DNS rebinding.
	AllowedHosts []string
	// Open lists paths served to anyone (/healthz).
	Open []string
	// QueryToken lists paths whose GET may carry the token as an
	// access_token query parameter, for browsers' EventSource, which
	// cannot set headers.
	QueryToken []string
}

// Refusal reasons, as counted by Guard.
const (
	RefusedUnauthorized = "unauthorized"
	RefusedRole         = "role"
	RefusedHost         = "host"
	RefusedOrigin       = "origin"
	RefusedContentType  = "content_type"
)

// Guard is the request check in front of a daemon's API: Handler wraps
// the API, Allow wraps each route with what it requires.
type Guard struct {
	cfg   GuardConfig
	idx   map[digest]Principal
	hosts map[string]bool

	refused map[string]*atomic.Uint64
}

// NewGuard builds a guard. It fails when no operator token is given and
// Insecure is not set, or when tokens are malformed or shared between
// roles.
func NewGuard(cfg GuardConfig) (*Guard, error) {
	if cfg.Tokens.Operator == "" && !cfg.Insecure {
		return nil, fmt.Errorf("%w: a daemon needs an operator token (or --insecure-no-auth)", ErrNoToken)
	}
	idx, err := cfg.Tokens.index()
	if err != nil {
		return nil, err
	}
	g := &Guard{cfg: cfg, idx: idx, hosts: map[string]bool{"localhost": true}, refused: map[string]*atomic.Uint64{}}
	if h, err := os.Hostname(); err == nil && h != "" {
		g.hosts[strings.ToLower(h)] = true
		if short, _, ok := strings.Cut(h, "."); ok {
			g.hosts[strings.ToLower(short)] = true
		}
	}
	for _, h := range cfg.AllowedHosts {
		if h = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(h), ".")); h != "" {
			g.hosts[h] = true
		}
	}
	for _, r := range []string{RefusedUnauthorized, RefusedRole, RefusedHost, RefusedOrigin, RefusedContentType} {
		g.refused[r] = new(atomic.Uint64)
	}
	return g, nil
}

// Refused returns how many requests were refused, by reason.
func (g *Guard) Refused() map[string]uint64 {
	out := make(map[string]uint64, len(g.refused))
	for k, v := range g.refused {
		out[k] = v.Load()
	}
	return out
}

// refuse answers a refused request with err (of an api class, which
// picks the status) and counts it under reason.
func (g *Guard) refuse(w http.ResponseWriter, reason string, err error) {
	g.refused[reason].Add(1)
	if api.HTTPStatus(err) == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="rbee"`)
	}
	httpx.Error(w, err)
}

type principalKey struct{}

// PrincipalOf returns who sent the request, as Guard identified it.
func PrincipalOf(ctx context.Context) Principal {
	p, _ := ctx.Value(principalKey{}).(Principal)
	return p
}

// WithPrincipal returns ctx carrying p, for handlers tested without Guard.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// Handler checks every request before next sees it: the Host names this
// daemon, an Origin is the daemon's own, a body is JSON, and the request
// carries a known token (except on the Open paths).
func (g *Guard) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { g.serve(next, w, r) })
}

func (g *Guard) serve(next http.Handler, w http.ResponseWriter, r *http.Request) {
	if !g.hostAllowed(r.Host) {
		g.refuse(w, RefusedHost, api.Errorf(api.ErrForbidden, "Host %q does not name this daemon (start it with --allowed-host %s to allow that name)", r.Host, hostOnly(r.Host)))
		return
	}
	if o := r.Header.Get("Origin"); o != "" && !sameOrigin(o, r.Host) {
		g.refuse(w, RefusedOrigin, api.Errorf(api.ErrForbidden, "cross-site request refused: Origin %q is not this daemon's", o))
		return
	}
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
			g.refuse(w, RefusedContentType, api.Errorf(api.ErrUnsupported, "Content-Type %q: requests with a body must be application/json", r.Header.Get("Content-Type")))
			return
		}
	}
	if slices.Contains(g.cfg.Open, r.URL.Path) {
		next.ServeHTTP(w, r)
		return
	}
	p := Principal{Role: RoleOperator}
	if !g.cfg.Insecure {
		var ok bool
		var why string
		if p, why, ok = g.identify(r); !ok {
			g.refuse(w, RefusedUnauthorized, api.Errorf(api.ErrUnauthorized, "%s", why))
			return
		}
	}
	// The connection has shown a credential (any role; without auth, it
	// passed the checks): the listener no longer evicts it to make room
	// for newcomers, as it does unauthenticated ones under a flood.
	httpx.MarkAuthenticated(r.Context())
	next.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
}

// identify finds who sent r; when it cannot, why says what was wrong.
func (g *Guard) identify(r *http.Request) (p Principal, why string, ok bool) {
	h := r.Header.Get("Authorization")
	tok, ok := "", false
	if scheme, rest, found := strings.Cut(h, " "); found && strings.EqualFold(scheme, "Bearer") {
		tok, ok = strings.TrimSpace(rest), true
	}
	inURL := false
	if !ok && h == "" && (r.Method == http.MethodGet || r.Method == http.MethodHead) && slices.Contains(g.cfg.QueryToken, r.URL.Path) {
		tok, ok, inURL = r.URL.Query().Get("access_token"), true, true
	}
	if !ok || tok == "" {
		return Principal{}, "missing or wrong token", false
	}
	p, found := g.idx[sha256.Sum256([]byte(tok))]
	// A URL ends up in history, proxies' and servers' logs: only a
	// read-only token may travel in one.
	if found && inURL && p.Role != RoleReader {
		return Principal{}, "the " + p.Role.String() + " token may not travel in a URL (access_token): use the read-only token", false
	}
	if !found {
		return Principal{}, "missing or wrong token", false
	}
	return p, "", true
}

// hostAllowed accepts an IP literal (a browser cannot be rebound to one),
// localhost, the host's own name and the configured names.
func (g *Guard) hostAllowed(hostport string) bool {
	if hostport == "" {
		return true // HTTP/1.0 without Host: no browser sends that
	}
	h := hostOnly(hostport)
	if net.ParseIP(h) != nil {
		return true
	}
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	return g.hosts[h] || strings.HasSuffix(h, ".localhost")
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.Trim(hostport, "[]")
}

// sameOrigin reports whether an Origin header names the host the request
// was sent to: a page of the daemon's own (the dashboard) may call it.
func sameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	return strings.EqualFold(withPort(u.Host, u.Scheme), withPort(host, u.Scheme))
}

func withPort(hostport, scheme string) string {
	if _, _, err := net.SplitHostPort(hostport); err == nil {
		return hostport
	}
	if scheme == "https" {
		return net.JoinHostPort(strings.Trim(hostport, "[]"), "443")
	}
	return net.JoinHostPort(strings.Trim(hostport, "[]"), "80")
}

// Need is what a route requires of a request's principal.
type Need int

// Route requirements.
const (
	// NeedRead: a reader or the operator (GET routes, the stream).
	NeedRead Need = iota
	// NeedOperator: the operator only (anything that changes state).
	NeedOperator
	// NeedHeartbeat: the operator, or a hive token (the handler then
	// checks that the heartbeat is for that hive).
	NeedHeartbeat
)

// Allow wraps h so it only runs for a principal that meets need, as
// Handler identified it.
func (g *Guard) Allow(need Need, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := PrincipalOf(r.Context())
		ok := p.Role == RoleOperator ||
			need == NeedRead && p.Role == RoleReader ||
			need == NeedHeartbeat && p.Role == RoleHive
		if !ok {
			g.refuse(w, RefusedRole, api.Errorf(api.ErrForbidden, "the %s token may not %s %s", p.Role, r.Method, r.URL.Path))
			return
		}
		h.ServeHTTP(w, r)
	})
}
