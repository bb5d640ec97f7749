// Package auth is the shared-token check of both daemons: loopback binds
// need none, any other bind needs a token or an explicit opt-out.
package auth

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
)

// EnvToken is the environment variable holding the token itself.
const EnvToken = "RBEE_TOKEN"

// maxTokenLen bounds a token file's contents.
const maxTokenLen = 4096

// LoadToken returns the token from file (trimmed), or from RBEE_TOKEN when
// file is empty; "" means no token.
func LoadToken(file string) (string, error) {
	if file == "" {
		return strings.TrimSpace(os.Getenv(EnvToken)), nil
	}
	st, err := os.Stat(file)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	if st.Size() > maxTokenLen {
		return "", fmt.Errorf("token file %s: larger than %d bytes", file, maxTokenLen)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty", file)
	}
	return tok, nil
}

// IsLoopback reports whether a listen address binds only to loopback.
func IsLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ErrNeedsToken is returned by CheckBind for an unprotected public bind.
var ErrNeedsToken = errors.New("listening beyond loopback needs a token")

// CheckBind refuses a non-loopback listen address without a token, unless
// insecure is set.
func CheckBind(listen, token string, insecure bool) error {
	if IsLoopback(listen) || token != "" || insecure {
		return nil
	}
	return fmt.Errorf("%w (--listen %s): set --token-file or %s, or pass --insecure-no-auth", ErrNeedsToken, listen, EnvToken)
}

// Require wraps next so every request must carry the token, as
// "Authorization: Bearer <token>" or, for browsers' EventSource which
// cannot set headers, an access_token query parameter. Paths in open (such
// as /healthz) stay open. An empty token disables the check.
func Require(token string, open []string, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	want := []byte(token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, p := range open {
			if r.URL.Path == p {
				next.ServeHTTP(w, r)
				return
			}
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			got = r.URL.Query().Get("access_token")
		}
		if subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="rbee"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintln(w, `{"error":"missing or wrong token"}`)
			return
		}
		next.ServeHTTP(w, r)
	})
}
