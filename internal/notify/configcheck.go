package notify

import (
	"net/http"
	"net/url"
	"strings"
	"text/template"

	"github.com/nocbridge/nocbridge/internal/config"
)

// ConfigCheck collects the problems of one destination's keys, each at its
// key's line, so New reports them all at once instead of one per reload.
type ConfigCheck struct {
	env  Env
	d    config.Destination
	errs config.Errors
}

// NewConfigCheck starts checking d's keys.
func NewConfigCheck(env Env, d config.Destination) *ConfigCheck {
	return &ConfigCheck{env: env, d: d}
}

// Bad records a problem at path (a dotted key). The message must not hold
// secrets.
func (c *ConfigCheck) Bad(path, format string, args ...any) {
	c.errs = append(c.errs, ConfigError(c.env, c.d, path, format, args...))
}

// Errors is what was recorded, nil when nothing was.
func (c *ConfigCheck) Errors() config.Errors { return c.errs }

// Warn records a risky setting at path (a dotted key) into env.Warnings,
// which `check` prints and start-up logs; it fails nothing. The message
// must not hold secrets.
func (c *ConfigCheck) Warn(path, format string, args ...any) {
	if c.env.Warnings == nil {
		return
	}
	e := ConfigError(c.env, c.d, path, format, args...)
	c.env.Warnings.Add(e.File, e.Line, "%s", e.Msg)
}

// Cleartext warns, at key, when credentials (names of what is sent, such
// as "basic_auth"; none: nothing to warn about) go to u over plain http://
// to a host that is not this machine.
func (c *ConfigCheck) Cleartext(key string, u *url.URL, credentials ...string) {
	if len(credentials) == 0 || u == nil || u.Scheme != "http" || config.LoopbackHost(u.Hostname()) {
		return
	}
	c.Warn(key, "%s goes over plain http:// to %s, readable by anyone on the path: use https://", strings.Join(credentials, ", "), u.Host)
}

// SecretHeader reports whether a header (canonical name) carries a
// credential by its name: Authorization, X-Api-Key, X-Auth-Token, Cookie…
func SecretHeader(name string) bool {
	n := strings.ToLower(name)
	for _, w := range []string{"auth", "token", "key", "secret", "passw", "cookie", "session", "signature", "credential"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// SecretKey names the key a secret was given in, for an error's line: key,
// or key_file when file is set.
func SecretKey(key, file string) string {
	if file != "" {
		return key + "_file"
	}
	return key
}

// Secret resolves a secret given inline under key or in the file named by
// key_file. A failure is recorded at the key used ("<key>: <why>", never the
// value) and ok is false. path is that key, for the caller's own checks of
// the value. An empty secret is ok: whether it is required is the type's
// call.
func (c *ConfigCheck) Secret(key string, inline config.Secret, file string) (s config.Secret, path string, ok bool) {
	path = SecretKey(key, file)
	s, err := config.ResolveSecret(inline, file, c.env.BaseDir)
	if err != nil {
		c.Bad(path, "%s: %v", key, err)
		return "", path, false
	}
	if msg := config.SecretFileWarning(file, c.env.BaseDir); msg != "" {
		c.Warn(path, "%s: %s", path, msg)
	}
	return s, path, true
}

// RequiredSecret is Secret for a secret the type cannot do without: an
// empty one is recorded as "<key> (or <key>_file) is required: <what>"
// (what may be empty). ok is false when anything was recorded.
func (c *ConfigCheck) RequiredSecret(key string, inline config.Secret, file, what string) (s config.Secret, path string, ok bool) {
	s, path, ok = c.Secret(key, inline, file)
	if ok && s == "" {
		c.Bad(path, "%s", required(key+" (or "+key+"_file)", what))
		return "", path, false
	}
	return s, path, ok
}

// required is the message for a missing value: "<subject> is required",
// then ": <what>" when what says more.
func required(subject, what string) string {
	if what == "" {
		return subject + " is required"
	}
	return subject + " is required: " + what
}

// BasicCredentials are a user and a secret (password or API token) for
// HTTP Basic auth, both required; the hints say what each is, for the
// "required" messages.
type BasicCredentials struct {
	UserKey, User, UserHint string
	SecretKey               string // the secret's key; SecretFile is <key>_file's value
	Secret                  config.Secret
	SecretFile, SecretHint  string
}

// BasicCredentials checks b (the secret first) and returns BasicAuth's
// header and secrets; both are empty when a problem was recorded.
func (c *ConfigCheck) BasicCredentials(b BasicCredentials) (header string, secrets []string) {
	pw, _, ok := c.RequiredSecret(b.SecretKey, b.Secret, b.SecretFile, b.SecretHint)
	switch {
	case b.User == "":
		c.Bad(b.UserKey, "%s", required(b.UserKey, b.UserHint))
	case strings.Contains(b.User, ":"):
		c.Bad(b.UserKey, "%s must not contain ':'", b.UserKey)
	case ok:
		return BasicAuth(b.User, pw.Reveal())
	}
	return "", nil
}

// Template loads template_file when file is set, recording a failure at
// that key; nil means the type's default text.
func (c *ConfigCheck) Template(file string) *template.Template {
	if file == "" {
		return nil
	}
	t, err := LoadTemplate(file, c.env)
	if err != nil {
		c.Bad("template_file", "template_file: %v", err)
		return nil
	}
	return t
}

// CheckWebhookURL parses a URL that is itself the credential (a chat
// webhook, whose path or query holds the token): http or https, with a host.
// The message, empty when valid, never quotes the URL, not even redacted,
// and reads after the key's name ("url is missing a host").
func CheckWebhookURL(raw string) (*url.URL, string) {
	u, err := url.Parse(raw)
	switch {
	case err != nil: // url.Parse's error quotes the URL
		return nil, "is not a valid URL"
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, "must be an http or https URL"
	case u.Host == "":
		return nil, "is missing a host"
	}
	return u, ""
}

// CheckServiceURL parses a service's API endpoint: http or https, with a
// host and without user info, since credentials belong in their own secret
// keys; credentialsHint says which ("use user and api_token"). The message,
// empty when valid, shows the URL redacted.
func CheckServiceURL(raw, credentialsHint string) (*url.URL, string) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, "is not a valid URL"
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, RedactURL(u) + ": scheme must be http or https"
	case u.Host == "":
		return nil, RedactURL(u) + ": missing host"
	case u.User != nil:
		return nil, RedactURL(u) + ": must not hold credentials (" + credentialsHint + ")"
	}
	return u, ""
}

// CheckServiceBase is CheckServiceURL for a base that API paths are joined
// to: no query or fragment (they would be lost or misplaced), and no
// trailing slash, so joined paths never hold "//".
func CheckServiceBase(raw, credentialsHint string) (*url.URL, string) {
	u, msg := CheckServiceURL(raw, credentialsHint)
	switch {
	case msg != "":
		return nil, msg
	case u.RawQuery != "" || u.Fragment != "":
		return nil, RedactURL(u) + ": must not have a query or fragment"
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, ""
}

// ServiceBase checks raw, the value of key, with CheckServiceBase; a
// problem is recorded as "<key> <message>" and the result is nil.
func (c *ConfigCheck) ServiceBase(key, raw, credentialsHint string) *url.URL {
	return c.serviceURL(key, raw, credentialsHint, CheckServiceBase)
}

// ServiceURL is ServiceBase for a whole endpoint (CheckServiceURL).
func (c *ConfigCheck) ServiceURL(key, raw, credentialsHint string) *url.URL {
	return c.serviceURL(key, raw, credentialsHint, CheckServiceURL)
}

func (c *ConfigCheck) serviceURL(key, raw, credentialsHint string, check func(raw, credentialsHint string) (*url.URL, string)) *url.URL {
	u, msg := check(raw, credentialsHint)
	if msg != "" {
		c.Bad(key, "%s %s", key, msg)
		return nil
	}
	return u
}

// BasicAuth is the Authorization header value for user and password, with
// the secrets a Redactor must hide: the password and its base64 form, which
// a service echoing the request would show.
func BasicAuth(user, password string) (header string, secrets []string) {
	r := http.Request{Header: http.Header{}}
	r.SetBasicAuth(user, password)
	header = r.Header.Get("Authorization")
	return header, []string{password, strings.TrimPrefix(header, "Basic ")}
}

// WebhookURL resolves the required secret `url` (or url_file), an
// incoming-webhook URL; what says what it is, for the "required" message.
// A problem is recorded and the result is nil.
func (c *ConfigCheck) WebhookURL(inline config.Secret, file, what string) *url.URL {
	raw, key, ok := c.Secret("url", inline, file)
	switch {
	case !ok: // Secret recorded it
	case raw == "":
		c.Bad("url", "url is required (%s; set url or url_file)", what)
	default:
		u, msg := CheckWebhookURL(raw.Reveal())
		if msg == "" {
			c.Cleartext(key, u, "the url (a webhook URL is itself the credential)")
			return u
		}
		c.Bad(key, "url %s", msg)
	}
	return nil
}

// ChatAccess is how a chat type reaches its service: an incoming webhook
// (`url`), or a bot `token` plus the place to post (`TargetKey`: Slack's
// channel, Webex's room_id) on an API base (`api_url`).
type ChatAccess struct {
	URL, Token         config.Secret
	URLFile, TokenFile string
	Target, APIURL     string
	TargetKey          string // the key naming where a bot posts
	TargetHint         string // how to find that value, for the "required" message
	Place              string // what an incoming webhook posts to ("channel", "space")
	DefaultAPIURL      string
}

// ChatAccess checks a ChatAccess and returns the webhook URL (webhook
// mode), or the bot token and API base (bot mode). Problems are recorded;
// what they concern comes back empty.
func (c *ConfigCheck) ChatAccess(a ChatAccess) (webhook *url.URL, token string, api *url.URL) {
	hasURL := a.URL != "" || a.URLFile != ""
	hasToken := a.Token != "" || a.TokenFile != ""
	choice := "set url (incoming webhook) or token and " + a.TargetKey + " (bot)"
	switch {
	case hasURL && hasToken:
		c.Bad(SecretKey("token", a.TokenFile), "%s, not both", choice)
	case !hasURL && !hasToken:
		c.Bad("url", "%s", choice)
	case hasURL:
		u := c.WebhookURL(a.URL, a.URLFile, "the incoming webhook's URL")
		if u == nil {
			return nil, "", nil
		}
		if a.Target != "" {
			c.Bad(a.TargetKey, "%s is for bot mode (token); an incoming webhook posts to the %s it was created for", a.TargetKey, a.Place)
		}
		if a.APIURL != "" {
			c.Bad("api_url", "api_url is for bot mode (token); an incoming webhook needs only url")
		}
		return u, "", nil
	default:
		tok, key, ok := c.Secret("token", a.Token, a.TokenFile)
		switch {
		case !ok: // Secret recorded it
		case strings.ContainsFunc(tok.Reveal(), func(r rune) bool { return r <= ' ' || r == 0x7f }):
			c.Bad(key, "token contains whitespace or control characters")
		default:
			token = tok.Reveal()
		}
		if a.Target == "" {
			c.Bad(a.TargetKey, "%s is required with token (%s)", a.TargetKey, a.TargetHint)
		}
		base := a.APIURL
		if base == "" {
			base = a.DefaultAPIURL
		}
		u, msg := CheckWebhookURL(base)
		if msg != "" {
			c.Bad("api_url", "api_url %s", msg)
			return nil, token, nil
		}
		c.Cleartext("api_url", u, "token")
		return nil, token, u
	}
	return nil, "", nil
}
