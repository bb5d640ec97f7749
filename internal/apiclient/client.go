// Package apiclient is the client of the daemons' JSON APIs that the
// command-line tools, the hive's heartbeat sender and the demo use: one
// or several daemon URLs tried in order, a token, TLS with a private CA,
// gzip, and errors that say which daemon could not be reached and why.
package apiclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	gzip "github.com/klauspost/compress/gzip"

	"github.com/rbee-dev/rbee/internal/api"
)

// Client calls a daemon's JSON API.
type Client struct {
	// Base is the daemon's URL, e.g. http://127.0.0.1:7835, or several,
	// comma-separated (redundant queens): each request goes to the first
	// that answers.
	Base  string
	Token string
	HTTP  *http.Client
	// NoTokenWhy says why Token is empty, for the message of a 401.
	NoTokenWhy string
}

// Bases returns the daemon URLs of Base, in order.
func (c *Client) Bases() []string {
	var out []string
	for _, b := range strings.Split(c.Base, ",") {
		if b = strings.TrimRight(strings.TrimSpace(b), "/"); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// Do sends in (if not nil) as JSON and decodes the answer into out (if not
// nil). With several bases, one that cannot be reached is skipped for the
// next; an answer, even an error status, ends the search.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = b
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	resp, err := c.send(ctx, hc, method, path, body)
	if err != nil {
		return err
	}
	return c.answer(resp, method, path, out)
}

// Open sends a GET and returns the answer's body to read as it comes
// (plain text, a stream), or the error of a non-2xx answer. The client's
// whole-request timeout does not apply: the caller's context bounds it.
func (c *Client) Open(ctx context.Context, path string) (io.ReadCloser, error) {
	hc := http.Client{}
	if c.HTTP != nil {
		hc = *c.HTTP
	}
	hc.Timeout = 0
	resp, err := c.send(ctx, &hc, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, c.answer(resp, http.MethodGet, path, nil)
	}
	return resp.Body, nil
}

// send makes the request to the first base that answers (body, when not
// nil, as JSON) and returns its answer.
func (c *Client) send(ctx context.Context, hc *http.Client, method, path string, body []byte) (*http.Response, error) {
	bases := c.Bases()
	if len(bases) == 0 {
		return nil, fmt.Errorf("no daemon URL")
	}
	var errs []string
	for _, base := range bases {
		var r io.Reader
		if body != nil {
			r = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, base+path, r)
		if err != nil {
			return nil, err
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if c.Token != "" {
			req.Header.Set("Authorization", "Bearer "+c.Token)
		}
		resp, err := hc.Do(req)
		if err == nil {
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		err = unreachable(base, err)
		if len(bases) == 1 {
			return nil, err
		}
		errs = append(errs, err.Error())
	}
	return nil, fmt.Errorf("none of %d daemons answered: %s", len(bases), strings.Join(errs, "; "))
}

func (c *Client) answer(resp *http.Response, method, path string, out any) error {
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		msg := strings.TrimSpace(string(b))
		var eb api.ErrorBody
		if json.Unmarshal(b, &eb) == nil && eb.Error != "" {
			msg = eb.Error
		}
		if resp.StatusCode == http.StatusUnauthorized && c.NoTokenWhy != "" {
			msg += " (" + c.NoTokenWhy + ")"
		}
		return &api.StatusError{Code: resp.StatusCode, Msg: msg}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

// ClientTLS trusts the CA certificates in caFile (PEM) in addition to
// none: a private CA signs the daemons' certificates.
func ClientTLS(caFile string) (*tls.Config, error) {
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", caFile)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}, nil
}

// Gzip compresses b, for bodies large enough to be worth it.
func Gzip(b []byte) ([]byte, error) {
	zw := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(zw)
	var buf bytes.Buffer
	buf.Grow(len(b) / 3)
	zw.Reset(&buf)
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// gzipWriters are reused: a gzip.Writer holds about a megabyte of state,
// which a hive would otherwise allocate every heartbeat. BestSpeed: a
// heartbeat's numbers compress about as well at level 1 as at the
// default, in a third of the time (BenchmarkHeartbeatPayloadSize).
var gzipWriters = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return zw
}}

// CheckBase says what is wrong with a daemon URL given to a client: it
// must be http:// or https:// with a host.
func CheckBase(base string) error {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("daemon URL %q: want http://host:port or https://host:port", base)
	}
	return nil
}

// unreachable says in a line which daemon could not be reached and why,
// for the common causes.
func unreachable(base string, err error) error {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("cannot reach %s: connection refused (is the daemon running, on this address?)", base)
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("cannot reach %s: no answer in time (%w)", base, err)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("cannot reach %s: %w", base, ue.Err)
	}
	return fmt.Errorf("cannot reach %s: %w", base, err)
}
