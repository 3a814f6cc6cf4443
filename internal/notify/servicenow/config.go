package servicenow

import (
	"net/url"
	"regexp"
	"sort"
	"text/template"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/notify"
)

// Defaults (SPEC 5; close_code and resolve_state extend it).
const (
	DefaultTable        = "incident"
	DefaultCloseCode    = "Solved (Permanently)"
	DefaultResolveState = "6" // incident: Resolved
)

// Config is the servicenow destination's own keys.
type Config struct {
	// InstanceURL is the instance root, e.g. https://acme.service-now.com.
	InstanceURL  string        `yaml:"instance_url"`
	Username     string        `yaml:"username"`
	Password     config.Secret `yaml:"password"`
	PasswordFile string        `yaml:"password_file"`
	Table        string        `yaml:"table"`
	// AssignmentGroup is the group's name or sys_id.
	AssignmentGroup string `yaml:"assignment_group"`
	// Fields are extra fields set on every new record (caller_id,
	// contact_type, a subcategory…); they override nocbridge's defaults.
	Fields    map[string]string `yaml:"fields"`
	CloseCode string            `yaml:"close_code"`
	// ResolveState is the state value that means resolved in Table (6 for
	// incident); tables with another state model set theirs.
	ResolveState string `yaml:"resolve_state"`
	// TemplateFile, when set, renders the description of a new record and
	// the close notes of a resolved one.
	TemplateFile string `yaml:"template_file"`
}

// settings is a validated Config with its secret resolved and its template
// parsed.
type settings struct {
	base            *url.URL // instance root, without a trailing slash
	auth            string   // the full Authorization header value
	secrets         []string // what redact removes: password, encoded credentials
	table           string
	assignmentGroup string
	fields          map[string]string
	closeCode       string
	resolveState    string
	tmpl            *template.Template // nil: the default text
}

var (
	tableRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	fieldRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
)

// reservedFields are set by nocbridge itself: correlation finds the record
// again (dedup and resolve), the others have their own keys.
var reservedFields = map[string]string{
	"correlation_id":      "nocbridge keeps the alert's instance id there to find the record again",
	"correlation_display": "nocbridge keeps the alert's instance id there to find the record again",
	"sys_id":              "it is ServiceNow's record id",
	"active":              "ServiceNow derives it from state",
	"state":               "new records take the table's default state; set resolve_state for the resolved value",
	"close_code":          "use the close_code key",
	"close_notes":         "close notes are the resolve text (template_file renders them)",
	"assignment_group":    "use the assignment_group key",
	"description":         "use template_file to change the description",
}

func (c *Config) validate(env notify.Env, d config.Destination) (*settings, config.Errors) {
	check := notify.NewConfigCheck(env, d)
	bad := check.Bad
	s := &settings{
		table:           c.Table,
		assignmentGroup: c.AssignmentGroup,
		closeCode:       c.CloseCode,
		resolveState:    c.ResolveState,
		fields:          map[string]string{},
	}

	if c.InstanceURL == "" {
		bad("instance_url", "instance_url is required, e.g. https://acme.service-now.com")
	} else {
		s.base = check.ServiceBase("instance_url", c.InstanceURL, "use username and password")
	}
	s.auth, s.secrets = check.BasicCredentials(notify.BasicCredentials{
		UserKey: "username", User: c.Username, UserHint: "a ServiceNow user with the itil role (or table rights)",
		SecretKey: "password", Secret: c.Password, SecretFile: c.PasswordFile,
	})
	check.Cleartext("instance_url", s.base, "username and password")

	if s.table == "" {
		s.table = DefaultTable
	} else if !tableRE.MatchString(s.table) {
		bad("table", "table %q: want a table name such as incident or u_network_incident", s.table)
	}
	if s.closeCode == "" {
		s.closeCode = DefaultCloseCode
	}
	if s.resolveState == "" {
		s.resolveState = DefaultResolveState
	}

	names := make([]string, 0, len(c.Fields))
	for k := range c.Fields {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		switch why, reserved := reservedFields[k]; {
		case !fieldRE.MatchString(k):
			bad("fields."+k, "fields: %q is not a ServiceNow field name (lower case, digits, _)", k)
		case reserved:
			bad("fields."+k, "fields: %s cannot be set here: %s", k, why)
		default:
			s.fields[k] = c.Fields[k]
		}
	}

	s.tmpl = check.Template(c.TemplateFile)
	return s, check.Errors()
}
