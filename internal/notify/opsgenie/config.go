package opsgenie

import (
	"cmp"
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
	check := notify.NewConfigCheck(env, d)
	bad := check.Bad
	s := &settings{}

	switch key, keyPath, ok := check.RequiredSecret("api_key", c.APIKey, c.APIKeyFile, "the key of an API integration"); {
	case !ok: // check.RequiredSecret reported it
	case strings.ContainsAny(key.Reveal(), " \t\r\n"):
		bad(keyPath, "api_key must not contain white space")
	default:
		s.apiKey = key
	}

	s.base = check.ServiceBase("api_url", cmp.Or(c.APIURL, DefaultAPIURL), "the key goes in api_key")
	check.Cleartext("api_url", s.base, "api_key")

	s.tmpl = check.Template(c.TemplateFile)
	return s, check.Errors()
}
