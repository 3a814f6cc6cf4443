package discord

import (
	"net/url"
	"text/template"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/notify"
)

// Config is the discord destination's own keys (SPEC 5): a channel webhook
// URL. The URL is a secret: its last path element is the webhook's token.
type Config struct {
	URL          config.Secret `yaml:"url"`
	URLFile      string        `yaml:"url_file"`
	TemplateFile string        `yaml:"template_file"`
}

// settings is a validated Config with its secret resolved.
type settings struct {
	url *url.URL
	// tmpl replaces the embed's description when set.
	tmpl *template.Template
}

func (c *Config) validate(env notify.Env, d config.Destination) (*settings, config.Errors) {
	var errs config.Errors
	bad := func(path, format string, args ...any) {
		errs = append(errs, notify.ConfigError(env, d, path, format, args...))
	}
	s := &settings{}

	key := "url"
	if c.URLFile != "" {
		key = "url_file"
	}
	switch raw, err := config.ResolveSecret(c.URL, c.URLFile, env.BaseDir); {
	case err != nil:
		bad(key, "url: %v", err)
	case raw == "":
		bad("url", "url is required (the channel's webhook URL; set url or url_file)")
	default:
		u, err := url.Parse(raw.Reveal())
		switch {
		case err != nil:
			// url.Parse quotes the URL; its path holds the token.
			bad(key, "url is not a valid URL")
		case u.Scheme != "http" && u.Scheme != "https":
			bad(key, "url must be an http or https URL")
		case u.Host == "":
			bad(key, "url is missing a host")
		default:
			s.url = u
		}
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
