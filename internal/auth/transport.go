package auth

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// ErrClearText is returned by CheckTransport for a token about to cross a
// network unencrypted.
var ErrClearText = errors.New("token would be sent in clear text")

// CheckTransport refuses to send a token to rawURL over plain HTTP unless
// the host is loopback (the token never leaves the machine) or
// insecureNoTLS says so (--insecure-no-tls).
func CheckTransport(rawURL string, insecureNoTLS bool) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("URL %q: %w", rawURL, err)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
	default:
		return fmt.Errorf("URL %q: want http:// or https://", rawURL)
	}
	if u.Host == "" {
		return fmt.Errorf("URL %q: no host", rawURL)
	}
	if insecureNoTLS || IsLoopbackHost(u.Hostname()) {
		return nil
	}
	return fmt.Errorf("%w to %s: use https:// (with --ca or --queen-ca for a private CA), or pass --insecure-no-tls", ErrClearText, u.Host)
}

// IsLoopbackHost reports whether host (without port) is a loopback address
// or localhost.
func IsLoopbackHost(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// IsLoopback reports whether a listen address binds only to loopback.
func IsLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	return IsLoopbackHost(host)
}
