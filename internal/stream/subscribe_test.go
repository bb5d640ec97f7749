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

func TestReplayBoundedByCountAndBytes(t *testing.T) {
	size := 0
	r := &replayer{maxCount: 5, maxBytes: 1000, size: &size}
	put := func(id string, n int) {
		size = n
		if _, err := r.Put(&sse.Message{ID: sse.ID(id)}, []string{""}); err != nil {
			t.Fatal(err)
		}
	}
	ids := func() string {
		var s string
		for _, e := range r.ring {
			s += e.msg.ID.String()
		}
		return s
	}
	for i, id := range []string{"1", "2", "3", "4", "5", "6"} {
		put(id, 10*(i+1))
	}
	if got := ids(); got != "23456" {
		t.Fatalf("after 6 small events with room for 5: %s", got)
	}
	put("7", 900) // 30+40+50+60+900 > 1000: the oldest go until it fits
	if got := ids(); got != "67" || r.bytes != 960 {
		t.Fatalf("after a large event: %s (%d bytes)", got, r.bytes)
	}
	put("8", 5000) // larger than the whole budget: kept alone
	if got := ids(); got != "8" {
		t.Fatalf("after an event over budget: %s", got)
	}
}
