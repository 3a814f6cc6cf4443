package notify

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/tmpl"
)

// TemplateData is what every destination's `template_file` sees: the event's
// fields (.Name, .Severity, .Device.Name, .Status…), plus the notification
// id, the alert link and the DNA Center payload as .DNAC.
type TemplateData struct {
	event.Event
	WebhookID string
	AlertURL  string
	DNAC      event.DNACPayload
}

// NewTemplateData builds the data a template renders for one notification.
func NewTemplateData(ev event.Event, id, externalURL string) TemplateData {
	return TemplateData{Event: ev, WebhookID: id, AlertURL: ev.AlertURL(externalURL), DNAC: ev.DNAC(externalURL)}
}

// templateFuncs: json makes a value safe to embed in a JSON body
// ({{ json .Description }}).
var templateFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"upper": strings.ToUpper,
	"lower": strings.ToLower,
}

// SampleTime is the fixed timestamp of the sample event templates are
// checked against, so checks are reproducible.
var SampleTime = time.Unix(1763840000, 0).UTC()

// LoadTemplate parses a template file (relative to env.BaseDir) and renders
// it once over a sample event, so both syntax errors and references to
// missing fields are load errors. Errors carry the template's own file and
// line ("template: name:LINE: …").
func LoadTemplate(file string, env Env) (*template.Template, error) {
	path := file
	if !filepath.IsAbs(path) {
		path = filepath.Join(env.BaseDir, path)
	}
	src, err := config.ReadFile(path, config.MaxSmallFile)
	if err != nil {
		return nil, err
	}
	t, err := template.New(filepath.Base(path)).Option("missingkey=error").Funcs(templateFuncs).Parse(string(src))
	if err != nil {
		return nil, err
	}
	tmpl.Bound(t)
	sample := event.Sample("", SampleTime)
	if _, err := RenderTemplate(t, NewTemplateData(sample, "msg_sample", env.ExternalURL)); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// RenderTemplate executes t (from LoadTemplate) over data within the
// render budget (package tmpl).
func RenderTemplate(t *template.Template, data TemplateData) ([]byte, error) {
	return tmpl.Execute(t, data)
}
