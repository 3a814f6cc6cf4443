package notify

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/tmpl"
)

func TestDeviceLabel(t *testing.T) {
	tests := []struct {
		name string
		dev  inventory.Device
		want string
	}{
		{"name and address", inventory.Device{Name: "core-sw1", Address: "10.0.0.1"}, "core-sw1 (10.0.0.1)"},
		{"name only", inventory.Device{Name: "core-sw1"}, "core-sw1"},
		{"address only", inventory.Device{Address: "10.0.0.1"}, "10.0.0.1"},
		{"name is the address", inventory.Device{Name: "10.0.0.1", Address: "10.0.0.1"}, "10.0.0.1"},
		{"neither", inventory.Device{}, ""},
	}
	for _, tt := range tests {
		if got := DeviceLabel(tt.dev); got != tt.want {
			t.Errorf("%s: DeviceLabel = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestHeadlineAndTitle(t *testing.T) {
	ev := event.Event{Name: "Device unreachable", Severity: 1, Device: inventory.Device{Name: "core-sw1", Address: "10.0.0.1"}}
	tests := []struct {
		name, description, headline, title string
	}{
		{"device when no description", "", "[P1] Device unreachable: core-sw1 (10.0.0.1)", "[P1] Device unreachable: core-sw1 (10.0.0.1)"},
		{"description", "core-sw1 is unreachable", "[P1] Device unreachable: core-sw1 is unreachable", "[P1] Device unreachable: core-sw1 is unreachable"},
		{"multi-line description", "line one\n\tline  two ", "[P1] Device unreachable: line one\n\tline  two ", "[P1] Device unreachable: line one line two"},
	}
	for _, tt := range tests {
		ev.Description = tt.description
		if got := Headline(ev); got != tt.headline {
			t.Errorf("%s: Headline = %q, want %q", tt.name, got, tt.headline)
		}
		if got := Title(ev); got != tt.title {
			t.Errorf("%s: Title = %q, want %q", tt.name, got, tt.title)
		}
	}
}

func TestDescribe(t *testing.T) {
	base := event.Event{
		EventID: "NETWORK-DEVICES-1-101", Name: "Device unreachable", Severity: 1, Source: "icmp", Key: "eth0",
		Timestamp: time.Date(2025, 11, 22, 19, 33, 20, 0, time.UTC), Status: event.StatusActive,
		Device:  inventory.Device{Name: "core-sw1", Address: "10.0.0.1", Site: "HQ"},
		Details: map[string]string{"Loss Percent": "100", "Empty": ""},
	}
	resolved := base
	resolved.Status, resolved.Description = event.StatusResolved, "core-sw1 answers again"
	oneOff := base
	oneOff.Kind = "event"
	tests := []struct {
		name     string
		ev       event.Event
		alertURL string
		want     string
	}{
		{"active, relative link left out", base, "/alerts/x", "Device unreachable on core-sw1 (10.0.0.1)\n\n" +
			"Status: active\nSeverity: 1 (P1)\nEvent: Device unreachable (NETWORK-DEVICES-1-101)\nDevice: core-sw1 (10.0.0.1)\n" +
			"Site: HQ\nInstance: eth0\nSource: icmp\nSince: 2025-11-22T19:33:20Z\nLoss Percent: 100"},
		{"resolved with link", resolved, "https://noc.example/alerts/x", "RESOLVED: core-sw1 answers again\n\n" +
			"Status: resolved\nSeverity: 1 (P1)\nEvent: Device unreachable (NETWORK-DEVICES-1-101)\nDevice: core-sw1 (10.0.0.1)\n" +
			"Site: HQ\nInstance: eth0\nSource: icmp\nResolved at: 2025-11-22T19:33:20Z\nLoss Percent: 100\nAlert: https://noc.example/alerts/x"},
		{"one-off event", oneOff, "", "Device unreachable on core-sw1 (10.0.0.1)\n\n" +
			"Status: active\nSeverity: 1 (P1)\nEvent: Device unreachable (NETWORK-DEVICES-1-101)\nDevice: core-sw1 (10.0.0.1)\n" +
			"Site: HQ\nInstance: eth0\nSource: icmp\nTime: 2025-11-22T19:33:20Z\nLoss Percent: 100"},
	}
	for _, tt := range tests {
		if got := Describe(tt.ev, tt.alertURL); got != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, got, tt.want)
		}
	}
}

// bound is what LoadTemplate does to a template: bind it to the render budget.
func bound(t *template.Template) *template.Template { return tmpl.Bound(t) }

func TestPlainTextAndRenderText(t *testing.T) {
	nt := Notification{ID: "msg_1", Event: event.Event{Name: "High CPU", Severity: 2, Device: inventory.Device{Name: "sw1"}}}
	tmpl := bound(template.Must(template.New("t").Parse("\n  {{ .Name }} on {{ .Device.Name }} ({{ .WebhookID }})  \n")))
	tests := []struct {
		name string
		tmpl *template.Template
		want string
	}{
		{"template output trimmed", tmpl, "High CPU on sw1 (msg_1)"},
		{"default text", nil, Describe(nt.Event, "")},
	}
	for _, tt := range tests {
		got, err := PlainText(tt.tmpl, nt, "")
		if err != nil || got != tt.want {
			t.Errorf("%s: PlainText = %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
	failing := bound(template.Must(template.New("f").Option("missingkey=error").Parse("{{ .Nope }}")))
	if _, err := RenderText(failing, nt.Event, nt.ID, ""); err == nil {
		t.Error("RenderText: a failing template must return its error")
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"short", 10, "short"},
		{"exactly", 7, "exactly"},
		{"ünïcödé text", 5, "ünïc…"},
		{"abcdef", 1, "…"},
	}
	for _, tt := range tests {
		if got := Truncate(tt.in, tt.max); got != tt.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}

func TestExcerptAndOrDash(t *testing.T) {
	if got := Excerpt([]byte("  <html>bad gateway</html>\n")); got != "<html>bad gateway</html>" {
		t.Errorf("Excerpt trims: got %q", got)
	}
	for in, want := range map[string]string{"": "—", "HQ": "HQ"} {
		if got := OrDash(in); got != want {
			t.Errorf("OrDash(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEscapeEvent(t *testing.T) {
	ev := event.Event{
		Name: "a*b", Description: "*bold*", Key: "k*",
		Device:  inventory.Device{Name: "sw*1", Labels: map[string]string{"r*": "v*"}},
		Details: map[string]string{"d*": "x*"},
	}
	got := EscapeEvent(ev, func(s string) string { return strings.ReplaceAll(s, "*", `\*`) })
	if got.Name != `a\*b` || got.Description != `\*bold\*` || got.Key != `k\*` || got.Device.Name != `sw\*1` {
		t.Errorf("text fields not escaped: %+v", got)
	}
	if got.Device.Labels[`r\*`] != `v\*` || got.Details[`d\*`] != `x\*` {
		t.Errorf("maps not escaped: %v %v", got.Device.Labels, got.Details)
	}
	if ev.Name != "a*b" || ev.Details["d*"] != "x*" {
		t.Error("EscapeEvent modified its argument")
	}
	if got := EscapeEvent(event.Event{}, strings.ToUpper); got.Details != nil || got.Device.Labels != nil {
		t.Error("nil maps must stay nil")
	}
}

func TestChatText(t *testing.T) {
	dir := t.TempDir()
	tmplPath := filepath.Join(dir, "t.tmpl")
	if err := os.WriteFile(tmplPath, []byte("*{{ .Device.Name }}*: {{ .Description }}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tmpl, err := LoadTemplate(tmplPath, Env{BaseDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	esc := strings.NewReplacer("*", `\*`, "@", "@\u200b").Replace
	ev := event.Event{Name: "Down", Description: "core *down* @here", Device: inventory.Device{Name: "sw*1"}}
	for _, tc := range []struct {
		name string
		tmpl *template.Template
		want string
	}{
		{name: "description, escaped", want: `core \*down\* @` + "\u200b" + `here`},
		{name: "template markup kept, values escaped", tmpl: tmpl, want: `*sw\*1*: core \*down\* @` + "\u200b" + `here`},
	} {
		got, err := ChatText(tc.tmpl, Notification{ID: "msg_1", Event: ev}, "http://127.0.0.1:9720", esc)
		if err != nil || got != tc.want {
			t.Errorf("%s: ChatText = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}
