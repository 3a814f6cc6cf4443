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
	// digest, a mapping or false, is read by notify.ConfigCheck.Digest.
	notify.TakesDigest `yaml:"-"`
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
	tmpl   *template.Template
	digest notify.DigestPolicy
}

func (s *settings) botMode() bool { return s.token != "" }

func (c *Config) validate(env notify.Env, d config.Destination) (*settings, config.Errors) {
	check := notify.NewConfigCheck(env, d)
	s := &settings{}

	webhook, token, api := check.ChatAccess(notify.ChatAccess{
		URL: c.URL, URLFile: c.URLFile, Token: c.Token, TokenFile: c.TokenFile,
		Target: c.Channel, APIURL: c.APIURL, DefaultAPIURL: DefaultAPIURL,
		TargetKey: "channel", TargetHint: "a channel ID such as C0123456789, or #name", Place: "channel",
	})
	s.webhookURL, s.token, s.channel = webhook, token, c.Channel
	if api != nil {
		// slack-go appends the method name ("chat.postMessage") to the base.
		if !strings.HasSuffix(api.Path, "/") {
			api.Path += "/"
			if api.RawPath != "" {
				api.RawPath += "/"
			}
		}
		s.apiURL = api
	}

	s.tmpl = check.Template(c.TemplateFile)
	s.digest = check.Digest()
	return s, check.Errors()
}
