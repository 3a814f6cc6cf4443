package webex

import (
	"net/url"
	"strings"
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
}

// settings is a validated Config with its secrets resolved.
type settings struct {
	// endpoint is the incoming webhook URL, or api_url + /messages.
	endpoint *url.URL
	// auth is "Bearer <token>" in bot mode, "" for a webhook.
	auth   string
	roomID string
	// tmpl replaces the message body when set.
	tmpl *template.Template
}

func (c *Config) validate(env notify.Env, d config.Destination) (*settings, config.Errors) {
	check := notify.NewConfigCheck(env, d)
	bad := check.Bad
	s := &settings{}

	hasURL := c.URL != "" || c.URLFile != ""
	hasToken := c.Token != "" || c.TokenFile != ""
	switch {
	case hasURL && hasToken:
		bad(notify.SecretKey("token", c.TokenFile), "set url (incoming webhook) or token and room_id (bot), not both")
	case !hasURL && !hasToken:
		bad("url", "set url (incoming webhook) or token and room_id (bot)")
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
		s.endpoint = u
		if c.RoomID != "" {
			bad("room_id", "room_id is for bot mode (token); an incoming webhook posts to the space it was created for")
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
			s.auth = "Bearer " + tok.Reveal()
		}
		if c.RoomID == "" {
			bad("room_id", "room_id is required with token (the space's id, from GET /rooms)")
		}
		s.roomID = c.RoomID
		api := c.APIURL
		if api == "" {
			api = DefaultAPIURL
		}
		u, msg := notify.CheckWebhookURL(api)
		if msg != "" {
			bad("api_url", "api_url %s", msg)
			break
		}
		s.endpoint = u.JoinPath("messages")
	}

	s.tmpl = check.Template(c.TemplateFile)
	return s, check.Errors()
}
