package jira

import (
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
	check := notify.NewConfigCheck(env, d)
	bad := check.Bad
	s := &settings{
		project:           c.Project,
		issueType:         strings.TrimSpace(c.IssueType),
		resolveTransition: strings.TrimSpace(c.ResolveTransition),
	}

	if c.URL == "" {
		bad("url", "url is required: the Jira Cloud site, e.g. https://acme.atlassian.net")
	} else {
		s.base = check.ServiceBase("url", c.URL, "use user and api_token")
	}
	s.auth, s.secrets = check.BasicCredentials(notify.BasicCredentials{
		UserKey: "user", User: c.User, UserHint: "the e-mail of the Atlassian account the API token belongs to",
		SecretKey: "api_token", Secret: c.APIToken, SecretFile: c.APITokenFile, SecretHint: "an Atlassian API token of user",
	})
	check.Cleartext("url", s.base, "user and api_token")

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

	s.tmpl = check.Template(c.TemplateFile)
	return s, check.Errors()
}
