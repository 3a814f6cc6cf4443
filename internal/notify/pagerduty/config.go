package pagerduty

import (
	"cmp"
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
	check := notify.NewConfigCheck(env, d)
	s := &settings{}

	if key, _, ok := check.RequiredSecret("routing_key", c.RoutingKey, c.RoutingKeyFile, "the integration key of an Events API v2 integration"); ok {
		s.routingKey = key
	}
	s.url = check.ServiceURL("url", cmp.Or(c.URL, DefaultURL), "the routing key goes in routing_key")
	check.Cleartext("url", s.url, "routing_key")

	s.tmpl = check.Template(c.TemplateFile)
	return s, check.Errors()
}
