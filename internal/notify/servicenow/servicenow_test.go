package servicenow

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/notify"
	"github.com/nocbridge/nocbridge/internal/notify/notifytest"
)

const (
	snUser     = "svc.nocbridge"
	snPassword = "Sn0w-P4ss!word-7731"
)

func notification(ev event.Event) notify.Notification {
	return notify.Notification{ID: ev.NotificationID("snow"), Event: ev, Attempt: 1}
}

func snConfig(instanceURL, extra string) string {
	return "name: snow\ntype: servicenow\ninstance_url: " + instanceURL + "\nusername: " + snUser + "\npassword: " + snPassword + "\n" + extra
}

func newNotifier(t *testing.T, yamlSrc string, env notify.Env) *Notifier {
	t.Helper()
	n := notifytest.New[*Notifier](t, New, notifytest.Destination(t, yamlSrc), env)
	n.api.Now = func() time.Time { return notifytest.AttemptTime }
	return n
}

// fakeServiceNow is a Table API for one table: Basic auth, encoded queries
// (the operators nocbridge uses), sysparm_fields and sysparm_limit, and the
// service's error JSON.
type fakeServiceNow struct {
	*httptest.Server
	t *testing.T

	mu       sync.Mutex
	records  []map[string]string // creation order
	requests []seen
	// fail, when set and returning true, has answered the request itself.
	fail func(w http.ResponseWriter, r *http.Request) bool
	// dropCreateResponse makes the next POST create the record, then cut
	// the connection before answering: a lost response.
	dropCreateResponse bool
}

type seen struct {
	method, path string
	query        map[string]string
	body         []byte
}

func newFakeServiceNow(t *testing.T) *fakeServiceNow {
	f := &fakeServiceNow{t: t}
	f.Server = httptest.NewServer(http.HandlerFunc(f.handle))
	t.Cleanup(f.Close)
	return f
}

func snError(w http.ResponseWriter, status int, message, detail string) {
	b, _ := json.Marshal(map[string]any{"error": map[string]string{"message": message, "detail": detail}, "status": "failure"})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func snResult(w http.ResponseWriter, status int, result any) {
	b, _ := json.Marshal(map[string]any{"result": result})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func pick(rec map[string]string, fields string) map[string]string {
	if fields == "" {
		return rec
	}
	out := map[string]string{}
	for _, f := range strings.Split(fields, ",") {
		out[f] = rec[f]
	}
	return out
}

func (f *fakeServiceNow) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	q := map[string]string{}
	for k, v := range r.URL.Query() {
		q[k] = v[0]
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, seen{r.Method, r.URL.Path, q, body})
	if f.fail != nil && f.fail(w, r) {
		return
	}
	if u, p, ok := r.BasicAuth(); !ok || u != snUser || p != snPassword {
		snError(w, http.StatusUnauthorized, "User Not Authenticated", "Required to provide Auth information")
		return
	}
	if r.Header.Get("Accept") != "application/json" || r.Header.Get("User-Agent") != notifytest.UserAgent {
		f.t.Errorf("%s %s: Accept %q, User-Agent %q", r.Method, r.URL.Path, r.Header.Get("Accept"), r.Header.Get("User-Agent"))
	}
	if (r.Method == http.MethodPost || r.Method == http.MethodPatch) && r.Header.Get("Content-Type") != "application/json" {
		f.t.Errorf("%s without Content-Type application/json", r.Method)
	}
	const prefix = "/api/now/table/incident"
	sysID, hasID := strings.CutPrefix(r.URL.Path, prefix+"/")
	switch {
	case r.Method == http.MethodGet && r.URL.Path == prefix:
		f.query(w, q)
	case r.Method == http.MethodPost && r.URL.Path == prefix:
		var fields map[string]string
		if err := json.Unmarshal(body, &fields); err != nil {
			snError(w, http.StatusBadRequest, "Exception while reading request", "The payload is not valid JSON.")
			return
		}
		rec := map[string]string{}
		for k, v := range fields {
			rec[k] = v
		}
		n := len(f.records) + 1
		rec["sys_id"] = fmt.Sprintf("%032x", n)
		rec["number"] = fmt.Sprintf("INC%07d", 10000+n)
		rec["state"], rec["active"] = "1", "true"
		rec["sys_created_on"] = strconv.Itoa(n)
		f.records = append(f.records, rec)
		if f.dropCreateResponse {
			f.dropCreateResponse = false
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
			return
		}
		snResult(w, http.StatusCreated, pick(rec, q["sysparm_fields"]))
	case r.Method == http.MethodPatch && hasID:
		var fields map[string]string
		if err := json.Unmarshal(body, &fields); err != nil {
			snError(w, http.StatusBadRequest, "Exception while reading request", "The payload is not valid JSON.")
			return
		}
		for _, rec := range f.records {
			if rec["sys_id"] == sysID {
				for k, v := range fields {
					rec[k] = v
				}
				// The incident business rules: Closed (7) and Canceled
				// (8) deactivate, Resolved (6) stays active.
				if rec["state"] == "7" || rec["state"] == "8" {
					rec["active"] = "false"
				}
				snResult(w, http.StatusOK, pick(rec, q["sysparm_fields"]))
				return
			}
		}
		snError(w, http.StatusNotFound, "No Record found", "Record doesn't exist or ACL restricts the record retrieval")
	default:
		snError(w, http.StatusBadRequest, "Invalid request", r.Method+" "+r.URL.Path)
	}
}

// query evaluates the encoded query operators nocbridge sends.
func (f *fakeServiceNow) query(w http.ResponseWriter, q map[string]string) {
	var match []map[string]string
	var newestFirst bool
	conds := map[string]string{}
	for _, term := range strings.Split(q["sysparm_query"], "^") {
		if term == "ORDERBYDESCsys_created_on" {
			newestFirst = true
			continue
		}
		k, v, ok := strings.Cut(term, "=")
		if !ok || (k != "correlation_id" && k != "active") {
			f.t.Errorf("unexpected query term %q", term)
			snError(w, http.StatusBadRequest, "Invalid query", term)
			return
		}
		conds[k] = v
	}
	if conds["correlation_id"] == "" {
		f.t.Errorf("lookup without correlation_id: %q", q["sysparm_query"])
	}
	for _, rec := range f.records {
		ok := true
		for k, v := range conds {
			ok = ok && rec[k] == v
		}
		if ok {
			match = append(match, rec)
		}
	}
	if newestFirst {
		for i, j := 0, len(match)-1; i < j; i, j = i+1, j-1 {
			match[i], match[j] = match[j], match[i]
		}
	}
	if lim, err := strconv.Atoi(q["sysparm_limit"]); err == nil && len(match) > lim {
		match = match[:lim]
	}
	out := []map[string]string{}
	for _, rec := range match {
		out = append(out, pick(rec, q["sysparm_fields"]))
	}
	snResult(w, http.StatusOK, out)
}

func (f *fakeServiceNow) snapshot() ([]seen, []map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seen(nil), f.requests...), append([]map[string]string(nil), f.records...)
}

func (f *fakeServiceNow) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = nil
}

func checkRequest(t *testing.T, got seen, method, path string, query map[string]string) {
	t.Helper()
	if got.method != method || got.path != path {
		t.Errorf("request %s %s, want %s %s", got.method, got.path, method, path)
	}
	if !reflect.DeepEqual(got.query, query) {
		t.Errorf("%s %s query = %v, want %v", method, path, got.query, query)
	}
}

var (
	openLookup = map[string]string{
		"sysparm_query":  "correlation_id=5f0c2a8e-1d2b-4c3d-9e4f-0a1b2c3d4e5f^active=true",
		"sysparm_fields": "sys_id,number,state",
		"sysparm_limit":  "1",
	}
	resolveLookup = map[string]string{
		"sysparm_query":  "correlation_id=5f0c2a8e-1d2b-4c3d-9e4f-0a1b2c3d4e5f^ORDERBYDESCsys_created_on",
		"sysparm_fields": "sys_id,number,state,active",
		"sysparm_limit":  "10",
	}
)

func TestFiringThenResolved(t *testing.T) {
	sn := newFakeServiceNow(t)
	var logs notifytest.Logs
	n := newNotifier(t, snConfig(sn.URL+"/", "assignment_group: Network Operations\n"), notifytest.Env(t.TempDir(), &logs))

	if err := n.Send(context.Background(), notification(notifytest.DeviceDown())); err != nil {
		t.Fatalf("firing: %v", err)
	}
	reqs, recs := sn.snapshot()
	if len(reqs) != 2 || len(recs) != 1 {
		t.Fatalf("firing made %d requests and %d records, want lookup + create and 1 record", len(reqs), len(recs))
	}
	checkRequest(t, reqs[0], http.MethodGet, "/api/now/table/incident", openLookup)
	checkRequest(t, reqs[1], http.MethodPost, "/api/now/table/incident", map[string]string{"sysparm_fields": "sys_id,number"})
	notifytest.GoldenJSON(t, "create.json", reqs[1].body)
	if !strings.Contains(logs.String(), `"number":"INC0010001"`) {
		t.Errorf("the created record's number should be logged:\n%s", logs.String())
	}

	sn.reset()
	if err := n.Send(context.Background(), notification(notifytest.DeviceUp())); err != nil {
		t.Fatalf("resolve: %v", err)
	}
	reqs, recs = sn.snapshot()
	if len(reqs) != 2 {
		t.Fatalf("resolve made %d requests, want lookup + PATCH", len(reqs))
	}
	checkRequest(t, reqs[0], http.MethodGet, "/api/now/table/incident", resolveLookup)
	checkRequest(t, reqs[1], http.MethodPatch, "/api/now/table/incident/"+recs[0]["sys_id"], map[string]string{"sysparm_fields": "sys_id,number,state"})
	notifytest.GoldenJSON(t, "resolve.json", reqs[1].body)
	if recs[0]["state"] != "6" || recs[0]["close_code"] != DefaultCloseCode {
		t.Errorf("record after resolve: state %q close_code %q", recs[0]["state"], recs[0]["close_code"])
	}
}

// TestNoDuplicateIncident: a retry after a lost response, and the same
// notification from a restarted nocbridge, find the record instead of
// creating another.
func TestNoDuplicateIncident(t *testing.T) {
	sn := newFakeServiceNow(t)
	cfg := snConfig(sn.URL, "")
	nt := notification(notifytest.DeviceDown())

	sn.mu.Lock()
	sn.dropCreateResponse = true
	sn.mu.Unlock()
	err := newNotifier(t, cfg, notifytest.Env(t.TempDir(), nil)).Send(context.Background(), nt)
	if !notify.Retryable(err) {
		t.Fatalf("lost response: got %v, want a retryable error", err)
	}
	for attempt := 2; attempt <= 3; attempt++ {
		nt.Attempt = attempt
		n := newNotifier(t, cfg, notifytest.Env(t.TempDir(), nil)) // as after a restart
		if err := n.Send(context.Background(), nt); err != nil {
			t.Fatalf("attempt %d: %v", attempt, err)
		}
	}
	reqs, recs := sn.snapshot()
	if len(recs) != 1 {
		t.Fatalf("%d incidents exist, want 1", len(recs))
	}
	posts := 0
	for _, r := range reqs {
		if r.method == http.MethodPost {
			posts++
		}
	}
	if posts != 1 {
		t.Errorf("%d creates sent, want 1", posts)
	}
}

func TestResolveCases(t *testing.T) {
	id := notifytest.DeviceDown().InstanceID
	tests := []struct {
		name    string
		records []map[string]string
		patched []string // sys_ids expected to be patched
		log     string
	}{
		{"no record", nil, nil, "no servicenow record to resolve"},
		{"already resolved", []map[string]string{{"sys_id": "a1", "number": "INC1", "state": "6", "active": "true", "correlation_id": id, "sys_created_on": "1"}}, nil, "already resolved or closed"},
		{"closed", []map[string]string{{"sys_id": "a1", "number": "INC1", "state": "7", "active": "false", "correlation_id": id, "sys_created_on": "1"}}, nil, "already resolved or closed"},
		{"in progress", []map[string]string{{"sys_id": "a1", "number": "INC1", "state": "2", "active": "true", "correlation_id": id, "sys_created_on": "1"}}, []string{"a1"}, "servicenow record resolved"},
		{"one closed, one copied by hand", []map[string]string{
			{"sys_id": "a1", "number": "INC1", "state": "7", "active": "false", "correlation_id": id, "sys_created_on": "1"},
			{"sys_id": "b2", "number": "INC2", "state": "3", "active": "true", "correlation_id": id, "sys_created_on": "2"},
			{"sys_id": "c3", "number": "INC3", "state": "1", "active": "true", "correlation_id": "other", "sys_created_on": "3"},
		}, []string{"b2"}, "servicenow record resolved"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sn := newFakeServiceNow(t)
			sn.records = tt.records
			var logs notifytest.Logs
			n := newNotifier(t, snConfig(sn.URL, ""), notifytest.Env(t.TempDir(), &logs))
			if err := n.Send(context.Background(), notification(notifytest.DeviceUp())); err != nil {
				t.Fatalf("resolve: %v", err)
			}
			reqs, _ := sn.snapshot()
			var patched []string
			for _, r := range reqs[1:] {
				if r.method != http.MethodPatch {
					t.Errorf("unexpected %s", r.method)
				}
				patched = append(patched, strings.TrimPrefix(r.path, "/api/now/table/incident/"))
			}
			if !reflect.DeepEqual(patched, tt.patched) {
				t.Errorf("patched %v, want %v", patched, tt.patched)
			}
			if !strings.Contains(logs.String(), tt.log) {
				t.Errorf("log lacks %q:\n%s", tt.log, logs.String())
			}
		})
	}
}

func TestImpactUrgency(t *testing.T) {
	for sev, want := range map[int][2]string{1: {"1", "1"}, 2: {"1", "2"}, 3: {"2", "2"}, 4: {"2", "3"}, 5: {"3", "3"}} {
		i, u := impactUrgency(sev)
		if i != want[0] || u != want[1] {
			t.Errorf("severity %d: impact/urgency %s/%s, want %s/%s", sev, i, u, want[0], want[1])
		}
	}
}

func TestFieldsOverrideDefaults(t *testing.T) {
	sn := newFakeServiceNow(t)
	n := newNotifier(t, snConfig(sn.URL, "fields:\n  category: hardware\n  caller_id: svc.nocbridge\n  contact_type: monitoring\nclose_code: Solution provided\n"), notifytest.Env(t.TempDir(), nil))
	ev := notifytest.DeviceDown()
	ev.Severity = 4
	if err := n.Send(context.Background(), notification(ev)); err != nil {
		t.Fatal(err)
	}
	_, recs := sn.snapshot()
	r := recs[0]
	want := map[string]string{"category": "hardware", "caller_id": "svc.nocbridge", "contact_type": "monitoring", "impact": "2", "urgency": "3", "cmdb_ci": "core-sw1", "correlation_id": ev.InstanceID}
	for k, v := range want {
		if r[k] != v {
			t.Errorf("%s = %q, want %q", k, r[k], v)
		}
	}
	if _, ok := r["assignment_group"]; ok {
		t.Errorf("assignment_group sent though not configured")
	}
	if err := n.Send(context.Background(), notification(notifytest.DeviceUp())); err != nil {
		t.Fatal(err)
	}
	_, recs = sn.snapshot()
	if recs[0]["close_code"] != "Solution provided" {
		t.Errorf("close_code = %q", recs[0]["close_code"])
	}
}

func TestTemplate(t *testing.T) {
	dir := t.TempDir()
	notifytest.WriteFile(t, dir, "snow.tmpl", "{{ if eq (print .Status) \"resolved\" }}Cleared{{ else }}Down{{ end }}: {{ .Device.Name }} at {{ .Device.Site }}\nSee {{ .AlertURL }}\n")
	sn := newFakeServiceNow(t)
	n := newNotifier(t, snConfig(sn.URL, "template_file: snow.tmpl\n"), notifytest.Env(dir, nil))
	if err := n.Send(context.Background(), notification(notifytest.DeviceDown())); err != nil {
		t.Fatal(err)
	}
	if err := n.Send(context.Background(), notification(notifytest.DeviceUp())); err != nil {
		t.Fatal(err)
	}
	_, recs := sn.snapshot()
	link := "See " + notifytest.ExternalURL + "/alerts/" + notifytest.DeviceDown().InstanceID
	if got := recs[0]["description"]; got != "Down: core-sw1 at HQ\n"+link {
		t.Errorf("description = %q", got)
	}
	if got := recs[0]["close_notes"]; got != "Cleared: core-sw1 at HQ\n"+link {
		t.Errorf("close_notes = %q", got)
	}
	if !strings.HasPrefix(recs[0]["short_description"], "[P1] Device unreachable") {
		t.Errorf("short_description is not templated: %q", recs[0]["short_description"])
	}
}

func TestStatusClassification(t *testing.T) {
	tests := []struct {
		name       string
		answer     func(w http.ResponseWriter)
		status     int
		retryable  bool
		retryAfter time.Duration
		reason     string
	}{
		{"401", func(w http.ResponseWriter) {
			snError(w, 401, "User Not Authenticated", "Required to provide Auth information")
		}, 401, false, 0, "GET " + "%s/api/now/table/incident: HTTP 401: User Not Authenticated: Required to provide Auth information"},
		{"403 ACL", func(w http.ResponseWriter) {
			snError(w, 403, "Operation Failed", "ACL Exception Insert Failed due to security constraints")
		}, 403, false, 0, "HTTP 403: Operation Failed: ACL Exception Insert Failed due to security constraints"},
		{"429", func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "17")
			snError(w, 429, "Rate limit exceeded", "")
		}, 429, true, 17 * time.Second, "HTTP 429: Rate limit exceeded"},
		{"500", func(w http.ResponseWriter) { snError(w, 500, "Internal server error", "") }, 500, true, 0, "HTTP 500: Internal server error"},
		{"503 HTML", func(w http.ResponseWriter) {
			w.WriteHeader(503)
			_, _ = io.WriteString(w, "<html>Service Unavailable</html>")
		}, 503, true, 0, "HTTP 503: <html>Service Unavailable</html>"},
		{"400 bad query", func(w http.ResponseWriter) {
			snError(w, 400, "Invalid table", "incident")
		}, 400, false, 0, "HTTP 400: Invalid table: incident"},
		{"hibernating instance (200 HTML)", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = io.WriteString(w, "<html><body>Your instance is hibernating</body></html>")
		}, 200, true, 0, "HTTP 200: the answer is not Table API JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sn := newFakeServiceNow(t)
			sn.fail = func(w http.ResponseWriter, r *http.Request) bool { tt.answer(w); return true }
			n := newNotifier(t, snConfig(sn.URL, ""), notifytest.Env(t.TempDir(), nil))
			err := n.Send(context.Background(), notification(notifytest.DeviceDown()))
			notifytest.Classified{Status: tt.status, Retryable: tt.retryable, RetryAfter: tt.retryAfter,
				Reason: strings.ReplaceAll(tt.reason, "%s", sn.URL)}.Check(t, err)
			reqs, _ := sn.snapshot()
			if len(reqs) != 1 {
				t.Errorf("a failed lookup must stop there, but %d requests were made", len(reqs))
			}
		})
	}
}

func TestNetworkErrorsAreRetryable(t *testing.T) {
	u := notifytest.RefusedURL(t)
	n := newNotifier(t, snConfig(u, ""), notifytest.Env(t.TempDir(), nil))
	ne := notifytest.Unreachable(t, n, notification(notifytest.DeviceDown()), notification(notifytest.DeviceUp()))
	if !strings.HasPrefix(ne.Reason, "GET "+u+"/api/now/table/incident: ") {
		t.Errorf("reason %q does not name the request", ne.Reason)
	}
}

// TestSecretNeverLeaks: wrong credentials, a proxy echoing the request
// headers, config errors, and every log line carry neither the password nor
// the encoded credentials.
func TestSecretNeverLeaks(t *testing.T) {
	dir := t.TempDir()
	notifytest.WriteFile(t, dir, "pw", snPassword+"\n")
	var logs notifytest.Logs
	var texts notifytest.Failures

	sn := newFakeServiceNow(t)
	ok := newNotifier(t, "name: snow\ntype: servicenow\ninstance_url: "+sn.URL+"\nusername: "+snUser+"\npassword_file: pw\n", notifytest.Env(dir, &logs))
	if err := ok.Send(context.Background(), notification(notifytest.DeviceDown())); err != nil {
		t.Fatal(err)
	}
	if err := ok.Send(context.Background(), notification(notifytest.DeviceUp())); err != nil {
		t.Fatal(err)
	}

	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		_, _ = fmt.Fprintf(w, "denied for %s (password %s)", r.Header.Get("Authorization"), snPassword)
	}))
	defer echo.Close()
	texts.Add(t, newNotifier(t, snConfig(echo.URL, ""), notifytest.Env(dir, &logs)).Send(context.Background(), notification(notifytest.DeviceDown())))

	wrong := newNotifier(t, "name: snow\ntype: servicenow\ninstance_url: "+sn.URL+"\nusername: "+snUser+"\npassword: "+snPassword+"-old\n", notifytest.Env(dir, &logs))
	err := wrong.Send(context.Background(), notification(notifytest.DeviceDown()))
	texts.Add(t, err)
	if notify.Retryable(err) {
		t.Errorf("wrong credentials must be permanent")
	}

	_, err = New(notifytest.Destination(t, snConfig("https://u:"+snPassword+"@acme.service-now.com", "password_file: pw\n")), notifytest.Env(dir, &logs))
	texts.Add(t, err)

	notifytest.NoSecretsIn(t, []string{snPassword, strings.TrimPrefix(basicAuth(snUser, snPassword), "Basic ")}, append(texts, logs.String()))
}

func basicAuth(user, pw string) string {
	r := http.Request{Header: http.Header{}}
	r.SetBasicAuth(user, pw)
	return r.Header.Get("Authorization")
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	notifytest.WriteFile(t, dir, "pw", "x\n")
	notifytest.WriteFile(t, dir, "broken.tmpl", "line one\n{{ .Device.Name \n")
	notifytest.ConfigCases(t, New, "name: snow\ntype: servicenow\n", dir, []notifytest.ConfigCase{
		{Name: "nothing set", YAML: "", Want: []string{
			`c.yaml:1: destination "snow": instance_url is required`,
			`c.yaml:1: destination "snow": password (or password_file) is required`,
			`c.yaml:1: destination "snow": username is required`}},
		{Name: "unknown key", YAML: "instance_url: https://acme.service-now.com\nusername: u\npassword: p\nassignment-group: NOC\n", Want: []string{
			`c.yaml:6: destination "snow": unknown key "assignment-group" (known: assignment_group, close_code, fields, instance_url, password, password_file, resolve_state, table, template_file, username)`}},
		{Name: "password inline and file", YAML: "instance_url: https://acme.service-now.com\nusername: u\npassword: p\npassword_file: pw\n", Want: []string{
			`c.yaml:6: destination "snow": password: set either the value or the _file key, not both`}},
		{Name: "password file missing", YAML: "instance_url: https://acme.service-now.com\nusername: u\npassword_file: nope\n", Want: []string{
			`c.yaml:5: destination "snow": password: reading secret file`}},
		{Name: "bad url", YAML: "instance_url: acme.service-now.com\nusername: u\npassword: p\n", Want: []string{
			`c.yaml:3: destination "snow": instance_url acme.service-now.com: scheme must be http or https`}},
		{Name: "url with query", YAML: "instance_url: https://acme.service-now.com/?x=1\nusername: u\npassword: p\n", Want: []string{
			`c.yaml:3: destination "snow": instance_url https://acme.service-now.com/: must not have a query or fragment`}},
		{Name: "username with colon", YAML: "instance_url: https://a.example\nusername: a:b\npassword: p\n", Want: []string{
			`c.yaml:4: destination "snow": username must not contain ':'`}},
		{Name: "bad table", YAML: "instance_url: https://a.example\nusername: u\npassword: p\ntable: Incident Table\n", Want: []string{
			`c.yaml:6: destination "snow": table "Incident Table": want a table name`}},
		{Name: "reserved and invalid fields", YAML: "instance_url: https://a.example\nusername: u\npassword: p\nfields:\n  correlation_id: x\n  Bad Name: y\n  description: z\n", Want: []string{
			`c.yaml:7: destination "snow": fields: correlation_id cannot be set here`,
			`c.yaml:8: destination "snow": fields: "Bad Name" is not a ServiceNow field name`,
			`c.yaml:9: destination "snow": fields: description cannot be set here: use template_file`}},
		{Name: "fields not strings", YAML: "instance_url: https://a.example\nusername: u\npassword: p\nfields:\n  impact: [1]\n", Want: []string{
			`c.yaml:7: destination "snow": fields.impact must be a string, not a list`}},
		{Name: "broken template", YAML: "instance_url: https://a.example\nusername: u\npassword: p\ntemplate_file: broken.tmpl\n", Want: []string{
			`c.yaml:6: destination "snow": template_file: template: broken.tmpl:3: unclosed action started at broken.tmpl:2`}},
	})
}

func TestDefaults(t *testing.T) {
	n := newNotifier(t, snConfig("https://acme.service-now.com/", ""), notifytest.Env(t.TempDir(), nil))
	if n.s.table != "incident" || n.s.closeCode != "Solved (Permanently)" || n.s.resolveState != "6" {
		t.Errorf("defaults: table %q close_code %q resolve_state %q", n.s.table, n.s.closeCode, n.s.resolveState)
	}
	if got := n.tableURL("abc", nil).String(); got != "https://acme.service-now.com/api/now/table/incident/abc" {
		t.Errorf("tableURL = %s", got)
	}
}
