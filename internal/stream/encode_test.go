package stream

import (
	"testing"
)

// Every client's queue holds the same encoded event: publishing encodes
// once, however many clients there are.
func TestEncodedOnce(t *testing.T) {
	b, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	var cs []*client
	for range 100 {
		c := &client{b: b, wake: make(chan struct{}, 1), cancel: func() {}}
		cs = append(cs, c)
		b.clients[c] = struct{}{}
	}
	if err := b.Publish(Event{Type: "worker_added", Key: "h", Data: map[string]int{"n": 1}}); err != nil {
		t.Fatal(err)
	}
	first := cs[0].queue[0]
	for _, c := range cs {
		if len(c.queue) != 1 || c.queue[0].ev != first.ev || c.queue[0].frame != first.frame {
			t.Fatal("a client got its own copy of the event")
		}
	}
	if want := "id: " + b.Epoch() + "-1\nevent: worker_added\ndata: {\"n\":1}\n\n"; string(first.frame.raw) != want {
		t.Fatalf("frame %q, want %q", first.frame.raw, want)
	}
}
