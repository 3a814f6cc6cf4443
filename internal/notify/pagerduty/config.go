package pagerduty

import (
	"net/url"
	"text/template"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/notify"
)

// DefaultURL is the public Events API v2 endpoint.
const DefaultURL = "https://events.pagerduty.com/v2/enqueue"

// Config is the pagerduty destination's own keys (SPEC 5).
type Config struct {
	// RoutingKey is the integration key of an "Events API v2" integration
	// on a PagerDuty service (or a global event orchestration).
	RoutingKey     config.Secret `yaml:"routing_key"`
	RoutingKeyFile string        `yaml:"routing_key_file"`
	URL            string        `yaml:"url"`
	// TemplateFile, when set, renders the event summary.
	TemplateFile string `yaml:"template_file"`
}

// settings is a validated Config with its secret resolved and its template
// parsed.
type settings struct {
	routingKey config.Secret
	url        *url.URL
	tmpl       *template.Template // nil: the default summary
}

func (c *Config) validate(env notify.Env, d config.Destination) (*settings, config.Errors) {
	var errs config.Errors
	bad := func(path, format string, args ...any) {
		errs = append(errs, notify.ConfigError(env, d, path, format, args...))
	}
	s := &settings{}

	keyPath := "routing_key"
	if c.RoutingKeyFile != "" {
		keyPath = "routing_key_file"
	}
	switch key, err := config.ResolveSecret(c.RoutingKey, c.RoutingKeyFile, env.BaseDir); {
	case err != nil:
		bad(keyPath, "routing_key: %v", err)
	case key == "":
		bad(keyPath, "routing_key (or routing_key_file) is required: the integration key of an Events API v2 integration")
	default:
		s.routingKey = key
	}

	raw := c.URL
	if raw == "" {
		raw = DefaultURL
	}
	if u, msg := parseEndpoint(raw); msg != "" {
		bad("url", "url %s", msg)
	} else {
		s.url = u
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
		return nil, notify.RedactURL(u) + ": must not hold credentials (the routing key goes in routing_key)"
	}
	return u, ""
}
