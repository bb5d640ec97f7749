package api

import (
	"encoding/json"
	"fmt"
	"time"
)

// Duration is a time.Duration written in JSON as Go writes durations:
// "2s", "10m", "1m30s".
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "2s" and the like.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"2s\": %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// HealthCheck is how the hive learns that a worker can serve: an HTTP GET
// answered 2xx, or a TCP connection accepted, on the worker's own host.
type HealthCheck struct {
	// HTTP is a URL to GET, e.g. http://127.0.0.1:9301/health.
	HTTP string `json:"http,omitempty"`
	// TCP is a host:port to connect to.
	TCP string `json:"tcp,omitempty"`
	// Interval between checks; 0 means 5 s.
	Interval Duration `json:"interval,omitempty"`
	// Timeout of one check; 0 means 2 s (at most the interval).
	Timeout Duration `json:"timeout,omitempty"`
	// StartPeriod is how long a worker may take to become healthy before
	// its failures count (a model loading); 0 means none.
	StartPeriod Duration `json:"start_period,omitempty"`
	// Failures is how many checks in a row must fail to make a ready
	// worker unhealthy, or a starting one past its start period; 0
	// means 3.
	Failures int `json:"failures,omitempty"`
}

// Restart policies.
const (
	RestartNever     = "never"
	RestartOnFailure = "on-failure"
	RestartAlways    = "always"
)

// RestartPolicy says what the hive does when a worker exits by itself.
type RestartPolicy struct {
	// Policy is never (the default), on-failure (a non-zero exit, a
	// signal, an OOM kill) or always.
	Policy string `json:"policy"`
	// MaxRestarts within Window; past it the worker stays exited. 0
	// means 5.
	MaxRestarts int `json:"max_restarts,omitempty"`
	// Window is the span MaxRestarts counts in; 0 means 10 m.
	Window Duration `json:"window,omitempty"`
	// Backoff before the first restart, doubling up to MaxBackoff; 0
	// means 1 s and 1 m.
	Backoff    Duration `json:"backoff,omitempty"`
	MaxBackoff Duration `json:"max_backoff,omitempty"`
}

// WorkerHealth is a worker's health check as the hive last ran it.
type WorkerHealth struct {
	// Target is what is checked: the URL or tcp://host:port.
	Target string `json:"target"`
	// Failures counts checks failed in a row.
	Failures  int        `json:"failures"`
	LastError string     `json:"last_error,omitempty"`
	CheckedAt *time.Time `json:"checked_at,omitempty"`
	// HealthyAt is when it last passed.
	HealthyAt *time.Time `json:"healthy_at,omitempty"`
}

// Pruned is the answer of POST /v1/workers/prune: the exited workers
// whose records were removed.
type Pruned struct {
	Removed []string `json:"removed"`
}
