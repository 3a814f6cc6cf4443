package webhook

import (
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"text/template"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/notify"
	"github.com/nocbridge/nocbridge/internal/webhooksig"
)

// Config is the webhook destination's own keys (SPEC 3 and 5).
type Config struct {
	URL             string            `yaml:"url"`
	Method          string            `yaml:"method"` // POST (default) | PUT
	Headers         map[string]string `yaml:"headers"`
	BasicAuth       *BasicAuth        `yaml:"basic_auth"`
	BearerToken     config.Secret     `yaml:"bearer_token"`
	BearerTokenFile string            `yaml:"bearer_token_file"`
	// Secret is a Standard Webhooks signing secret, whsec_<base64>.
	Secret       config.Secret `yaml:"secret"`
	SecretFile   string        `yaml:"secret_file"`
	Format       string        `yaml:"format"` // dnac (default) | template
	TemplateFile string        `yaml:"template_file"`
}

type BasicAuth struct {
	Username     string        `yaml:"username"`
	Password     config.Secret `yaml:"password"`
	PasswordFile string        `yaml:"password_file"`
}

const (
	FormatDNAC     = "dnac"
	FormatTemplate = "template"
)

// settings is a validated Config with its secrets resolved and its template
// parsed.
type settings struct {
	url        *url.URL
	method     string
	headers    http.Header
	auth       string             // full Authorization value, "" when none
	signingKey []byte             // nil when unsigned
	tmpl       *template.Template // nil for dnac
	// secrets are every configured secret, for the Redactor; credentials
	// names what goes on the wire, for the clear-text warning.
	secrets     []string
	credentials []string
}

// reservedHeaders are set by the notifier itself; letting config override
// them would break signatures, idempotency or the payload contract.
var reservedHeaders = []string{
	"Webhook-Id", "Webhook-Timestamp", "Webhook-Signature",
	"Content-Type", "Content-Length", "User-Agent", "Host", "Transfer-Encoding",
}

func (c *Config) validate(env notify.Env, d config.Destination) (*settings, config.Errors) {
	check := notify.NewConfigCheck(env, d)
	bad := check.Bad
	s := &settings{headers: http.Header{}}

	switch {
	case c.URL == "":
		bad("url", "url is required")
	default:
		u, err := url.Parse(c.URL)
		switch {
		case err != nil:
			// url.Parse quotes the URL; it may carry a token, so say less.
			bad("url", "url is not a valid URL")
		case u.Scheme != "http" && u.Scheme != "https":
			bad("url", "url %s: scheme must be http or https", notify.RedactURL(u))
		case u.Host == "":
			bad("url", "url %s: missing host", notify.RedactURL(u))
		default:
			s.url = u
		}
	}

	switch m := strings.ToUpper(c.Method); m {
	case "", http.MethodPost:
		s.method = http.MethodPost
	case http.MethodPut:
		s.method = http.MethodPut
	default:
		bad("method", "method %q: must be POST or PUT", c.Method)
	}

	// Authorization: basic or bearer, not both.
	if c.BasicAuth != nil {
		pw, _, ok := check.Secret("basic_auth.password", c.BasicAuth.Password, c.BasicAuth.PasswordFile)
		switch {
		case !ok: // check.Secret reported it
		case c.BasicAuth.Username == "":
			bad("basic_auth", "basic_auth.username is required")
		case strings.Contains(c.BasicAuth.Username, ":"):
			bad("basic_auth.username", "basic_auth.username must not contain ':'")
		default:
			var secrets []string
			s.auth, secrets = notify.BasicAuth(c.BasicAuth.Username, pw.Reveal())
			s.secrets = append(s.secrets, secrets...)
			s.credentials = append(s.credentials, "basic_auth")
		}
	}
	if c.BearerToken != "" || c.BearerTokenFile != "" {
		tok, key, ok := check.Secret("bearer_token", c.BearerToken, c.BearerTokenFile)
		switch {
		case !ok: // check.Secret reported it
		case c.BasicAuth != nil:
			bad("bearer_token", "set basic_auth or bearer_token, not both")
		case !validHeaderValue(tok.Reveal()):
			bad(key, "bearer_token contains characters not allowed in a header")
		default:
			s.auth = "Bearer " + tok.Reveal()
			s.secrets = append(s.secrets, tok.Reveal())
			s.credentials = append(s.credentials, "bearer_token")
		}
	}

	if c.Secret != "" || c.SecretFile != "" {
		if sec, key, ok := check.Secret("secret", c.Secret, c.SecretFile); ok {
			if k, err := webhooksig.ParseSecret(sec.Reveal()); err != nil {
				bad(key, "secret: %v", err)
			} else {
				s.signingKey = k
				s.secrets = append(s.secrets, sec.Reveal(), strings.TrimPrefix(sec.Reveal(), "whsec_"))
			}
		}
	}

	for name, v := range c.Headers {
		canon := textproto.CanonicalMIMEHeaderKey(name)
		switch {
		case !validHeaderName(name):
			bad("headers", "header name %q is not a valid HTTP header name", name)
		case !validHeaderValue(v):
			bad("headers."+name, "header %s: value contains characters not allowed in a header", name)
		case containsFold(reservedHeaders, canon):
			bad("headers."+name, "header %s is set by nocbridge and cannot be overridden", name)
		case canon == "Authorization" && s.auth != "":
			bad("headers."+name, "header Authorization conflicts with basic_auth/bearer_token")
		default:
			s.headers.Set(name, v)
			if notify.SecretHeader(canon) {
				s.secrets = append(s.secrets, v)
				s.credentials = append(s.credentials, "header "+canon)
			}
		}
	}
	if s.url != nil {
		s.secrets = append(s.secrets, urlSecrets(s.url)...)
		if s.url.User != nil {
			s.credentials = append(s.credentials, "the url's user info")
		}
		check.Cleartext("url", s.url, s.credentials...)
	}

	switch c.Format {
	case "", FormatDNAC:
		if c.TemplateFile != "" {
			bad("template_file", "template_file needs format: template")
		}
	case FormatTemplate:
		if c.TemplateFile == "" {
			bad("format", "format template needs template_file")
			break
		}
		s.tmpl = check.Template(c.TemplateFile)
	default:
		bad("format", "format %q: must be dnac or template", c.Format)
	}
	return s, check.Errors()
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// validHeaderName: an RFC 9110 token. (golang.org/x/net/http/httpguts has
// this, but pulls in x/text for IDNA, which nothing else here needs.)
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue: no control characters other than tab (no CR/LF header
// injection).
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
