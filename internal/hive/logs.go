package hive

import (
	"net/http"
	"strconv"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/httpx"
	"github.com/rbee-dev/rbee/internal/ids"
	"github.com/rbee-dev/rbee/internal/monitor"
)

// logs serves GET /v1/workers/{id}/logs?tail=N&follow=true&previous=true
// as plain text; following, it streams until the worker exits or the
// client goes.
func (s *Server) logs(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var req monitor.LogRequest
	for k, v := range q {
		if len(v) != 1 {
			return api.Errorf(api.ErrInvalid, "parameter %s given %d times", ids.Quote(k), len(v))
		}
		var err error
		switch k {
		case "tail":
			req.Tail, err = strconv.Atoi(v[0])
			if err == nil && (req.Tail < 1 || req.Tail > 100000) {
				err = strconv.ErrRange
			}
		case "follow":
			req.Follow, err = strconv.ParseBool(v[0])
		case "previous":
			req.Previous, err = strconv.ParseBool(v[0])
		default:
			return api.Errorf(api.ErrInvalid, "unknown parameter %s (logs takes tail, follow, previous)", ids.Quote(k))
		}
		if err != nil {
			return api.Errorf(api.ErrInvalid, "%s %s: want %s", k, ids.Quote(v[0]), map[string]string{
				"tail": "a whole number from 1 to 100000", "follow": "true or false", "previous": "true or false"}[k])
		}
	}
	id, err := workerID(r)
	if err != nil {
		return err
	}
	if r.Method == http.MethodHead {
		// net/http discards a HEAD's body: following would never end.
		req.Follow = false
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// Each write gets its own deadline: a follow may last as long as the
	// worker.
	out := &deadlineWriter{w: w, rc: http.NewResponseController(w)}
	if err := s.mon.Logs(r.Context(), id, req, out); err != nil {
		if !out.wrote {
			return err
		}
		s.log.Debug("worker logs", "worker", id, "err", err)
	}
	return nil
}

type deadlineWriter struct {
	w     http.ResponseWriter
	rc    *http.ResponseController
	wrote bool
}

func (d *deadlineWriter) Write(b []byte) (int, error) {
	_ = d.rc.SetWriteDeadline(time.Now().Add(httpx.WriteTimeout))
	d.wrote = true
	return d.w.Write(b)
}

func (d *deadlineWriter) Flush() { _ = d.rc.Flush() }
