package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-rod/rod"
	"github.com/go-rod/rod/lib/launcher"
	"github.com/go-rod/rod/lib/proto"
)

// Browser is a headless Chromium (Debian's chromium package) driven over
// the DevTools protocol (go-rod), for tests of the dashboard as a user
// sees it. It collects every uncaught exception and console error of its
// pages.
type Browser struct {
	*rod.Browser
	t TB

	mu     sync.Mutex
	errors []string
	// headers are the response headers of its pages' requests, by URL
	// (the newest response of each).
	headers map[string]map[string]string
}

// ChromiumPath returns the Chromium binary: $RBEE_CHROMIUM, else chromium
// or chromium-browser or google-chrome on PATH.
func ChromiumPath() (string, error) {
	if p := os.Getenv("RBEE_CHROMIUM"); p != "" {
		return p, nil
	}
	for _, n := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no chromium on PATH (apt-get install chromium, or set RBEE_CHROMIUM)")
}

// NewBrowser starts a headless Chromium; it is closed when the test
// ends. Without Chromium the test cannot run (see Cannot).
func NewBrowser(t TB) *Browser {
	t.Helper()
	path, err := ChromiumPath()
	if err != nil {
		Cannot(t, "the dashboard test drives a real browser: %v", err)
	}
	l := launcher.New().Bin(path).Headless(true).Leakless(false).
		NoSandbox(true). // tests run as root, where Chromium's sandbox refuses to start
		Set("disable-gpu").Set("disable-dev-shm-usage").UserDataDir(t.TempDir())
	u, err := l.Launch()
	if err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	rb := rod.New().ControlURL(u)
	if err := rb.Connect(); err != nil {
		l.Kill()
		t.Fatalf("connect to %s: %v", path, err)
	}
	b := &Browser{Browser: rb, t: t}
	t.Cleanup(func() {
		_ = rb.Close()
		l.Kill()
		l.Cleanup()
	})
	return b
}

// Open opens url in a new page of width×height CSS pixels and watches
// it for JavaScript errors.
func (b *Browser) Open(url string, width, height int) *rod.Page {
	b.t.Helper()
	p, err := b.Page(proto.TargetCreateTarget{})
	if err != nil {
		b.t.Fatalf("new page: %v", err)
	}
	b.Resize(p, width, height)
	go p.EachEvent(func(e *proto.RuntimeExceptionThrown) {
		msg := e.ExceptionDetails.Text
		if e.ExceptionDetails.Exception != nil {
			msg += " " + e.ExceptionDetails.Exception.Description
		}
		b.addError("exception: " + msg)
	}, func(e *proto.NetworkResponseReceived) {
		h := map[string]string{}
		for k, v := range e.Response.Headers {
			h[strings.ToLower(k)] = v.Str()
		}
		b.mu.Lock()
		if b.headers == nil {
			b.headers = map[string]map[string]string{}
		}
		b.headers[e.Response.URL] = h
		b.mu.Unlock()
	}, func(e *proto.RuntimeConsoleAPICalled) {
		if e.Type == proto.RuntimeConsoleAPICalledTypeError || e.Type == proto.RuntimeConsoleAPICalledTypeAssert {
			var parts []string
			for _, a := range e.Args {
				parts = append(parts, a.Value.String()+a.Description)
			}
			b.addError("console." + string(e.Type) + ": " + strings.Join(parts, " "))
		}
	})()
	if err := (proto.RuntimeEnable{}).Call(p); err != nil {
		b.t.Fatalf("runtime enable: %v", err)
	}
	if err := (proto.NetworkEnable{}).Call(p); err != nil {
		b.t.Fatalf("network enable: %v", err)
	}
	if err := p.Timeout(30 * time.Second).Navigate(url); err != nil {
		b.t.Fatalf("open %s: %v", url, err)
	}
	if err := p.Timeout(30 * time.Second).WaitLoad(); err != nil {
		b.t.Fatalf("load %s: %v", url, err)
	}
	return p
}

// Resize sets the page's viewport to width×height CSS pixels; a width
// under 800 is emulated as a phone (touch, mobile layout).
func (b *Browser) Resize(p *rod.Page, width, height int) {
	b.t.Helper()
	err := p.SetViewport(&proto.EmulationSetDeviceMetricsOverride{Width: width, Height: height, DeviceScaleFactor: 1, Mobile: width < 800})
	if err != nil {
		b.t.Fatalf("viewport %dx%d: %v", width, height, err)
	}
}

// ResponseHeader returns header (any case) of the response its pages got
// from a URL containing part (the newest response of that URL; make part
// name one URL), and whether there was one: what
// the browser was sent (Content-Encoding, say), as its network panel
// shows it.
func (b *Browser) ResponseHeader(part, header string) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for u, h := range b.headers {
		if strings.Contains(u, part) {
			return h[strings.ToLower(header)], true
		}
	}
	return "", false
}

func (b *Browser) addError(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.errors = append(b.errors, s)
}

// Errors returns the uncaught exceptions and console errors seen so far.
func (b *Browser) Errors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...)
}

// Eval evaluates a JavaScript function expression ("() => …") in the page
// and decodes its JSON result into v (a pointer; nil ignores it), failing
// the test on error. A returned promise is awaited.
func (b *Browser) Eval(p *rod.Page, js string, v any, args ...any) {
	b.t.Helper()
	r, err := p.Timeout(30*time.Second).Eval(js, args...)
	if err != nil {
		b.t.Fatalf("eval %s: %v", js, err)
	}
	if v != nil {
		if err := r.Value.Unmarshal(v); err != nil {
			b.t.Fatalf("eval %s: decode %s: %v", js, r.Value.String(), err)
		}
	}
}

// ArtifactDir is where tests leave screenshots and other files for people
// to look at: $RBEE_ARTIFACTS, else artifacts/ at the module root.
func ArtifactDir(t TB, sub string) string {
	t.Helper()
	dir, err := artifactDir(sub)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func artifactDir(sub string) (string, error) {
	dir := os.Getenv("RBEE_ARTIFACTS")
	if dir == "" {
		root, err := moduleRoot()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(root, "artifacts")
	}
	dir = filepath.Join(dir, sub)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("artifact directory: %w", err)
	}
	return dir, nil
}

// Screenshot saves a PNG of p (the whole page when full, else the
// viewport) as dir/name.png and returns its path.
func (b *Browser) Screenshot(p *rod.Page, full bool, dir, name string) string {
	b.t.Helper()
	png, err := p.Timeout(30*time.Second).Screenshot(full, &proto.PageCaptureScreenshot{Format: proto.PageCaptureScreenshotFormatPng})
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot %s (%d KB)", path, len(png)/1024)
	return path
}

// ModuleRoot returns the directory of rbee's go.mod, found upwards from
// the working directory.
func ModuleRoot(t TB) string {
	t.Helper()
	d, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.Contains(string(b), "module "+module+"\n") {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod of %s above %s", module, dir)
		}
	}
}
