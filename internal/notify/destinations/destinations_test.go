package destinations

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/notify"
	lognotify "github.com/nocbridge/nocbridge/internal/notify/log"
	"github.com/nocbridge/nocbridge/internal/notify/webhook"
)

// parse reads a destinations list as the config loader would.
func parse(t *testing.T, src string) []config.Destination {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	var out []config.Destination
	for _, n := range doc.Content[0].Content {
		d := config.Destination{Node: n, Line: n.Line}
		for i := 0; i+1 < len(n.Content); i += 2 {
			switch n.Content[i].Value {
			case "name":
				d.Name = n.Content[i+1].Value
			case "type":
				d.Type = n.Content[i+1].Value
			case "proxy_url":
				d.ProxyURL = n.Content[i+1].Value
			}
		}
		out = append(out, d)
	}
	return out
}

func TestTypes(t *testing.T) {
	got := Types()
	if !slices.Equal(got, []string{"discord", "jira", "log", "opsgenie", "pagerduty", "servicenow", "slack", "teams", "webex", "webhook"}) {
		t.Fatalf("Types() = %v", got)
	}
}

func TestBuild(t *testing.T) {
	dir := t.TempDir()
	var hits int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	ds := parse(t, `
- name: noc-log
  type: log
  path: out.jsonl
- name: itsm-hook
  type: webhook
  url: `+srv.URL+`
`)
	env := notify.Env{ExternalURL: "http://127.0.0.1:9720", UserAgent: "nocbridge/test", ConfigFile: "c.yaml", BaseDir: dir}
	ev := event.Sample("", time.Unix(1763840000, 0))
	for _, d := range ds {
		n, err := Build(d, env)
		if err != nil {
			t.Fatalf("Build %s: %v", d.Name, err)
		}
		switch d.Type {
		case "log":
			if _, ok := n.(*lognotify.Notifier); !ok {
				t.Fatalf("log built %T", n)
			}
			defer n.(*lognotify.Notifier).Close()
		case "webhook":
			if _, ok := n.(*webhook.Notifier); !ok {
				t.Fatalf("webhook built %T", n)
			}
		}
		if err := n.Send(context.Background(), notify.Notification{ID: ev.NotificationID(d.Name), Event: ev, Attempt: 1}); err != nil {
			t.Fatalf("Send via %s: %v", d.Name, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "out.jsonl")); !strings.Contains(string(b), `"destination":"noc-log"`) {
		t.Errorf("log destination wrote %q", b)
	}
	if hits != 1 {
		t.Errorf("webhook server got %d requests", hits)
	}
}

func TestBuildErrors(t *testing.T) {
	ds := parse(t, `
- name: x
  type: foo
- name: y
- name: z
  type: webhook
  url: http://h/
  proxy_url: ftp://proxy:3128
- name: w
  type: webhook
  ulr: http://h/
`)
	want := []string{
		`c.yaml:2: destination "x": unknown type "foo" (known: discord, jira, log, opsgenie, pagerduty, servicenow, slack, teams, webex, webhook)`,
		`c.yaml:4: destination "y": type is required (known: discord, jira, log, opsgenie, pagerduty, servicenow, slack, teams, webex, webhook)`,
		`c.yaml:5: destination "z": proxy_url ftp://proxy:3128: scheme must be http, https or socks5`,
		`c.yaml:11: destination "w": unknown key "ulr"`,
	}
	for i, d := range ds {
		_, err := Build(d, notify.Env{ConfigFile: "c.yaml", BaseDir: t.TempDir()})
		var es config.Errors
		if !errors.As(err, &es) {
			t.Fatalf("%s: got %v (%T), want config.Errors", d.Name, err, err)
		}
		if !strings.HasPrefix(es[0].Error(), want[i]) {
			t.Errorf("%s:\n got %s\nwant %s", d.Name, es[0], want[i])
		}
	}
}

// TestOnlyChatTypesTakeDigest: `digest` is a key of the four chat types
// (SPEC 11.5); every other type refuses it as an unknown key.
func TestOnlyChatTypesTakeDigest(t *testing.T) {
	chat := []string{"discord", "slack", "teams", "webex"}
	for _, typ := range Types() {
		ds := parse(t, "- name: d\n  type: "+typ+"\n  digest: false\n")
		_, err := Build(ds[0], notify.Env{ConfigFile: "c.yaml", BaseDir: t.TempDir()})
		refused := err != nil && strings.Contains(err.Error(), `c.yaml:3: destination "d": unknown key "digest"`)
		if refused == slices.Contains(chat, typ) {
			t.Errorf("%s: %v; want digest refused only by types other than %v", typ, err, chat)
		}
	}
}
