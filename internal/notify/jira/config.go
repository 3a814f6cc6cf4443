package jira

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"text/template"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/notify"
)

// Defaults (SPEC 5).
const (
	DefaultIssueType         = "Task"
	DefaultResolveTransition = "Done"
)

// Config is the jira destination's own keys.
type Config struct {
	// URL is the Jira Cloud site, e.g. https://acme.atlassian.net.
	URL string `yaml:"url"`
	// User is the Atlassian account e-mail the API token belongs to.
	User         string        `yaml:"user"`
	APIToken     config.Secret `yaml:"api_token"`
	APITokenFile string        `yaml:"api_token_file"`
	// Project is the project key (NOC), not its name.
	Project   string `yaml:"project"`
	IssueType string `yaml:"issue_type"`
	// ResolveTransition names the workflow transition (or its target
	// status) that resolves an issue, matched case-insensitively.
	ResolveTransition string `yaml:"resolve_transition"`
	// TemplateFile, when set, renders the issue description of a firing
	// alert and the comment of a resolved one.
	TemplateFile string `yaml:"template_file"`
}

// settings is a validated Config with its secret resolved and its template
// parsed.
type settings struct {
	base              *url.URL // site root, without a trailing slash
	auth              string   // the full Authorization header value
	secrets           []string // what redact removes: token, encoded credentials
	project           string
	issueType         string
	resolveTransition string
	tmpl              *template.Template // nil: the default text
}

// projectKeyRE is Jira Cloud's project key rule: an upper-case letter, then
// upper-case letters, digits or underscores.
var projectKeyRE = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)

func (c *Config) validate(env notify.Env, d config.Destination) (*settings, config.Errors) {
	var errs config.Errors
	bad := func(path, format string, args ...any) {
		errs = append(errs, notify.ConfigError(env, d, path, format, args...))
	}
	s := &settings{
		project:           c.Project,
		issueType:         strings.TrimSpace(c.IssueType),
		resolveTransition: strings.TrimSpace(c.ResolveTransition),
	}

	if c.URL == "" {
		bad("url", "url is required: the Jira Cloud site, e.g. https://acme.atlassian.net")
	} else if u, msg := parseEndpoint(c.URL); msg != "" {
		bad("url", "url %s", msg)
	} else {
		s.base = u
	}

	tokPath := "api_token"
	if c.APITokenFile != "" {
		tokPath = "api_token_file"
	}
	tok, err := config.ResolveSecret(c.APIToken, c.APITokenFile, env.BaseDir)
	switch {
	case err != nil:
		bad(tokPath, "api_token: %v", err)
	case tok == "":
		bad(tokPath, "api_token (or api_token_file) is required: an Atlassian API token of user")
	}
	switch {
	case c.User == "":
		bad("user", "user is required: the e-mail of the Atlassian account the API token belongs to")
	case strings.Contains(c.User, ":"):
		bad("user", "user must not contain ':'")
	case err == nil && tok != "":
		r := http.Request{Header: http.Header{}}
		r.SetBasicAuth(c.User, tok.Reveal())
		s.auth = r.Header.Get("Authorization")
		s.secrets = []string{tok.Reveal(), strings.TrimPrefix(s.auth, "Basic ")}
	}

	switch {
	case c.Project == "":
		bad("project", "project is required: the project key, e.g. NOC")
	case !projectKeyRE.MatchString(c.Project):
		bad("project", "project %q: want the project key (upper-case letters, digits, _), e.g. NOC", c.Project)
	}
	if s.issueType == "" {
		s.issueType = DefaultIssueType
	}
	if s.resolveTransition == "" {
		s.resolveTransition = DefaultResolveTransition
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
		return nil, notify.RedactURL(u) + ": must not hold credentials (use user and api_token)"
	case u.RawQuery != "" || u.Fragment != "":
		return nil, notify.RedactURL(u) + ": must not have a query or fragment"
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, ""
}
