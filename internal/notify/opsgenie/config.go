package opsgenie

import (
	"net/url"
	"strings"
	"text/template"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/notify"
)

// DefaultAPIURL is the public (US) Opsgenie API; EU accounts use
// https://api.eu.opsgenie.com.
const DefaultAPIURL = "https://api.opsgenie.com"

// Config is the opsgenie destination's own keys (SPEC 5).
type Config struct {
	// APIKey is the key of an "API" integration on an Opsgenie team.
	APIKey     config.Secret `yaml:"api_key"`
	APIKeyFile string        `yaml:"api_key_file"`
	APIURL     string        `yaml:"api_url"`
	// TemplateFile, when set, renders the alert description of a firing
	// alert and the note of its close.
	TemplateFile string `yaml:"template_file"`
}

// settings is a validated Config with its secret resolved and its template
// parsed.
type settings struct {
	apiKey config.Secret
	base   *url.URL // API root, without a trailing slash
	tmpl   *template.Template
}

func (c *Config) validate(env notify.Env, d config.Destination) (*settings, config.Errors) {
	var errs config.Errors
	bad := func(path, format string, args ...any) {
		errs = append(errs, notify.ConfigError(env, d, path, format, args...))
	}
	s := &settings{}

	keyPath := "api_key"
	if c.APIKeyFile != "" {
		keyPath = "api_key_file"
	}
	switch key, err := config.ResolveSecret(c.APIKey, c.APIKeyFile, env.BaseDir); {
	case err != nil:
		bad(keyPath, "api_key: %v", err)
	case key == "":
		bad(keyPath, "api_key (or api_key_file) is required: the key of an API integration")
	case strings.ContainsAny(key.Reveal(), " \t\r\n"):
		bad(keyPath, "api_key must not contain white space")
	default:
		s.apiKey = key
	}

	raw := c.APIURL
	if raw == "" {
		raw = DefaultAPIURL
	}
	if u, msg := parseEndpoint(raw); msg != "" {
		bad("api_url", "api_url %s", msg)
	} else {
		s.base = u
	}

	if c.TemplateFile != "" {
		t, err := notify.LoadTemplate(c.TemplateFile, env)
		if err != nil {
			bad("template_file", "template_file: %v", err)
		} else {
			s.tmpl = t
		}
	}
	return s, errs
}

// parseEndpoint checks a service URL; the message (empty when valid) never
// quotes the raw value, which may carry credentials.
func parseEndpoint(raw string) (*url.URL, string) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, "is not a valid URL"
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, notify.RedactURL(u) + ": scheme must be http or https"
	case u.Host == "":
		return nil, notify.RedactURL(u) + ": missing host"
	case u.User != nil:
		return nil, notify.RedactURL(u) + ": must not hold credentials (the key goes in api_key)"
	case u.RawQuery != "" || u.Fragment != "":
		return nil, notify.RedactURL(u) + ": must not have a query or fragment"
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, ""
}
