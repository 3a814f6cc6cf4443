package slack

import (
	"net/url"
	"strings"
	"text/template"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/notify"
)

// DefaultAPIURL is Slack's Web API base (bot mode).
const DefaultAPIURL = "https://slack.com/api/"

// Config is the slack destination's own keys (SPEC 5): an incoming webhook
// (url) or a bot token and channel. The webhook URL is a secret: its path
// is the credential.
type Config struct {
	URL          config.Secret `yaml:"url"`
	URLFile      string        `yaml:"url_file"`
	Token        config.Secret `yaml:"token"`
	TokenFile    string        `yaml:"token_file"`
	Channel      string        `yaml:"channel"`
	APIURL       string        `yaml:"api_url"`
	TemplateFile string        `yaml:"template_file"`
}

// settings is a validated Config with its secrets resolved.
type settings struct {
	// webhook mode
	webhookURL *url.URL
	// bot mode
	token   string
	channel string
	apiURL  *url.URL
	// tmpl replaces the message body text when set.
	tmpl *template.Template
}

func (s *settings) botMode() bool { return s.token != "" }

func (c *Config) validate(env notify.Env, d config.Destination) (*settings, config.Errors) {
	check := notify.NewConfigCheck(env, d)
	bad := check.Bad
	s := &settings{}

	hasURL := c.URL != "" || c.URLFile != ""
	hasToken := c.Token != "" || c.TokenFile != ""
	switch {
	case hasURL && hasToken:
		bad(notify.SecretKey("token", c.TokenFile), "set url (incoming webhook) or token and channel (bot), not both")
	case !hasURL && !hasToken:
		bad("url", "set url (incoming webhook) or token and channel (bot)")
	case hasURL:
		raw, key, ok := check.Secret("url", c.URL, c.URLFile)
		if !ok {
			break
		}
		u, msg := notify.CheckWebhookURL(raw.Reveal())
		if msg != "" {
			bad(key, "url %s", msg)
			break
		}
		s.webhookURL = u
		if c.Channel != "" {
			bad("channel", "channel is for bot mode (token); an incoming webhook posts to the channel it was created for")
		}
		if c.APIURL != "" {
			bad("api_url", "api_url is for bot mode (token); an incoming webhook needs only url")
		}
	default:
		tok, key, ok := check.Secret("token", c.Token, c.TokenFile)
		switch {
		case !ok: // check.Secret reported it
		case strings.ContainsFunc(tok.Reveal(), func(r rune) bool { return r <= ' ' || r == 0x7f }):
			bad(key, "token contains whitespace or control characters")
		default:
			s.token = tok.Reveal()
		}
		if c.Channel == "" {
			bad("channel", "channel is required with token (a channel ID such as C0123456789, or #name)")
		}
		s.channel = c.Channel
		api := c.APIURL
		if api == "" {
			api = DefaultAPIURL
		}
		u, msg := notify.CheckWebhookURL(api)
		if msg != "" {
			bad("api_url", "api_url %s", msg)
			break
		}
		// slack-go appends the method name ("chat.postMessage") to the base.
		if !strings.HasSuffix(u.Path, "/") {
			u.Path += "/"
			if u.RawPath != "" {
				u.RawPath += "/"
			}
		}
		s.apiURL = u
	}

	s.tmpl = check.Template(c.TemplateFile)
	return s, check.Errors()
}
