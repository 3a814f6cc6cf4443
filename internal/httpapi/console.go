package httpapi

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Console is the operator's console (internal/console), mounted on the
// API's mux: its pages answer browsers with HTML, and clients that ask for
// JSON with the JSON of the page's API twin.
type Console interface {
	http.Handler
	// Patterns are the mux patterns of its pages, forms and assets.
	Patterns() []string
	// Allows reports whether a request may see the console without the
	// bearer token where reads need it (Public): its login page and assets,
	// or a request with a signed-in session.
	Allows(r *http.Request) bool
	// SendToLogin redirects a browser to the login page.
	SendToLogin(w http.ResponseWriter, r *http.Request)
}

// twins are the console pages whose URL also serves the API's JSON: a
// request for JSON goes to the API path, with its query.
var twins = map[string]func(r *http.Request) string{
	"GET /devices":        func(*http.Request) string { return "/api/v1/devices" },
	"GET /devices/{name}": func(r *http.Request) string { return "/api/v1/devices/" + url.PathEscape(r.PathValue("name")) },
	"GET /alerts/{id}":    func(r *http.Request) string { return "/api/v1/alerts/" + url.PathEscape(r.PathValue("id")) },
	"GET /deliveries":     func(*http.Request) string { return "/api/v1/deliveries" },
	"GET /deadletters":    func(*http.Request) string { return "/api/v1/deadletters" },
	"GET /silences":       func(*http.Request) string { return "/api/v1/silences" },
	"GET /cluster":        func(*http.Request) string { return "/api/v1/cluster" },
}

// mountConsole routes the console's patterns on mux and returns them as a
// set, for the guard.
func (d Deps) mountConsole(mux *http.ServeMux) map[string]bool {
	patterns := map[string]bool{}
	if d.Console == nil {
		return patterns
	}
	for _, p := range d.Console.Patterns() {
		patterns[p] = true
		twin, ok := twins[p]
		if !ok {
			mux.Handle(p, d.Console)
			continue
		}
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Add("Vary", "Accept")
			if wantsHTML(r) {
				d.Console.ServeHTTP(w, r)
				return
			}
			serveAt(mux, twin(r), w, r)
		})
	}
	return patterns
}

// serveAt serves r as if it had asked for the escaped path (same query).
func serveAt(mux *http.ServeMux, escaped string, w http.ResponseWriter, r *http.Request) {
	p, err := url.PathUnescape(escaped)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad path")
		return
	}
	r2 := r.Clone(r.Context())
	u := *r.URL
	u.Path, u.RawPath = p, escaped
	r2.URL, r2.RequestURI = &u, u.RequestURI()
	mux.ServeHTTP(w, r2)
}

// wantsHTML reports whether the client prefers HTML to JSON, as browsers
// do. A client that names neither (curl's */*, or no Accept) gets JSON, as
// these URLs always gave it; so does one that likes JSON as much as HTML.
func wantsHTML(r *http.Request) bool {
	html, json := -1.0, -1.0
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mediaType, params, _ := strings.Cut(part, ";")
		q := 1.0
		for _, param := range strings.Split(params, ";") {
			if k, v, ok := strings.Cut(strings.TrimSpace(param), "="); ok && strings.EqualFold(k, "q") {
				if f, err := strconv.ParseFloat(v, 64); err == nil {
					q = f
				}
			}
		}
		switch strings.ToLower(strings.TrimSpace(mediaType)) {
		case "text/html", "application/xhtml+xml":
			html = max(html, q)
		case "application/json":
			json = max(json, q)
		}
	}
	return html > 0 && html > json
}
