package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/nocbridge/nocbridge/internal/ctl"
	"github.com/nocbridge/nocbridge/internal/history"
	"github.com/nocbridge/nocbridge/internal/snmp/netsnmp"
)

// rigToken is http.token of historyRig's daemon (console logins, the CLI).
const rigToken = "history-rig-token"

// historyRig is a daemon taking SNMPv2c traps on loopback from its one
// device, 127.0.0.1, through the shipped rules, delivering to rcv; its API
// listens on a port known beforehand, for the CLI.
func historyRig(t *testing.T, rcv *receiver) (path string, port int) {
	t.Helper()
	port, err := netsnmp.FreeUDPPort()
	if err != nil {
		t.Fatal(err)
	}
	rulesDir, err := filepath.Abs("../../rules")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path = filepath.Join(dir, "nocbridge.yaml")
	cfg := fmt.Sprintf(`state_dir: ./state
http: {listen: %s, token: %s}
rules: [%s/*.yaml]
history: {retention: 48h}
traps:
  listen: 127.0.0.1:%d
  communities: [public]
devices:
  - {name: dut, address: 127.0.0.1, site: Lab, role: access, icmp: {disabled: true}}
destinations:
  - name: hook
    type: webhook
    url: %s/hook
    secret: %s
    retry: {initial: 50ms, max: 200ms, max_age: 1h}
subscriptions:
  - name: all
    destinations: [hook]
`, freePort(t), rigToken, rulesDir, port, rcv.srv.URL, testSigningSecret)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, port
}

// sendTrap sends an SNMPv2c trap (snmpTrapOID, then ifIndex when > 0)
// from 127.0.0.1.
func sendTrap(t *testing.T, port int, trapOID string, ifIndex int) {
	t.Helper()
	vars := []gosnmp.SnmpPDU{
		{Name: ".1.3.6.1.2.1.1.3.0", Type: gosnmp.TimeTicks, Value: uint32(4242)},
		{Name: ".1.3.6.1.6.3.1.1.4.1.0", Type: gosnmp.ObjectIdentifier, Value: trapOID},
	}
	if ifIndex > 0 {
		vars = append(vars, gosnmp.SnmpPDU{Name: fmt.Sprintf(".1.3.6.1.2.1.2.2.1.1.%d", ifIndex), Type: gosnmp.Integer, Value: ifIndex})
	}
	p := &gosnmp.SnmpPacket{Version: gosnmp.Version2c, Community: "public", PDUType: gosnmp.SNMPv2Trap, RequestID: uint32(time.Now().UnixNano()), Variables: vars}
	b, err := p.MarshalMsg()
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

const (
	oidLinkDown  = ".1.3.6.1.6.3.1.1.5.3"
	oidLinkUp    = ".1.3.6.1.6.3.1.1.5.4"
	oidColdStart = ".1.3.6.1.6.3.1.1.5.1"

	oidAuthenticationFailure = ".1.3.6.1.6.3.1.1.5.5"
)

// alertPage is what /api/v1/alerts/{id} answers.
type alertPage struct {
	history.Alert
	Live json.RawMessage `json:"live"`
}

// getAlert reads /api/v1/alerts/{id}: its status code and the alert.
func getAlert(t *testing.T, a *App, id string) (int, alertPage) {
	t.Helper()
	resp, err := http.Get("http://" + a.HTTPAddr() + "/api/v1/alerts/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p alertPage
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode, p
}

// delivered200 says the timeline has a delivered attempt of status to
// hook answered 200.
func delivered200(p alertPage, status string) bool {
	return slices.ContainsFunc(p.Timeline, func(e history.Entry) bool {
		return e.Kind == history.KindAttempt && string(e.Status) == status && e.Destination == "hook" &&
			e.Result == "delivered" && e.HTTPStatus == 200 && e.Attempt == 1 && e.DurationMs > 0
	})
}

func kindsOf(p alertPage) []history.Kind {
	var out []history.Kind
	for _, e := range p.Timeline {
		out = append(out, e.Kind)
	}
	return out
}

// TestAlertHistoryAcrossRestart: an alert that fired and resolved, a
// one-shot event and an active alert each open at /api/v1/alerts/{id}
// with their timeline, the delivery attempts answered 200 by a real
// receiver included, and still do after a restart on the same state
// directory.
func TestAlertHistoryAcrossRestart(t *testing.T) {
	rcv := newReceiver(t, always(http.StatusOK))
	path, port := historyRig(t, rcv)
	a, stop := startApp(t, path)

	sendTrap(t, port, oidLinkDown, 3)
	first := rcv.waitFor(10*time.Second, "the active", func(ds []delivery) bool { return len(ds) >= 1 })[0]
	sendTrap(t, port, oidLinkUp, 3)
	rcv.waitFor(10*time.Second, "the resolve", func(ds []delivery) bool { return len(ds) >= 2 })
	sendTrap(t, port, oidColdStart, 0)
	oneShot := rcv.waitFor(10*time.Second, "the restart event", func(ds []delivery) bool { return len(ds) >= 3 })[2]
	sendTrap(t, port, oidLinkDown, 4)
	active := rcv.waitFor(10*time.Second, "the second active", func(ds []delivery) bool { return len(ds) >= 4 })[3]
	if first.Status != "active" || oneShot.EventID != "NETWORK-DEVICES-3-102" || active.Status != "active" {
		t.Fatalf("deliveries %+v", rcv.deliveries())
	}

	type want struct {
		id, status string
		kinds      []history.Kind // in order, attempts left out
		attempts   []string       // statuses with a delivered attempt answered 200
		live       bool
	}
	wants := []want{
		{first.InstanceID, history.StatusResolved, []history.Kind{history.KindActive, history.KindResolved}, []string{"active", "resolved"}, false},
		{oneShot.InstanceID, history.StatusEvent, []history.Kind{history.KindEvent}, []string{"active"}, false},
		{active.InstanceID, history.StatusActive, []history.Kind{history.KindActive}, []string{"active"}, true},
	}
	check := func(a *App, when string) map[string][]history.Entry {
		t.Helper()
		timelines := map[string][]history.Entry{}
		for _, w := range wants {
			var p alertPage
			deadline := time.Now().Add(10 * time.Second)
			for {
				code, got := getAlert(t, a, w.id)
				ok := code == 200 && got.Status == w.status
				for _, s := range w.attempts {
					ok = ok && delivered200(got, s)
				}
				if p = got; ok || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			var kinds []history.Kind
			for _, k := range kindsOf(p) {
				if k != history.KindAttempt {
					kinds = append(kinds, k)
				}
			}
			if p.Status != w.status || !slices.Equal(kinds, w.kinds) || (len(p.Live) > 0 && string(p.Live) != "null") != w.live {
				t.Errorf("%s: alert %s: status %q, transitions %v, live %s; want %q, %v, live %v", when, w.id, p.Status, kinds, p.Live, w.status, w.kinds, w.live)
			}
			for _, s := range w.attempts {
				if !delivered200(p, s) {
					t.Errorf("%s: alert %s: no delivered %s attempt answered 200: %+v", when, w.id, s, p.Timeline)
				}
			}
			if p.Event == nil || p.Event.InstanceID != w.id || p.Device != "dut" {
				t.Errorf("%s: alert %s: event %+v device %q", when, w.id, p.Event, p.Device)
			}
			timelines[w.id] = p.Timeline
		}
		if code, _ := getAlert(t, a, "00000000-0000-4000-8000-00000000dead"); code != http.StatusNotFound {
			t.Errorf("%s: unknown alert answered %d, want 404", when, code)
		}
		// Pages of alerts follow within a second (summaries are written
		// together).
		var page []history.Alert
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			getJSON(t, "http://"+a.HTTPAddr()+"/api/v1/history?device=dut", &page)
			if len(page) == 3 || time.Now().After(deadline) {
				break
			}
		}
		if len(page) != 3 {
			t.Errorf("%s: history of dut lists %d alerts, want 3", when, len(page))
		}
		return timelines
	}
	before := check(a, "running")
	stop()

	a, _ = startApp(t, path)
	after := check(a, "after a restart")
	for id, tl := range before {
		b1, _ := json.Marshal(tl)
		b2, _ := json.Marshal(after[id])
		if !bytes.Equal(b1, b2) {
			t.Errorf("alert %s: timeline changed across the restart:\nbefore %s\nafter  %s", id, b1, b2)
		}
	}
	var st history.Stats
	getJSON(t, "http://"+a.HTTPAddr()+"/api/v1/history/status", &st)
	if st.Retention != "48h0m0s" || st.Dropped[history.DropFull] != 0 {
		t.Errorf("history status %+v", st)
	}
}

// TestDLQListPages: `nocbridge dlq list --limit` pages the daemon's dead
// letters; the next page's command goes to stderr, none after the last.
func TestDLQListPages(t *testing.T) {
	rcv := newReceiver(t, always(http.StatusBadRequest))
	path, port := historyRig(t, rcv)
	a, _ := startApp(t, path)
	for i := 1; i <= 3; i++ {
		sendTrap(t, port, oidLinkDown, i)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var dls []json.RawMessage
		getJSON(t, "http://"+a.HTTPAddr()+"/api/v1/deadletters", &dls)
		if len(dls) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d dead letters after 10s, want 3", len(dls))
		}
		time.Sleep(50 * time.Millisecond)
	}
	list := func(cursor string) (ids []string, next string) {
		t.Helper()
		var out, info bytes.Buffer
		if err := ctl.DLQ(context.Background(), path, ctl.DLQCommand{Action: "list", Limit: 2, Cursor: cursor}, &out, &info); err != nil {
			t.Fatal(err)
		}
		var dls []struct{ ID string }
		if err := json.Unmarshal(out.Bytes(), &dls); err != nil {
			t.Fatalf("dlq list output is not one JSON array: %v\n%s", err, out.String())
		}
		for _, d := range dls {
			ids = append(ids, d.ID)
		}
		line := strings.TrimSpace(info.String())
		if line != "" {
			var ok bool
			if next, ok = strings.CutPrefix(line, "next page: nocbridge dlq list --limit 2 --cursor "); !ok {
				t.Fatalf("stderr %q", line)
			}
		}
		return ids, next
	}
	page1, next := list("")
	if len(page1) != 2 || next == "" {
		t.Fatalf("first page %v, next %q", page1, next)
	}
	page2, last := list(next)
	if len(page2) != 1 || last != "" || slices.Contains(page1, page2[0]) {
		t.Fatalf("second page %v (next %q) after %v", page2, last, page1)
	}
	var out, info bytes.Buffer
	err := ctl.DLQ(context.Background(), path, ctl.DLQCommand{Action: "list", Limit: 2, Cursor: "bogus"}, &out, &info)
	if err == nil || !strings.Contains(err.Error(), `"bogus" is not one a page of dead letters gave`) {
		t.Errorf("a bad cursor: %v", err)
	}
	// Each dead letter is in its alert's history too.
	var dls []struct {
		Event struct {
			InstanceID string `json:"instance_id"`
		} `json:"event"`
	}
	getJSON(t, "http://"+a.HTTPAddr()+"/api/v1/deadletters", &dls)
	// History is written behind, in batches paced under load: the entry
	// may come a moment after the dead letter.
	deadline = time.Now().Add(10 * time.Second)
	for {
		code, p := getAlert(t, a, dls[0].Event.InstanceID)
		if code == 200 && slices.ContainsFunc(p.Timeline, func(e history.Entry) bool {
			return e.Kind == history.KindDeadLetter && e.HTTPStatus == 400 && e.Destination == "hook"
		}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dead letter's alert %s after 10s: %d %+v", dls[0].Event.InstanceID, code, p.Timeline)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
