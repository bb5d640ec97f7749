// Package dashboard serves the queen's live dashboard: static HTML, CSS
// and JavaScript embedded in the binary (no build step, no CDN, works
// offline) that read the event stream in the browser.
package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var files embed.FS

// Paths are the URL paths Handler serves; none needs a token (the page
// holds no data: it asks the stream, with the token the user gives it).
var Paths = []string{"/", "/static/dash.js", "/static/dash.css"}

// Handler serves the dashboard at / and its assets under /static/.
func Handler() http.Handler {
	static, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	assets := http.FileServerFS(static)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// The page talks to its own origin only, and may not be framed.
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "+
			"connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		switch r.URL.Path {
		case "/":
			http.ServeFileFS(w, r, static, "index.html")
		case "/static/dash.js", "/static/dash.css":
			r2 := r.Clone(r.Context())
			r2.URL.Path = r.URL.Path[len("/static"):]
			assets.ServeHTTP(w, r2)
		default:
			http.NotFound(w, r)
		}
	})
}
