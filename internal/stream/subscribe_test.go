package stream

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	sse "github.com/tmaxmax/go-sse"
)

// blockingReplayer holds Joe inside Replay until released, standing in
// for a Joe busy with other work while a client subscribes.
type blockingReplayer struct {
	sse.Replayer
	release chan struct{}
}

func (b blockingReplayer) Replay(sub sse.Subscription) error {
	<-b.release
	return b.Replayer.Replay(sub)
}

// The response headers (the client's sign that it is subscribed) wait
// until Joe has the subscriber, so nothing published after them is lost.
func TestHeadersWaitForSubscription(t *testing.T) {
	b, err := New(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	inner := b.joe.Replayer.(subscribedReplayer)
	b.joe.Replayer = subscribedReplayer{blockingReplayer{inner.Replayer, release}}
	srv := httptest.NewServer(b)
	defer srv.Close()
	defer b.Shutdown(t.Context())

	type result struct {
		resp *http.Response
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get(srv.URL)
		got <- result{resp, err}
	}()
	select {
	case r := <-got:
		if r.err == nil {
			r.resp.Body.Close()
		}
		t.Fatalf("headers arrived before the subscription was registered (%v)", r.err)
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	var r result
	select {
	case r = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("no headers after the subscription was registered")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.resp.Body.Close()
	if err := b.Publish("marker", "", map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	for ev, err := range sse.Read(r.resp.Body, nil) {
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type == "marker" {
			return
		}
	}
}
