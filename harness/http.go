package harness

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// Token is the operator token of every daemon the harness starts (given
// to them as RBEE_TOKEN) and what its HTTP helpers send. A test that
// needs another credential, or none, builds its own request.
var Token = newToken()

func newToken() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return "harness-" + base64.RawURLEncoding.EncodeToString(b[:])
}

// HTTP is the harness's HTTP client: it sends Token with every request
// that carries no Authorization header of its own.
var HTTP = WithToken(nil, Token)

// WithToken returns a client like c (nil: a default one) that adds
// "Authorization: Bearer token" to requests that have none.
func WithToken(c *http.Client, token string) *http.Client {
	out := &http.Client{}
	if c != nil {
		*out = *c
	}
	base := out.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	out.Transport = bearer{base: base, token: token}
	return out
}

type bearer struct {
	base  http.RoundTripper
	token string
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	if _, ok := r.Header["Authorization"]; ok || b.token == "" {
		return b.base.RoundTrip(r)
	}
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

// CloseIdleConnections lets the transport's idle connections go.
func (b bearer) CloseIdleConnections() {
	if c, ok := b.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// Call sends method url with body (JSON-encoded unless it is []byte) as
// the operator and returns the status code and the raw answer.
func Call(t TB, method, url string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := HTTP.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// Client is an HTTP client with a bearer token, for tests that talk to
// daemons in namespaces or with another credential.
type Client struct {
	HTTP  *http.Client // nil means http.DefaultClient
	Token string       // "" means harness.Token
}

// Get fetches url and decodes its JSON into v; it returns the error.
func (c Client) Get(url string, v any) error {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	tok := c.Token
	if tok == "" {
		tok = Token
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return json.Unmarshal(b, v)
}

// GetAs GETs url with token as the bearer ("" sends none) and returns the
// status, the headers and the body: for tests of who may read what.
func GetAs(t TB, url, token string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}
