package webex

import (
	"net/url"
	"text/template"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/notify"
)

// DefaultAPIURL is the Webex REST API base (bot mode).
const DefaultAPIURL = "https://webexapis.com/v1"

// Config is the webex destination's own keys (SPEC 5): an incoming webhook
// (url) or a bot token and room_id. The webhook URL is a secret: its path is
// the credential.
type Config struct {
	URL          config.Secret `yaml:"url"`
	URLFile      string        `yaml:"url_file"`
	Token        config.Secret `yaml:"token"`
	TokenFile    string        `yaml:"token_file"`
	RoomID       string        `yaml:"room_id"`
	APIURL       string        `yaml:"api_url"`
	TemplateFile string        `yaml:"template_file"`
	// digest, a mapping or false, is read by notify.ConfigCheck.Digest.
	notify.TakesDigest `yaml:"-"`
}

// settings is a validated Config with its secrets resolved.
type settings struct {
	// endpoint is the incoming webhook URL, or api_url + /messages.
	endpoint *url.URL
	// auth is "Bearer <token>" in bot mode, "" for a webhook.
	auth   string
	roomID string
	// tmpl replaces the message body when set.
	tmpl   *template.Template
	digest notify.DigestPolicy
}

func (c *Config) validate(env notify.Env, d config.Destination) (*settings, config.Errors) {
	check := notify.NewConfigCheck(env, d)
	s := &settings{}

	webhook, token, api := check.ChatAccess(notify.ChatAccess{
		URL: c.URL, URLFile: c.URLFile, Token: c.Token, TokenFile: c.TokenFile,
		Target: c.RoomID, APIURL: c.APIURL, DefaultAPIURL: DefaultAPIURL,
		TargetKey: "room_id", TargetHint: "the space's id, from GET /rooms", Place: "space",
	})
	s.roomID = c.RoomID
	switch {
	case webhook != nil:
		s.endpoint = webhook
	case api != nil:
		s.endpoint = api.JoinPath("messages")
	}
	if token != "" {
		s.auth = "Bearer " + token
	}

	s.tmpl = check.Template(c.TemplateFile)
	s.digest = check.Digest()
	return s, check.Errors()
}
