package loadgen

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Driver posts encoded heartbeats to a queen as a fleet sends them.
type Driver struct {
	URL, Token string
	// Client posts; nil means one that keeps Concurrency connections.
	Client *http.Client
	// Concurrency bounds the requests in flight; 0 means 64.
	Concurrency int

	refused atomic.Int64
	lastErr atomic.Value // string
	mu      sync.Mutex
	latency []time.Duration
}

// Round posts bodies spread evenly over period (as unsynchronised hives
// send them), and returns when all are answered and the period is over,
// or ctx is done.
func (d *Driver) Round(ctx context.Context, bodies []Body, period time.Duration) {
	if d.Concurrency <= 0 {
		d.Concurrency = 64
	}
	if d.Client == nil {
		d.Client = &http.Client{Timeout: 30 * time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: d.Concurrency, MaxConnsPerHost: d.Concurrency}}
	}
	start := time.Now()
	gap := period / time.Duration(max(len(bodies), 1))
	sem := make(chan struct{}, d.Concurrency)
	var wg sync.WaitGroup
	for i, body := range bodies {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-time.After(time.Until(start.Add(time.Duration(i) * gap))):
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			t := time.Now()
			if _, err := PostBody(ctx, d.Client, d.URL, d.Token, body.Data, body.Gzipped); err != nil {
				d.refused.Add(1)
				d.lastErr.Store(err.Error())
				return
			}
			d.mu.Lock()
			d.latency = append(d.latency, time.Since(t))
			d.mu.Unlock()
		})
	}
	wg.Wait()
	select {
	case <-ctx.Done():
	case <-time.After(time.Until(start.Add(period))):
	}
}

// Refused returns how many posts failed so far, and the last failure.
func (d *Driver) Refused() (int64, string) {
	s, _ := d.lastErr.Load().(string)
	return d.refused.Load(), s
}

// Latency returns the q-quantile of the answered posts' round trips.
func (d *Driver) Latency(q float64) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.latency) == 0 {
		return 0
	}
	s := slices.Clone(d.latency)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}
