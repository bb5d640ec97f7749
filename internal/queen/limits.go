package queen

import (
	"maps"
	"sync"
	"time"
)

// refusals counts refused heartbeats by reason.
type refusals struct {
	mu sync.Mutex
	n  map[string]uint64
}

func (r *refusals) add(reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[string]uint64{}
	}
	r.n[reason]++
}

func (r *refusals) snapshot() map[string]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.n)
}

// logLimiter lets a log line about the same key through at most every
// 10 seconds, so a hostile or broken peer cannot flood the log.
type logLimiter struct {
	mu   sync.Mutex
	last map[string]time.Time
}

func (l *logLimiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil || len(l.last) > 10000 {
		l.last = map[string]time.Time{}
	}
	if now.Sub(l.last[key]) < 10*time.Second {
		return false
	}
	l.last[key] = now
	return true
}
