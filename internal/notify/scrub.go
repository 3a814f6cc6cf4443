package notify

import (
	"regexp"
	"strings"
)

// MaxReason bounds a failure's text (a reason, a delivery's error, a dead
// letter's reason, a log line's): what is longer is cut, after scrubbing.
const MaxReason = 4 << 10

// Redactor is the one scrubber of text bound for errors, logs, deliveries
// and dead letters, where a service or proxy echoing the request must not
// leak credentials: it replaces the destination's configured secrets, then
// anything that looks like a credential (credentialPatterns), and cuts the
// result to MaxReason. The zero Redactor does the last two.
type Redactor struct {
	secrets []string
}

// Redacted is what a secret is replaced with.
const Redacted = "<redacted>"

// NewRedactor hides secrets in the order given (put a whole URL before its
// parts). Values shorter than minLen are skipped: replacing "/" or a
// two-letter string would mangle unrelated text.
func NewRedactor(minLen int, secrets ...string) Redactor {
	var r Redactor
	for _, s := range secrets {
		if s != "" && len(s) >= minLen {
			r.secrets = append(r.secrets, s)
		}
	}
	return r
}

// credentialPatterns find credentials nobody configured here: a service
// echoing another token, or a proxy showing the request's headers. Each
// replacement keeps the name and hides the value.
var credentialPatterns = []struct {
	re   *regexp.Regexp
	with string
}{
	// Authorization: <scheme> <value>, as a header line or a JSON field.
	{regexp.MustCompile(`(?i)(\b(?:proxy-)?authorization\b["']?\s*[:=]\s*["']?)[^\s"',;}\[\]][^"'\r\n,;}\[\]]*`), "${1}" + Redacted},
	// A scheme's credentials anywhere else.
	{regexp.MustCompile(`(?i)(\b(?:bearer|basic|digest|geniekey)\s+)[A-Za-z0-9._~+/=-]+`), "${1}" + Redacted},
	// token=…, "password": "…", X-Api-Key: …, client_secret=…
	{regexp.MustCompile(`(?i)(\b[\w.-]*(?:token|passw(?:or)?d|secret|api[_-]?key|apikey|credential|signature)[\w.-]*["']?\s*[:=]\s*["']?)[^\s"'&,;<>{}\[\]]+`), "${1}" + Redacted},
	// user:password@ in a URL.
	{regexp.MustCompile(`://[^/\s:@]+:[^/\s@]+@`), "://" + Redacted + "@"},
	// Slack tokens, whatever surrounds them.
	{regexp.MustCompile(`\bxox[abeoprs]-[A-Za-z0-9-]+`), Redacted},
}

// Redact returns s with every secret and credential-looking value
// replaced, cut to MaxReason.
func (r Redactor) Redact(s string) string {
	for _, v := range r.secrets {
		s = strings.ReplaceAll(s, v, Redacted)
	}
	for _, p := range credentialPatterns {
		s = p.re.ReplaceAllString(s, p.with)
	}
	return CutBytes(s, MaxReason, Ellipsis)
}

// Error returns err with its text redacted, keeping the chain for
// errors.Is and errors.As (timeouts, cancellation). nil stays nil.
func (r Redactor) Error(err error) error {
	if err == nil {
		return nil
	}
	return &scrubbedError{msg: r.Redact(err.Error()), err: err}
}

type scrubbedError struct {
	msg string
	err error
}

func (s *scrubbedError) Error() string { return s.msg }
func (s *scrubbedError) Unwrap() error { return s.err }
