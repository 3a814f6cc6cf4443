package notify

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/nocbridge/nocbridge/internal/config"
)

// maxRedirects bounds a chain of redirects followed with
// follow_redirects: same_host, so a loop ends.
const maxRedirects = 10

// RedirectError is a redirect a destination does not follow: a permanent
// failure naming where the receiver pointed (Location without its user
// info, query or fragment, which may hold secrets).
type RedirectError struct {
	Status   int
	Location string
	Why      string
}

func (e *RedirectError) Error() string {
	return fmt.Sprintf("HTTP %d redirect to %s not followed: %s", e.Status, e.Location, e.Why)
}

// checkRedirect is a client's CheckRedirect for a destination's
// follow_redirects: never (the default) refuses every redirect; same_host
// follows up to maxRedirects to the first request's scheme, host and port,
// so its Authorization and custom headers never go anywhere else.
func checkRedirect(policy string) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		refuse := func(why string) error {
			e := &RedirectError{Location: RedactURL(req.URL), Why: why}
			if req.Response != nil {
				e.Status = req.Response.StatusCode
			}
			return e
		}
		switch {
		case policy != config.RedirectsSameHost:
			return refuse("the destination does not follow redirects (follow_redirects: same_host allows them on the same host); update its url")
		case origin(req.URL) != origin(via[0].URL):
			return refuse("follow_redirects: same_host follows only to " + origin(via[0].URL))
		case len(via) >= maxRedirects:
			return refuse(fmt.Sprintf("more than %d redirects", maxRedirects))
		}
		return nil
	}
}

// origin is scheme://host:port, the port spelled out, the host in lower
// case.
func origin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return u.Scheme + "://" + strings.ToLower(u.Hostname()) + ":" + port
}
