package httpx

import (
	"net/http"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/ids"
)

// PathValue returns r's path value name when valid accepts it, else an
// ErrInvalid error (a 400) saying what is wrong with it. The mux decodes
// %2F and %2E, so a value may hold "/" or ".." whatever the URL looked
// like: every route checks its ids before they reach a map, a file or a
// cgroup.
func PathValue(r *http.Request, name string, valid func(string) error) (string, error) {
	v := r.PathValue(name)
	if err := valid(v); err != nil {
		return "", api.Errorf(api.ErrInvalid, "%s %s: %v", name, ids.Quote(v), err)
	}
	return v, nil
}
