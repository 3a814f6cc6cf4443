package teams

import (
	"net/url"
	"text/template"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/notify"
)

// Config is the teams destination's own keys (SPEC 5): the trigger URL of a
// Power Automate Workflow ("When a Teams webhook request is received").
// The URL is a secret: its query carries the signature that authorises it.
type Config struct {
	URL          config.Secret `yaml:"url"`
	URLFile      string        `yaml:"url_file"`
	TemplateFile string        `yaml:"template_file"`
}

// settings is a validated Config with its secret resolved.
type settings struct {
	url *url.URL
	// tmpl replaces the card's text when set.
	tmpl *template.Template
}

func (c *Config) validate(env notify.Env, d config.Destination) (*settings, config.Errors) {
	check := notify.NewConfigCheck(env, d)
	bad := check.Bad
	s := &settings{}

	switch raw, key, ok := check.Secret("url", c.URL, c.URLFile); {
	case !ok: // check.Secret reported it
	case raw == "":
		bad("url", "url is required (the Workflow's trigger URL; set url or url_file)")
	default:
		if u, msg := notify.CheckWebhookURL(raw.Reveal()); msg != "" {
			bad(key, "url %s", msg)
		} else {
			s.url = u
		}
	}

	s.tmpl = check.Template(c.TemplateFile)
	return s, check.Errors()
}
