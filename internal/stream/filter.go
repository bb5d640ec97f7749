package stream

import (
	"net/url"
	"slices"
	"strings"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/ids"
)

// Filter is what one client asked to see: ?hive=a,b (those hives' events),
// ?model=m (worker events of that model, and the telemetry of hives that
// serve it) and ?types=t,u (those event types). Zero fields keep all.
type Filter struct {
	Hives map[string]bool
	Model string
	Types map[string]bool
}

// ParseFilter reads a stream request's query. Errors name the parameter
// and are of class api.ErrInvalid.
func ParseFilter(q url.Values) (Filter, error) {
	var f Filter
	for k, vs := range q {
		switch {
		case k != "hive" && k != "model" && k != "types" && k != "access_token":
			return f, api.Errorf(api.ErrInvalid, "unknown parameter %s (known: hive, model, types)", ids.Quote(k))
		case len(vs) > 1:
			return f, api.Errorf(api.ErrInvalid, "%s given %d times: give it once, values separated by commas", k, len(vs))
		}
	}
	if v := q.Get("hive"); v != "" {
		f.Hives = map[string]bool{}
		for _, h := range strings.Split(v, ",") {
			if err := ids.ValidHiveID(h); err != nil {
				return f, api.Errorf(api.ErrInvalid, "hive %s: %v", ids.Quote(h), err)
			}
			f.Hives[h] = true
		}
	}
	if v := q.Get("model"); v != "" {
		if err := ids.ValidText(v, 256); err != nil {
			return f, api.Errorf(api.ErrInvalid, "model %s: %v", ids.Quote(v), err)
		}
		f.Model = v
	}
	if v := q.Get("types"); v != "" {
		f.Types = map[string]bool{}
		for _, t := range strings.Split(v, ",") {
			if !slices.Contains(api.EventTypes, t) {
				return f, api.Errorf(api.ErrInvalid, "types: unknown event type %s (known: %s)", ids.Quote(t), strings.Join(api.EventTypes, ", "))
			}
			f.Types[t] = true
		}
	}
	return f, nil
}

// Wants reports whether the filter takes events of type typ.
func (f Filter) Wants(typ string) bool { return f.Types == nil || f.Types[typ] }

// Hive reports whether the filter takes hive id's events.
func (f Filter) Hive(id string) bool { return f.Hives == nil || f.Hives[id] }

// match reports whether the filter takes e. Events of no hive (the
// queen's summary) pass a hive filter; events that concern no model (a
// hive going stale) pass a model filter.
func (f Filter) match(e *event) bool {
	if !f.Wants(e.typ) {
		return false
	}
	if e.key != "" && !f.Hive(e.key) {
		return false
	}
	return f.Model == "" || e.models == nil || slices.Contains(e.models, f.Model)
}
