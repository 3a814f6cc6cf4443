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
	// digest, a mapping or false, is read by notify.ConfigCheck.Digest.
	notify.TakesDigest `yaml:"-"`
}

// settings is a validated Config with its secret resolved.
type settings struct {
	url *url.URL
	// tmpl replaces the embed's description when set.
	tmpl   *template.Template
	digest notify.DigestPolicy
}

func (c *Config) validate(env notify.Env, d config.Destination) (*settings, config.Errors) {
	check := notify.NewConfigCheck(env, d)
	s := &settings{}

	s.url = check.WebhookURL(c.URL, c.URLFile, "the channel's webhook URL")

	s.tmpl = check.Template(c.TemplateFile)
	s.digest = check.Digest()
	return s, check.Errors()
}
