package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/testutil/logtest"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/snmp/netsnmp"
	"github.com/nocbridge/nocbridge/internal/webhooksig"
)

// The credentials configured for the emulated services. None of them may
// show up in the daemon's log or API output.
const (
	e2eHookBearer   = "hookBearerQ7v2Lm"
	e2eSlackToken   = "xoxb-1111-2222-slackSecretZ9"
	e2eWebexToken   = "webexBotTokenK3p8Rw"
	e2eTeamsSig     = "teamsSigSecretT4n6Yc"
	e2eDiscordToken = "discordWebhookTokenD5x1"
	e2ePDRoutingKey = "pdRoutingKey0123456789abcdefABCD" // 32 characters, like a real integration key
	e2eSnowUser     = "svc.nocbridge"
	e2eSnowPassword = "snowPassw0rdS8j2"
	e2eJiraUser     = "noc-bot@example.com"
	e2eJiraToken    = "jiraApiTokenJ6h3Ve"
	e2eOpsgenieKey  = "opsgenieKeyO2m7Bx"
)

// e2eSecrets names every configured credential, with the encoded forms a
// leak could take, for the leak checks and for masking failure output.
var e2eSecrets = map[string]string{
	"webhook bearer token":         e2eHookBearer,
	"webhook signing secret":       strings.TrimPrefix(testSigningSecret, "whsec_"),
	"slack bot token":              e2eSlackToken,
	"webex bot token":              e2eWebexToken,
	"teams workflow signature":     e2eTeamsSig,
	"discord webhook token":        e2eDiscordToken,
	"pagerduty routing key":        e2ePDRoutingKey,
	"servicenow password":          e2eSnowPassword,
	"servicenow basic credentials": basicCredentials(e2eSnowUser, e2eSnowPassword),
	"jira api token":               e2eJiraToken,
	"jira basic credentials":       basicCredentials(e2eJiraUser, e2eJiraToken),
	"opsgenie api key":             e2eOpsgenieKey,
}

func basicCredentials(user, password string) string {
	r := http.Request{Header: http.Header{}}
	r.SetBasicAuth(user, password)
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Basic ")
}

// redactSecrets masks every configured credential in s.
func redactSecrets(s string) string {
	for name, secret := range e2eSecrets {
		s = strings.ReplaceAll(s, secret, "<"+name+">")
	}
	return s
}

// Fixed answers of the emulated services, so the follow-up requests can be
// asserted exactly.
const (
	e2eSlackChannelID = "C1"
	e2eSlackTS        = "1.1"
	e2eWebexRoom      = "Y2lzY29zcGFyazovL3VzL1JPT00vbm9j"
	e2eSnowSysID      = "9d385017c611228701d22104cc95c371"
	e2eJiraKey        = "NOC-1"
	e2eJiraDoneID     = "31"
)

// TestEveryDestinationTypeClosesTheLoop is issue 4's "done when": one
// interface going down and coming back, reported by real net-snmp traps to
// the real daemon with the shipped rules, produces the right requests in
// each of the nine services' APIs (emulated by one HTTP server that answers
// as the services do), and the resolve closes the loop where the service has
// one. Nothing is dead-lettered and no configured secret reaches the log or
// the API.
func TestEveryDestinationTypeClosesTheLoop(t *testing.T) {
	if _, err := exec.LookPath("snmptrap"); err != nil {
		skipOrFail(t, "needs net-snmp's snmptrap: %v", err)
	}
	port, err := netsnmp.FreeUDPPort()
	if err != nil {
		t.Fatal(err)
	}
	rulesDir, err := filepath.Abs("../../rules")
	if err != nil {
		t.Fatal(err)
	}
	svc := newFakeServices(t)
	dir := t.TempDir()
	cfgPath, destinations := writeEveryDestinationConfig(t, dir, rulesDir, port, svc.srv.URL)

	// The log stays out of the test output unless the test fails, and then
	// with the secrets masked.
	logs := &logtest.Logs{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("daemon log:\n%s", redactSecrets(logs.String()))
		}
	})
	a, stop := startAppWithLogger(t, cfgPath, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	api := "http://" + a.HTTPAddr()

	const (
		linkDown   = ".1.3.6.1.6.3.1.1.5.3"
		linkUp     = ".1.3.6.1.6.3.1.1.5.4"
		ifIndex7   = ".1.3.6.1.2.1.2.2.1.1.7"
		phaseLimit = 10 * time.Second
	)
	sendTrap := func(trapOID string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		args := []string{"-v", "2c", "-c", "public", fmt.Sprintf("127.0.0.1:%d", port), "", trapOID, ifIndex7, "i", "7"}
		if out, err := exec.CommandContext(ctx, "snmptrap", args...).CombinedOutput(); err != nil {
			t.Fatalf("snmptrap %v: %v\n%s", args, err, out)
		}
	}

	// Firing: wait until every destination reports its active notification
	// delivered, before the linkUp, so each service's requests split cleanly
	// into firing and resolve.
	start := time.Now()
	sendTrap(linkDown)
	fired := waitDelivered(t, api, destinations, event.StatusActive, phaseLimit)
	id := fired["dnac-hook"].InstanceID
	if id == "" {
		t.Fatal("the webhook's delivered attempt has no instance_id")
	}
	for name, at := range fired {
		if at.InstanceID != id || at.EventID != "NETWORK-INTERFACES-2-301" {
			t.Fatalf("destination %s delivered instance %s of %s; want %s of NETWORK-INTERFACES-2-301", name, at.InstanceID, at.EventID, id)
		}
	}
	expect := serviceExpectations(t, id)
	for _, e := range expect {
		svc.check(t, e.service, e.firing)
	}

	sendTrap(linkUp)
	resolved := waitDelivered(t, api, destinations, event.StatusResolved, phaseLimit)
	for name, at := range resolved {
		if at.InstanceID != id {
			t.Errorf("destination %s resolved instance %s, want %s", name, at.InstanceID, id)
		}
	}
	for _, e := range expect {
		svc.check(t, e.service, append(slices.Clone(e.firing), e.resolve...))
	}
	if extra := svc.unexpected(expect); len(extra) > 0 {
		t.Errorf("requests to no known service: %s", redactSecrets(strings.Join(extra, "; ")))
	}
	checkLogDestination(t, filepath.Join(dir, "notifications.jsonl"), id)

	// Exactly one attempt per notification: the emulated services never
	// fail, so a retry would mean a notifier misread a success.
	var deliveries []byte
	var byDest map[string]struct {
		Pending int          `json:"pending"`
		Recent  []e2eAttempt `json:"recent"`
	}
	// An attempt shows in recent a moment before its item leaves pending.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		deliveries = getBody(t, api+"/api/v1/deliveries")
		if err := json.Unmarshal(deliveries, &byDest); err != nil {
			t.Fatalf("/api/v1/deliveries: %v", err)
		}
		empty := true
		for _, name := range destinations {
			empty = empty && byDest[name].Pending == 0
		}
		if empty || time.Now().After(deadline) {
			break // the checks below say what is left
		}
	}
	for _, name := range destinations {
		d := byDest[name]
		if d.Pending != 0 || len(d.Recent) != 2 {
			t.Errorf("destination %s: pending %d, %d recent attempts %s; want 0 pending and exactly the active and the resolved",
				name, d.Pending, len(d.Recent), redactSecrets(fmt.Sprintf("%+v", d.Recent)))
			continue
		}
		for _, at := range d.Recent {
			if at.Attempt != 1 || at.Result != "delivered" || at.Error != "" {
				t.Errorf("destination %s: attempt %s; want each notification delivered on its first attempt", name, redactSecrets(fmt.Sprintf("%+v", at)))
			}
		}
	}
	if dead := bytes.TrimSpace(getBody(t, api+"/api/v1/deadletters")); string(dead) != "[]" {
		t.Errorf("dead letters %s; want none", redactSecrets(string(dead)))
	}
	var alerts []struct {
		EventID string `json:"event_id"`
		State   string `json:"state"`
	}
	getJSON(t, api+"/api/v1/alerts", &alerts)
	for _, al := range alerts {
		if al.State == "firing" {
			t.Errorf("alert %s still firing after the linkUp", al.EventID)
		}
	}

	stop() // flushes the shutdown lines into the log before it is searched
	for name, secret := range e2eSecrets {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the daemon's log contains the %s", name)
		}
		if bytes.Contains(deliveries, []byte(secret)) {
			t.Errorf("/api/v1/deliveries contains the %s", name)
		}
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("down and up through ten destinations took %v, want < 15s", took)
	}
}

// writeEveryDestinationConfig writes a config with one destination of each
// type, all but log pointing at the emulated services under base, and one
// subscription sending everything everywhere. It returns the config's path
// and the destination names.
func writeEveryDestinationConfig(t *testing.T, dir, rulesDir string, trapPort int, base string) (string, []string) {
	t.Helper()
	dests := []struct{ name, keys string }{
		{"dnac-hook", fmt.Sprintf("type: webhook\nurl: %s/hook/dnac\nbearer_token: %s\nsecret: %s", base, e2eHookBearer, testSigningSecret)},
		{"noc-slack", fmt.Sprintf("type: slack\ntoken: %s\nchannel: \"#noc\"\napi_url: %s/slack/api", e2eSlackToken, base)},
		{"noc-webex", fmt.Sprintf("type: webex\ntoken: %s\nroom_id: %s\napi_url: %s/webex/v1", e2eWebexToken, e2eWebexRoom, base)},
		{"noc-teams", fmt.Sprintf("type: teams\nurl: \"%s/teams/workflows/7f3a/triggers/manual/paths/invoke?api-version=1&sig=%s\"", base, e2eTeamsSig)},
		{"noc-discord", fmt.Sprintf("type: discord\nurl: %s/discord/api/webhooks/42/%s", base, e2eDiscordToken)},
		{"noc-pager", fmt.Sprintf("type: pagerduty\nurl: %s/pagerduty/v2/enqueue\nrouting_key: %s", base, e2ePDRoutingKey)},
		{"noc-snow", fmt.Sprintf("type: servicenow\ninstance_url: %s/servicenow\nusername: %s\npassword: %s", base, e2eSnowUser, e2eSnowPassword)},
		{"noc-jira", fmt.Sprintf("type: jira\nurl: %s/jira\nuser: %s\napi_token: %s\nproject: NOC", base, e2eJiraUser, e2eJiraToken)},
		{"noc-opsgenie", fmt.Sprintf("type: opsgenie\napi_url: %s/opsgenie\napi_key: %s", base, e2eOpsgenieKey)},
		{"noc-log", "type: log\npath: notifications.jsonl"},
	}
	var b strings.Builder
	fmt.Fprintf(&b, `state_dir: ./state
external_url: http://nocbridge.test:9720
http:
  listen: 127.0.0.1:0
rules: [%s/*.yaml]
traps:
  listen: 127.0.0.1:%d
  communities: [public]
devices:
  - name: edge-sw1
    address: 127.0.0.1
    site: Branch
    role: access
    icmp: {disabled: true}
destinations:
`, rulesDir, trapPort)
	names := make([]string, 0, len(dests))
	for _, d := range dests {
		names = append(names, d.name)
		fmt.Fprintf(&b, "  - name: %s\n", d.name)
		for line := range strings.SplitSeq(d.keys+"\ntimeout: 2s\nretry: {initial: 50ms, max: 200ms}", "\n") {
			fmt.Fprintf(&b, "    %s\n", line)
		}
	}
	fmt.Fprintf(&b, "subscriptions:\n  - name: everything-everywhere\n    destinations: [%s]\n", strings.Join(names, ", "))
	path := filepath.Join(dir, "nocbridge.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, names
}

// e2eAttempt is one entry of /api/v1/deliveries.
type e2eAttempt struct {
	InstanceID string       `json:"instance_id"`
	EventID    string       `json:"event_id"`
	Status     event.Status `json:"status"`
	Attempt    int          `json:"attempt"`
	Result     string       `json:"result"`
	Error      string       `json:"error"`
}

// waitDelivered polls /api/v1/deliveries until every destination has
// delivered a notification with this status, and returns those attempts. A
// dead letter fails at once, with its reason.
func waitDelivered(t *testing.T, api string, destinations []string, status event.Status, limit time.Duration) map[string]e2eAttempt {
	t.Helper()
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		var byDest map[string]struct {
			Recent []e2eAttempt `json:"recent"`
		}
		getJSON(t, api+"/api/v1/deliveries", &byDest)
		got := map[string]e2eAttempt{}
		for _, name := range destinations {
			for _, at := range byDest[name].Recent {
				if at.Result == "dead" {
					t.Fatalf("destination %s dead-lettered the %s notification: %s", name, at.Status, redactSecrets(at.Error))
				}
				if at.Status == status && at.Result == "delivered" {
					got[name] = at
				}
			}
		}
		if len(got) == len(destinations) {
			return got
		}
		if time.Now().After(deadline) {
			var missing []string
			for _, name := range destinations {
				if _, ok := got[name]; !ok {
					missing = append(missing, redactSecrets(fmt.Sprintf("%s %+v", name, byDest[name].Recent)))
				}
			}
			t.Fatalf("after %v no %s notification delivered to: %s", limit, status, strings.Join(missing, "; "))
		}
		<-tick.C
	}
}

// checkLogDestination reads the log destination's JSON lines: the active
// then the resolved notification of one instance.
func checkLogDestination(t *testing.T, path, id string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("log destination: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	want := []event.Status{event.StatusActive, event.StatusResolved}
	if len(lines) != len(want) {
		t.Fatalf("log destination wrote %d lines, want %d:\n%s", len(lines), len(want), raw)
	}
	for i, line := range lines {
		var rec struct {
			Status  event.Status `json:"status"`
			Payload struct {
				InstanceID string `json:"instanceId"`
			} `json:"payload"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log destination line %d: %v", i+1, err)
		}
		if rec.Status != want[i] || rec.Payload.InstanceID != id {
			t.Errorf("log destination line %d: %s of %s, want %s of %s", i+1, rec.Status, rec.Payload.InstanceID, want[i], id)
		}
	}
}

// --- what each service must see ---

// step is one request a service must receive, in order.
type step struct {
	method, path string
	// check asserts the request's query and body; auth and User-Agent are
	// checked for every request.
	check func(t *testing.T, c serviceCall)
}

type serviceExpectation struct {
	service         string // first path element on the emulator
	firing, resolve []step
}

// serviceExpectations lists, per service, the requests of the firing and of
// the resolve of alert instance id.
func serviceExpectations(t *testing.T, id string) []serviceExpectation {
	t.Helper()
	var hookActiveID string
	dnac := func(status string) func(*testing.T, serviceCall) {
		return func(t *testing.T, c serviceCall) {
			if err := webhooksig.Verify(testSigningSecret, c.Header, c.Body, time.Now(), 5*time.Minute); err != nil {
				t.Errorf("webhook %s: signature: %v", status, err)
			}
			var p struct {
				Version           string            `json:"version"`
				InstanceID        string            `json:"instanceId"`
				EventID           string            `json:"eventId"`
				Severity          int               `json:"severity"`
				Source            string            `json:"source"`
				Details           map[string]string `json:"details"`
				CiscoDnaEventLink string            `json:"ciscoDnaEventLink"`
			}
			decodeJSON(t, c, &p)
			if p.Version != "1.0.0" || p.InstanceID != id || p.EventID != "NETWORK-INTERFACES-2-301" || p.Severity != 2 || p.Source != "trap" ||
				p.Details["Assurance Issue Status"] != status || p.Details["Device Name"] != "edge-sw1" || p.Details["Device"] != "127.0.0.1" ||
				p.CiscoDnaEventLink != "http://nocbridge.test:9720/alerts/"+id {
				t.Errorf("webhook %s payload %s; want the DNA Center payload of %s, status %s", status, c.Body, id, status)
			}
			wid := c.Header.Get("webhook-id")
			switch {
			case status == "active":
				hookActiveID = wid
			case wid == "" || wid == hookActiveID:
				t.Errorf("webhook-id of the resolve %q; want its own, not the active's %q", wid, hookActiveID)
			}
		}
	}
	slackForm := func(what, channel, threadTS, ts, color, text string) func(*testing.T, serviceCall) {
		return func(t *testing.T, c serviceCall) {
			if ct := c.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
				t.Errorf("slack %s: Content-Type %q, want a form", what, ct)
			}
			form, err := url.ParseQuery(string(c.Body))
			if err != nil {
				t.Fatalf("slack %s: body is not a form: %v", what, err)
			}
			if form.Has("token") {
				t.Errorf("slack %s: the token is in the form body; it belongs in the Authorization header only", what)
			}
			if form.Get("channel") != channel || form.Get("thread_ts") != threadTS || form.Get("ts") != ts {
				t.Errorf("slack %s: channel %q thread_ts %q ts %q; want %q %q %q", what, form.Get("channel"), form.Get("thread_ts"), form.Get("ts"), channel, threadTS, ts)
			}
			if !strings.Contains(form.Get("text"), text) {
				t.Errorf("slack %s: text %q, want it to contain %q", what, form.Get("text"), text)
			}
			if color != "" && !strings.Contains(form.Get("attachments"), `"color":"`+color+`"`) {
				t.Errorf("slack %s: attachments %s; want colour %s", what, form.Get("attachments"), color)
			}
		}
	}
	webexMessage := func(title string) func(*testing.T, serviceCall) {
		return func(t *testing.T, c serviceCall) {
			var m struct{ RoomID, Markdown string }
			decodeJSON(t, c, &m)
			if m.RoomID != e2eWebexRoom || !strings.Contains(m.Markdown, "**"+title+"**") || !strings.Contains(m.Markdown, "ifIndex 7") {
				t.Errorf("webex message %+v; want room %s and a markdown titled %q about ifIndex 7", m, e2eWebexRoom, title)
			}
		}
	}
	teamsCard := func(title, style string) func(*testing.T, serviceCall) {
		return func(t *testing.T, c serviceCall) {
			var m struct {
				Type        string `json:"type"`
				Attachments []struct {
					ContentType string `json:"contentType"`
					Content     struct {
						Type string `json:"type"`
						Body []struct {
							Style string `json:"style"`
							Items []struct {
								Text string `json:"text"`
							} `json:"items"`
						} `json:"body"`
					} `json:"content"`
				} `json:"attachments"`
			}
			decodeJSON(t, c, &m)
			ok := m.Type == "message" && len(m.Attachments) == 1 && m.Attachments[0].ContentType == "application/vnd.microsoft.card.adaptive"
			if ok {
				card := m.Attachments[0].Content
				ok = card.Type == "AdaptiveCard" && len(card.Body) > 0 && card.Body[0].Style == style &&
					len(card.Body[0].Items) > 0 && card.Body[0].Items[0].Text == title
			}
			if !ok {
				t.Errorf("teams card %s; want an Adaptive Card titled %q in style %s", c.Body, title, style)
			}
		}
	}
	discordEmbed := func(title string, color int) func(*testing.T, serviceCall) {
		return func(t *testing.T, c serviceCall) {
			var m struct {
				Embeds []struct {
					Title  string `json:"title"`
					URL    string `json:"url"`
					Color  int    `json:"color"`
					Footer struct {
						Text string `json:"text"`
					} `json:"footer"`
				} `json:"embeds"`
			}
			decodeJSON(t, c, &m)
			if len(m.Embeds) != 1 || !strings.HasSuffix(m.Embeds[0].Title, title) || m.Embeds[0].Color != color ||
				!strings.HasSuffix(m.Embeds[0].Footer.Text, id) || m.Embeds[0].URL != "http://nocbridge.test:9720/alerts/"+id {
				t.Errorf("discord message %s; want one embed titled …%q, colour %#x, naming %s", c.Body, title, color, id)
			}
		}
	}
	pdEvent := func(action string) func(*testing.T, serviceCall) {
		return func(t *testing.T, c serviceCall) {
			var e struct {
				RoutingKey  string `json:"routing_key"`
				EventAction string `json:"event_action"`
				DedupKey    string `json:"dedup_key"`
				Payload     *struct {
					Summary   string `json:"summary"`
					Severity  string `json:"severity"`
					Source    string `json:"source"`
					Component string `json:"component"`
				} `json:"payload"`
			}
			decodeJSON(t, c, &e)
			if e.EventAction != action || e.DedupKey != id {
				t.Errorf("pagerduty event_action %q dedup_key %q; want %q with dedup_key %s", e.EventAction, e.DedupKey, action, id)
			}
			switch {
			case action == "trigger" && (e.Payload == nil || !strings.HasPrefix(e.Payload.Summary, "[P2] Interface down: edge-sw1") ||
				e.Payload.Severity != "error" || e.Payload.Source != "edge-sw1 (127.0.0.1)" || e.Payload.Component != "7"):
				t.Errorf("pagerduty trigger payload %+v; want summary [P2] Interface down…, severity error, source edge-sw1 (127.0.0.1), component 7", e.Payload)
			case action == "resolve" && e.Payload != nil:
				t.Errorf("pagerduty resolve carries a payload %+v; a resolve needs only the dedup_key", *e.Payload)
			}
		}
	}
	snowQuery := func(want string) func(*testing.T, serviceCall) {
		return func(t *testing.T, c serviceCall) {
			if got := c.Query.Get("sysparm_query"); got != want {
				t.Errorf("servicenow lookup sysparm_query %q, want %q", got, want)
			}
		}
	}
	snowFields := func(what string, want map[string]string, prefixes map[string]string) func(*testing.T, serviceCall) {
		return func(t *testing.T, c serviceCall) {
			var f map[string]string
			decodeJSON(t, c, &f)
			for k, v := range want {
				if f[k] != v {
					t.Errorf("servicenow %s: %s = %q, want %q", what, k, f[k], v)
				}
			}
			for k, p := range prefixes {
				if !strings.HasPrefix(f[k], p) {
					t.Errorf("servicenow %s: %s = %q, want it to start with %q", what, k, f[k], p)
				}
			}
		}
	}
	label := "nocbridge-" + id
	jiraSearch := func(t *testing.T, c serviceCall) {
		var q struct {
			JQL string `json:"jql"`
		}
		decodeJSON(t, c, &q)
		if want := `project = "NOC" AND labels = "` + label + `"`; q.JQL != want {
			t.Errorf("jira search jql %q, want %q", q.JQL, want)
		}
	}
	opsgenieCreate := func(t *testing.T, c serviceCall) {
		var a struct {
			Alias, Priority, Source, Entity, Message string
		}
		decodeJSON(t, c, &a)
		if a.Alias != id || a.Priority != "P2" || a.Source != "nocbridge" || a.Entity != "edge-sw1" || !strings.HasPrefix(a.Message, "[P2] Interface down") {
			t.Errorf("opsgenie create %+v; want alias %s, priority P2, source nocbridge, entity edge-sw1", a, id)
		}
	}

	discordPath := "/api/webhooks/42/" + e2eDiscordToken
	teamsPath := "/workflows/7f3a/triggers/manual/paths/invoke"
	snowTable := "/api/now/table/incident"
	jiraIssue := "/rest/api/3/issue/" + e2eJiraKey
	return []serviceExpectation{
		{service: "hook",
			firing:  []step{{"POST", "/dnac", dnac("active")}},
			resolve: []step{{"POST", "/dnac", dnac("resolved")}}},
		{service: "slack",
			firing: []step{{"POST", "/api/chat.postMessage", slackForm("post", "#noc", "", "", "#F2711C", "P2 Interface ifIndex 7 is down on edge-sw1")}},
			resolve: []step{
				{"POST", "/api/chat.postMessage", slackForm("threaded reply", e2eSlackChannelID, e2eSlackTS, "", "", "RESOLVED: Interface ifIndex 7 is down on edge-sw1")},
				{"POST", "/api/chat.update", slackForm("update", e2eSlackChannelID, "", e2eSlackTS, "#2EB67D", "RESOLVED: Interface ifIndex 7 is down on edge-sw1")},
			}},
		{service: "webex",
			firing:  []step{{"POST", "/v1/messages", webexMessage("P2 Interface ifIndex 7 is down on edge-sw1")}},
			resolve: []step{{"POST", "/v1/messages", webexMessage("RESOLVED: Interface ifIndex 7 is down on edge-sw1")}}},
		{service: "teams",
			firing:  []step{{"POST", teamsPath, teamsCard("P2 Interface ifIndex 7 is down on edge-sw1", "attention")}},
			resolve: []step{{"POST", teamsPath, teamsCard("RESOLVED: Interface ifIndex 7 is down on edge-sw1", "good")}}},
		{service: "discord",
			firing:  []step{{"POST", discordPath, discordEmbed("P2 Interface ifIndex 7 is down on edge-sw1", 0xF2711C)}},
			resolve: []step{{"POST", discordPath, discordEmbed("RESOLVED: Interface ifIndex 7 is down on edge-sw1", 0x2EB67D)}}},
		{service: "pagerduty",
			firing:  []step{{"POST", "/v2/enqueue", pdEvent("trigger")}},
			resolve: []step{{"POST", "/v2/enqueue", pdEvent("resolve")}}},
		{service: "servicenow",
			firing: []step{
				{"GET", snowTable, snowQuery("correlation_id=" + id + "^active=true")},
				{"POST", snowTable, snowFields("create",
					map[string]string{"correlation_id": id, "correlation_display": "nocbridge", "impact": "1", "urgency": "2", "cmdb_ci": "edge-sw1"},
					map[string]string{"short_description": "[P2] Interface down: edge-sw1"})},
			},
			resolve: []step{
				{"GET", snowTable, snowQuery("correlation_id=" + id + "^ORDERBYDESCsys_created_on")},
				{"PATCH", snowTable + "/" + e2eSnowSysID, snowFields("resolve",
					map[string]string{"state": "6", "close_code": "Solved (Permanently)"},
					map[string]string{"close_notes": "RESOLVED: edge-sw1 (127.0.0.1) interface ifIndex 7 is down"})},
			}},
		{service: "jira",
			firing: []step{
				{"POST", "/rest/api/3/search/jql", jiraSearch},
				{"POST", "/rest/api/3/issue", func(t *testing.T, c serviceCall) {
					var b struct {
						Fields struct {
							Project   struct{ Key string }  `json:"project"`
							IssueType struct{ Name string } `json:"issuetype"`
							Summary   string                `json:"summary"`
							Labels    []string              `json:"labels"`
						} `json:"fields"`
					}
					decodeJSON(t, c, &b)
					f := b.Fields
					if f.Project.Key != "NOC" || f.IssueType.Name != "Task" || !slices.Contains(f.Labels, label) || !strings.HasPrefix(f.Summary, "[P2] Interface down") {
						t.Errorf("jira create %+v; want a NOC Task labelled %s", f, label)
					}
				}},
			},
			resolve: []step{
				{"POST", "/rest/api/3/search/jql", jiraSearch},
				{"GET", jiraIssue + "/transitions", nil},
				{"POST", jiraIssue + "/comment", func(t *testing.T, c serviceCall) {
					if !bytes.Contains(c.Body, []byte(`"type":"doc"`)) || !bytes.Contains(c.Body, []byte("RESOLVED: edge-sw1")) {
						t.Errorf("jira comment %s; want an ADF document saying RESOLVED", c.Body)
					}
				}},
				{"POST", jiraIssue + "/transitions", func(t *testing.T, c serviceCall) {
					var b struct {
						Transition struct{ ID string } `json:"transition"`
					}
					decodeJSON(t, c, &b)
					if b.Transition.ID != e2eJiraDoneID {
						t.Errorf("jira transition %q, want %q (Done)", b.Transition.ID, e2eJiraDoneID)
					}
				}},
			}},
		{service: "opsgenie",
			firing: []step{{"POST", "/v2/alerts", opsgenieCreate}},
			resolve: []step{{"POST", "/v2/alerts/" + id + "/close", func(t *testing.T, c serviceCall) {
				var b struct{ Source, Note string }
				decodeJSON(t, c, &b)
				if c.Query.Get("identifierType") != "alias" || b.Source != "nocbridge" || !strings.HasPrefix(b.Note, "RESOLVED:") {
					t.Errorf("opsgenie close ?%s %+v; want identifierType=alias and a RESOLVED note", c.Query.Encode(), b)
				}
			}}}},
	}
}

func decodeJSON(t *testing.T, c serviceCall, v any) {
	t.Helper()
	if ct := c.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q, want application/json", c.Service, redactSecrets(c.Method+" "+c.Path), ct)
	}
	if err := json.Unmarshal(c.Body, v); err != nil {
		t.Fatalf("%s %s: body %s: %v", c.Service, redactSecrets(c.Method+" "+c.Path), redactSecrets(string(c.Body)), err)
	}
}

// --- the emulated services ---

// serviceCall is one request the emulated services received.
type serviceCall struct {
	Service string // first path element: hook, slack, webex, …
	Method  string
	Path    string // the rest of the path
	Query   url.Values
	Header  http.Header
	Body    []byte
	// Authorized is whether the request carried the configured credential.
	Authorized bool
}

// fakeServices is one HTTP server emulating the nine services just enough
// to answer each request as the real API would, with state where the
// notifier reads back what it created (ServiceNow records, Jira issues).
type fakeServices struct {
	srv *httptest.Server

	mu        sync.Mutex
	calls     []serviceCall
	incidents map[string]map[string]string // ServiceNow records by correlation_id
	issues    map[string]*fakeIssue        // Jira issues by label
}

type fakeIssue struct {
	key    string
	status string // To Do | Done
}

func newFakeServices(t *testing.T) *fakeServices {
	f := &fakeServices{
		incidents: map[string]map[string]string{},
		issues:    map[string]*fakeIssue{},
	}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

// authorized checks the credential each service expects.
func authorized(service string, r *http.Request, body []byte) bool {
	user, pass, basic := r.BasicAuth()
	switch service {
	case "hook":
		return r.Header.Get("Authorization") == "Bearer "+e2eHookBearer
	case "slack":
		return r.Header.Get("Authorization") == "Bearer "+e2eSlackToken
	case "webex":
		return r.Header.Get("Authorization") == "Bearer "+e2eWebexToken
	case "teams":
		return r.URL.Query().Get("sig") == e2eTeamsSig
	case "discord":
		return strings.HasSuffix(r.URL.Path, "/"+e2eDiscordToken)
	case "pagerduty":
		var e struct {
			RoutingKey string `json:"routing_key"`
		}
		return json.Unmarshal(body, &e) == nil && e.RoutingKey == e2ePDRoutingKey
	case "servicenow":
		return basic && user == e2eSnowUser && pass == e2eSnowPassword
	case "jira":
		return basic && user == e2eJiraUser && pass == e2eJiraToken
	case "opsgenie":
		return r.Header.Get("Authorization") == "GenieKey "+e2eOpsgenieKey
	}
	return false
}

func (f *fakeServices) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	service, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	c := serviceCall{Service: service, Method: r.Method, Path: "/" + rest, Query: r.URL.Query(),
		Header: r.Header.Clone(), Body: body, Authorized: authorized(service, r, body)}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)

	reply := func(status int, v any) {
		if v == nil {
			w.WriteHeader(status)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	if !c.Authorized {
		// As the services do: Slack says ok:false, the others 401. Either
		// is permanent, so a wrong credential also shows as a dead letter.
		if service == "slack" {
			reply(http.StatusOK, map[string]any{"ok": false, "error": "invalid_auth"})
			return
		}
		reply(http.StatusUnauthorized, map[string]string{"message": "unauthorized"})
		return
	}
	route := r.Method + " " + c.Path
	switch {
	case service == "hook" && route == "POST /dnac":
		reply(http.StatusNoContent, nil)
	case service == "slack" && (route == "POST /api/chat.postMessage" || route == "POST /api/chat.update"):
		reply(http.StatusOK, map[string]any{"ok": true, "channel": e2eSlackChannelID, "ts": e2eSlackTS})
	case service == "webex" && route == "POST /v1/messages":
		reply(http.StatusOK, map[string]string{"id": "Y2lzY29zcGFyazovL3VzL01FU1NBR0UvMQ", "roomId": e2eWebexRoom})
	case service == "teams" && route == "POST /workflows/7f3a/triggers/manual/paths/invoke":
		reply(http.StatusAccepted, nil)
	case service == "discord" && route == "POST /api/webhooks/42/"+e2eDiscordToken:
		reply(http.StatusNoContent, nil)
	case service == "pagerduty" && route == "POST /v2/enqueue":
		var e struct {
			DedupKey string `json:"dedup_key"`
		}
		_ = json.Unmarshal(body, &e)
		reply(http.StatusAccepted, map[string]string{"status": "success", "message": "Event processed", "dedup_key": e.DedupKey})
	case service == "servicenow":
		f.serveServiceNow(route, c, reply)
	case service == "jira":
		f.serveJira(route, c, reply)
	case service == "opsgenie" && r.Method == http.MethodPost &&
		(c.Path == "/v2/alerts" || strings.HasPrefix(c.Path, "/v2/alerts/") && strings.HasSuffix(c.Path, "/close")):
		// Opsgenie processes both asynchronously.
		reply(http.StatusAccepted, map[string]any{"result": "Request will be processed", "took": 0.01, "requestId": "43a29c5c-3dbf-4fa4-9c26-f4f71023e120"})
	default:
		reply(http.StatusNotFound, map[string]string{"message": "no such endpoint"})
	}
}

// serveServiceNow is the Table API of the incident table: lookups by
// correlation_id, create, and update by sys_id.
func (f *fakeServices) serveServiceNow(route string, c serviceCall, reply func(int, any)) {
	const table = "/api/now/table/incident"
	switch route {
	case "GET " + table:
		clauses := strings.Split(c.Query.Get("sysparm_query"), "^")
		corr, ok := strings.CutPrefix(clauses[0], "correlation_id=")
		result := []map[string]string{}
		if rec := f.incidents[corr]; ok && rec != nil && (!slices.Contains(clauses, "active=true") || rec["active"] == "true") {
			result = append(result, rec)
		}
		reply(http.StatusOK, map[string]any{"result": result})
	case "POST " + table:
		var fields map[string]string
		if json.Unmarshal(c.Body, &fields) != nil || fields["correlation_id"] == "" {
			reply(http.StatusBadRequest, map[string]any{"error": map[string]string{"message": "invalid record"}, "status": "failure"})
			return
		}
		rec := map[string]string{"sys_id": e2eSnowSysID, "number": "INC0010001", "state": "1", "active": "true"}
		f.incidents[fields["correlation_id"]] = rec
		reply(http.StatusCreated, map[string]any{"result": rec})
	case "PATCH " + table + "/" + e2eSnowSysID:
		var fields map[string]string
		_ = json.Unmarshal(c.Body, &fields)
		for _, rec := range f.incidents {
			if rec["sys_id"] == e2eSnowSysID {
				rec["state"] = fields["state"]
				reply(http.StatusOK, map[string]any{"result": rec})
				return
			}
		}
		reply(http.StatusNotFound, map[string]any{"error": map[string]string{"message": "No Record found"}, "status": "failure"})
	default:
		reply(http.StatusNotFound, map[string]any{"error": map[string]string{"message": "Requested URI does not represent any resource"}, "status": "failure"})
	}
}

var jqlLabel = regexp.MustCompile(`labels = "([^"]+)"`)

// serveJira is REST v3 for one project: search by label, create, and an
// issue's comments and transitions (To Do → Done).
func (f *fakeServices) serveJira(route string, c serviceCall, reply func(int, any)) {
	const issuePath = "/rest/api/3/issue/" + e2eJiraKey
	status := func(name string) map[string]any {
		category := "new"
		if name == "Done" {
			category = "done"
		}
		return map[string]any{"name": name, "statusCategory": map[string]string{"key": category}}
	}
	issue := func() *fakeIssue {
		for _, is := range f.issues {
			if is.key == e2eJiraKey {
				return is
			}
		}
		return nil
	}
	switch route {
	case "POST /rest/api/3/search/jql":
		var q struct {
			JQL string `json:"jql"`
		}
		_ = json.Unmarshal(c.Body, &q)
		issues := []map[string]any{}
		if m := jqlLabel.FindStringSubmatch(q.JQL); m != nil && f.issues[m[1]] != nil {
			is := f.issues[m[1]]
			issues = append(issues, map[string]any{"id": "10001", "key": is.key, "fields": map[string]any{"status": status(is.status)}})
		}
		reply(http.StatusOK, map[string]any{"issues": issues, "isLast": true})
	case "POST /rest/api/3/issue":
		var b struct {
			Fields struct {
				Labels []string `json:"labels"`
			} `json:"fields"`
		}
		_ = json.Unmarshal(c.Body, &b)
		for _, l := range b.Fields.Labels {
			f.issues[l] = &fakeIssue{key: e2eJiraKey, status: "To Do"}
		}
		reply(http.StatusCreated, map[string]string{"id": "10001", "key": e2eJiraKey, "self": f.srv.URL + "/jira/rest/api/3/issue/10001"})
	case "GET " + issuePath + "/transitions":
		reply(http.StatusOK, map[string]any{"transitions": []map[string]any{
			{"id": "21", "name": "Start Progress", "to": status("In Progress")},
			{"id": e2eJiraDoneID, "name": "Done", "to": status("Done")},
		}})
	case "POST " + issuePath + "/comment":
		reply(http.StatusCreated, map[string]string{"id": "10100"})
	case "POST " + issuePath + "/transitions":
		var b struct {
			Transition struct{ ID string } `json:"transition"`
		}
		_ = json.Unmarshal(c.Body, &b)
		if is := issue(); is != nil && b.Transition.ID == e2eJiraDoneID {
			is.status = "Done"
			reply(http.StatusNoContent, nil)
			return
		}
		reply(http.StatusBadRequest, map[string]any{"errorMessages": []string{"Transition id '" + b.Transition.ID + "' is not valid for this issue."}})
	default:
		reply(http.StatusNotFound, map[string]any{"errorMessages": []string{"Issue does not exist or you do not have permission to see it."}})
	}
}

// check asserts that service received exactly want, in order, each with its
// credential and the daemon's User-Agent.
func (f *fakeServices) check(t *testing.T, service string, want []step) {
	t.Helper()
	var got []serviceCall
	f.mu.Lock()
	for _, c := range f.calls {
		if c.Service == service {
			got = append(got, c)
		}
	}
	f.mu.Unlock()
	var gotRoutes, wantRoutes []string
	for _, c := range got {
		gotRoutes = append(gotRoutes, c.Method+" "+c.Path)
	}
	for _, s := range want {
		wantRoutes = append(wantRoutes, s.method+" "+s.path)
	}
	if !slices.Equal(gotRoutes, wantRoutes) {
		t.Fatalf("%s received\n  %s\nwant\n  %s", service, redactSecrets(strings.Join(gotRoutes, "\n  ")), redactSecrets(strings.Join(wantRoutes, "\n  ")))
	}
	for i, c := range got {
		if !c.Authorized {
			t.Errorf("%s %s: missing or wrong credentials", service, redactSecrets(gotRoutes[i]))
		}
		if ua := c.Header.Get("User-Agent"); ua != "nocbridge/test" {
			t.Errorf("%s %s: User-Agent %q, want nocbridge/test", service, redactSecrets(gotRoutes[i]), ua)
		}
		if want[i].check != nil {
			want[i].check(t, c)
		}
	}
}

// unexpected lists requests to services the expectations do not name.
func (f *fakeServices) unexpected(expect []serviceExpectation) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		if !slices.ContainsFunc(expect, func(e serviceExpectation) bool { return e.service == c.Service }) {
			out = append(out, c.Method+" /"+c.Service+c.Path)
		}
	}
	return out
}

// --- the daemon ---

// getBody returns the body of a 200 answer.
func getBody(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v %s", url, resp.Status, err, b)
	}
	return b
}
