package jira

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/notify"
	"github.com/nocbridge/nocbridge/internal/notify/notifytest"
)

const (
	jiraUser  = "noc-bot@acme.example"
	jiraToken = "ATATT3xFfGF0-test-token-5521"
)

func notification(ev event.Event) notify.Notification {
	return notify.Notification{ID: ev.NotificationID("jira"), Event: ev, Attempt: 1}
}

func jiraConfig(siteURL, extra string) string {
	return "name: jira\ntype: jira\nurl: " + siteURL + "\nuser: " + jiraUser + "\napi_token: " + jiraToken + "\nproject: NOC\n" + extra
}

func newNotifier(t *testing.T, yamlSrc string, env notify.Env) *Notifier {
	t.Helper()
	n := notifytest.New[*Notifier](t, New, notifytest.Destination(t, yamlSrc), env)
	n.api.Now = func() time.Time { return notifytest.AttemptTime }
	return n
}

// fakeJira is a Jira Cloud site with one project (NOC) and a simple
// workflow. It checks requests as Jira does: Basic auth, JQL shape, ADF
// validity, summary rules, and answers with Jira's error JSON.
type fakeJira struct {
	*httptest.Server
	t *testing.T

	mu       sync.Mutex
	issues   []*fakeIssue
	requests []seen
	// transitions offered from every status that is not done.
	transitions []transition
	// fail, when set and returning true, has answered the request itself.
	fail func(w http.ResponseWriter, r *http.Request) bool
	// dropCreateResponse makes the next create succeed but lose its answer.
	dropCreateResponse bool
}

type fakeIssue struct {
	key      string
	fields   map[string]any
	labels   []string
	status   status
	comments []json.RawMessage
}

type seen struct {
	method, path string
	body         []byte
}

func statusOf(name, category string) status {
	var s status
	s.Name = name
	s.StatusCategory.Key = category
	return s
}

func newFakeJira(t *testing.T) *fakeJira {
	f := &fakeJira{t: t, transitions: []transition{
		{ID: "11", Name: "To Do", To: statusOf("To Do", "new")},
		{ID: "21", Name: "In Progress", To: statusOf("In Progress", "indeterminate")},
		{ID: "31", Name: "Done", To: statusOf("Done", "done")},
	}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.handle))
	t.Cleanup(f.Close)
	return f
}

func jiraError(w http.ResponseWriter, code int, messages []string, fields map[string]string) {
	if messages == nil {
		messages = []string{}
	}
	if fields == nil {
		fields = map[string]string{}
	}
	writeJSON(w, code, errorAnswer{ErrorMessages: messages, Errors: fields})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

var jqlRE = regexp.MustCompile(`^project = "([^"]+)" AND labels = "([^"]+)"$`)

func (f *fakeJira) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, seen{r.Method, r.URL.Path, body})
	if f.fail != nil && f.fail(w, r) {
		return
	}
	if u, p, ok := r.BasicAuth(); !ok || u != jiraUser || p != jiraToken {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, "Client must be authenticated to access this resource.")
		return
	}
	if r.Header.Get("Accept") != "application/json" || r.Header.Get("User-Agent") != notifytest.UserAgent {
		f.t.Errorf("%s %s: Accept %q, User-Agent %q", r.Method, r.URL.Path, r.Header.Get("Accept"), r.Header.Get("User-Agent"))
	}
	if r.Method == http.MethodPost && r.Header.Get("Content-Type") != "application/json" {
		f.t.Errorf("POST %s without Content-Type application/json", r.URL.Path)
	}
	path := strings.TrimPrefix(r.URL.Path, "/rest/api/3/")
	switch {
	case r.Method == http.MethodPost && path == "search/jql":
		f.search(w, body)
	case r.Method == http.MethodPost && path == "issue":
		f.create(w, body)
	case strings.HasPrefix(path, "issue/"):
		key, sub, _ := strings.Cut(strings.TrimPrefix(path, "issue/"), "/")
		is := f.issue(key)
		if is == nil {
			jiraError(w, http.StatusNotFound, []string{"Issue does not exist or you do not have permission to see it."}, nil)
			return
		}
		switch {
		case r.Method == http.MethodPost && sub == "comment":
			var c struct {
				Body json.RawMessage `json:"body"`
			}
			if err := json.Unmarshal(body, &c); err != nil || validADF(c.Body) != "" {
				jiraError(w, http.StatusBadRequest, nil, map[string]string{"comment": "Comment body is not valid: " + validADF(c.Body)})
				return
			}
			is.comments = append(is.comments, c.Body)
			writeJSON(w, http.StatusCreated, map[string]string{"id": fmt.Sprint(10000 + len(is.comments))})
		case r.Method == http.MethodGet && sub == "transitions":
			var ts []transition
			if is.status.StatusCategory.Key != "done" {
				ts = f.transitions
			}
			writeJSON(w, http.StatusOK, map[string]any{"expand": "transitions", "transitions": ts})
		case r.Method == http.MethodPost && sub == "transitions":
			var req struct {
				Transition struct {
					ID string `json:"id"`
				} `json:"transition"`
			}
			_ = json.Unmarshal(body, &req)
			for _, tr := range f.transitions {
				if tr.ID == req.Transition.ID && is.status.StatusCategory.Key != "done" {
					is.status = tr.To
					w.WriteHeader(http.StatusNoContent)
					return
				}
			}
			jiraError(w, http.StatusBadRequest, []string{"Transition id '" + req.Transition.ID + "' is not valid for this issue."}, nil)
		default:
			jiraError(w, http.StatusNotFound, []string{"Unexpected " + r.Method + " " + r.URL.Path}, nil)
		}
	default:
		jiraError(w, http.StatusNotFound, []string{"Unexpected " + r.Method + " " + r.URL.Path}, nil)
	}
}

func (f *fakeJira) issue(key string) *fakeIssue {
	for _, is := range f.issues {
		if is.key == key {
			return is
		}
	}
	return nil
}

func (f *fakeJira) search(w http.ResponseWriter, body []byte) {
	var req struct {
		JQL        string   `json:"jql"`
		Fields     []string `json:"fields"`
		MaxResults int      `json:"maxResults"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		jiraError(w, http.StatusBadRequest, []string{"Invalid request payload. Refer to the REST API documentation and try again."}, nil)
		return
	}
	m := jqlRE.FindStringSubmatch(req.JQL)
	if m == nil {
		f.t.Errorf("unexpected JQL %q", req.JQL)
		jiraError(w, http.StatusBadRequest, []string{"Error in the JQL Query"}, nil)
		return
	}
	if m[1] != "NOC" {
		jiraError(w, http.StatusBadRequest, []string{"The value '" + m[1] + "' does not exist for the field 'project'."}, nil)
		return
	}
	if !reflect.DeepEqual(req.Fields, []string{"status"}) || req.MaxResults != 1 {
		f.t.Errorf("search fields %v maxResults %d, want [status] 1", req.Fields, req.MaxResults)
	}
	hits := []map[string]any{}
	for _, is := range f.issues {
		for _, l := range is.labels {
			if l == m[2] && len(hits) < req.MaxResults {
				hits = append(hits, map[string]any{"id": "1" + is.key[4:], "key": is.key, "fields": map[string]any{"status": is.status}})
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"issues": hits, "isLast": true})
}

func (f *fakeJira) create(w http.ResponseWriter, body []byte) {
	var req struct {
		Fields map[string]json.RawMessage `json:"fields"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		jiraError(w, http.StatusBadRequest, []string{"Invalid request payload."}, nil)
		return
	}
	fe := map[string]string{}
	var project, issueType struct {
		Key  string `json:"key"`
		Name string `json:"name"`
	}
	_ = json.Unmarshal(req.Fields["project"], &project)
	_ = json.Unmarshal(req.Fields["issuetype"], &issueType)
	var summary string
	_ = json.Unmarshal(req.Fields["summary"], &summary)
	var labels []string
	_ = json.Unmarshal(req.Fields["labels"], &labels)
	if project.Key != "NOC" {
		fe["project"] = "valid project is required"
	}
	if issueType.Name != "Task" && issueType.Name != "Incident" {
		fe["issuetype"] = "Specify a valid issue type"
	}
	switch {
	case summary == "":
		fe["summary"] = "You must specify a summary of the issue."
	case len([]rune(summary)) > 255:
		fe["summary"] = "Summary must be less than 255 characters."
	case strings.ContainsAny(summary, "\r\n"):
		fe["summary"] = "The summary is invalid because it contains newline characters."
	}
	for _, l := range labels {
		if strings.ContainsAny(l, " \t") {
			fe["labels"] = "The label '" + l + "' contains spaces which is invalid."
		}
	}
	if msg := validADF(req.Fields["description"]); msg != "" {
		fe["description"] = "Operation value must be an Atlassian Document: " + msg
	}
	if _, ok := req.Fields["priority"]; ok {
		f.t.Errorf("priority must not be set (schemes vary)")
	}
	if len(fe) > 0 {
		jiraError(w, http.StatusBadRequest, nil, fe)
		return
	}
	is := &fakeIssue{key: fmt.Sprintf("NOC-%d", len(f.issues)+1), labels: labels, status: statusOf("To Do", "new"), fields: map[string]any{}}
	for k, v := range req.Fields {
		is.fields[k] = v
	}
	f.issues = append(f.issues, is)
	if f.dropCreateResponse {
		f.dropCreateResponse = false
		if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
			_ = conn.Close()
		}
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"id": "1" + is.key[4:], "key": is.key, "self": f.URL + "/rest/api/3/issue/" + is.key})
}

// validADF checks the ADF subset nocbridge writes; "" means valid.
func validADF(raw json.RawMessage) string {
	var doc adfNode
	if err := json.Unmarshal(raw, &doc); err != nil {
		return "not JSON"
	}
	if doc.Type != "doc" || doc.Version != 1 || len(doc.Content) == 0 {
		return "root must be a doc of version 1 with content"
	}
	for _, p := range doc.Content {
		if p.Type != "paragraph" {
			return "unexpected block " + p.Type
		}
		for _, in := range p.Content {
			switch in.Type {
			case "hardBreak":
			case "text":
				if in.Text == "" {
					return "text nodes must not be empty"
				}
				for _, m := range in.Marks {
					if m.Type != "link" || m.Attrs["href"] == "" {
						return "bad mark"
					}
				}
			default:
				return "unexpected inline " + in.Type
			}
		}
	}
	return ""
}

func (f *fakeJira) snapshot() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seen(nil), f.requests...)
}

func (f *fakeJira) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = nil
}

func checkRequests(t *testing.T, got []seen, want ...string) {
	t.Helper()
	var have []string
	for _, r := range got {
		have = append(have, r.method+" "+r.path)
	}
	if !reflect.DeepEqual(have, want) {
		t.Fatalf("requests:\n %s\nwant\n %s", strings.Join(have, "\n "), strings.Join(want, "\n "))
	}
}

func TestFiringThenResolved(t *testing.T) {
	jf := newFakeJira(t)
	var logs notifytest.Logs
	n := newNotifier(t, jiraConfig(jf.URL+"/", ""), notifytest.Env(t.TempDir(), &logs))

	if err := n.Send(context.Background(), notification(notifytest.DeviceDown())); err != nil {
		t.Fatalf("firing: %v", err)
	}
	reqs := jf.snapshot()
	checkRequests(t, reqs, "POST /rest/api/3/search/jql", "POST /rest/api/3/issue")
	notifytest.GoldenJSON(t, "search.json", reqs[0].body)
	notifytest.GoldenJSON(t, "create.json", reqs[1].body)
	if !strings.Contains(logs.String(), `"issue":"NOC-1"`) {
		t.Errorf("the created issue key should be logged:\n%s", logs.String())
	}

	jf.reset()
	if err := n.Send(context.Background(), notification(notifytest.DeviceUp())); err != nil {
		t.Fatalf("resolve: %v", err)
	}
	reqs = jf.snapshot()
	checkRequests(t, reqs,
		"POST /rest/api/3/search/jql",
		"GET /rest/api/3/issue/NOC-1/transitions",
		"POST /rest/api/3/issue/NOC-1/comment",
		"POST /rest/api/3/issue/NOC-1/transitions")
	notifytest.GoldenJSON(t, "comment.json", reqs[2].body)
	notifytest.GoldenJSON(t, "transition.json", reqs[3].body)
	jf.mu.Lock()
	defer jf.mu.Unlock()
	if is := jf.issues[0]; is.status.Name != "Done" || len(is.comments) != 1 {
		t.Fatalf("issue after resolve: status %q, %d comments", is.status.Name, len(is.comments))
	}
}

// TestNoDuplicateIssue: a retry after a lost response, and the same
// notification from a restarted nocbridge, find the issue by its label.
func TestNoDuplicateIssue(t *testing.T) {
	jf := newFakeJira(t)
	cfg := jiraConfig(jf.URL, "")
	nt := notification(notifytest.DeviceDown())
	jf.mu.Lock()
	jf.dropCreateResponse = true
	jf.mu.Unlock()
	if err := newNotifier(t, cfg, notifytest.Env(t.TempDir(), nil)).Send(context.Background(), nt); !notify.Retryable(err) {
		t.Fatalf("lost response: got %v, want a retryable error", err)
	}
	for attempt := 2; attempt <= 3; attempt++ {
		nt.Attempt = attempt
		if err := newNotifier(t, cfg, notifytest.Env(t.TempDir(), nil)).Send(context.Background(), nt); err != nil {
			t.Fatalf("attempt %d: %v", attempt, err)
		}
	}
	jf.mu.Lock()
	defer jf.mu.Unlock()
	if len(jf.issues) != 1 {
		t.Fatalf("%d issues exist, want 1", len(jf.issues))
	}
}

func TestResolveCases(t *testing.T) {
	label := labelPrefix + notifytest.DeviceDown().InstanceID
	tests := []struct {
		name       string
		issue      *fakeIssue
		transition string
		wantReqs   []string
		wantStatus string
		log        string
	}{
		{"no issue", nil, "", []string{"POST /rest/api/3/search/jql"}, "", "no jira issue to resolve"},
		{"already done", &fakeIssue{key: "NOC-1", labels: []string{label}, status: statusOf("Closed", "done")}, "",
			[]string{"POST /rest/api/3/search/jql"}, "Closed", "jira issue already done"},
		{"transition by target status, any case", &fakeIssue{key: "NOC-1", labels: []string{label}, status: statusOf("In Progress", "indeterminate")}, "resolved",
			[]string{"POST /rest/api/3/search/jql", "GET /rest/api/3/issue/NOC-1/transitions", "POST /rest/api/3/issue/NOC-1/comment", "POST /rest/api/3/issue/NOC-1/transitions"},
			"Resolved", "jira issue resolved"},
		{"transition by name, any case", &fakeIssue{key: "NOC-1", labels: []string{label}, status: statusOf("To Do", "new")}, "RESOLVE ISSUE",
			[]string{"POST /rest/api/3/search/jql", "GET /rest/api/3/issue/NOC-1/transitions", "POST /rest/api/3/issue/NOC-1/comment", "POST /rest/api/3/issue/NOC-1/transitions"},
			"Resolved", "jira issue resolved"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jf := newFakeJira(t)
			jf.transitions = []transition{
				{ID: "21", Name: "Start Progress", To: statusOf("In Progress", "indeterminate")},
				{ID: "51", Name: "Resolve Issue", To: statusOf("Resolved", "done")},
			}
			if tt.issue != nil {
				jf.issues = []*fakeIssue{tt.issue}
			}
			extra := ""
			if tt.transition != "" {
				extra = "resolve_transition: " + tt.transition + "\n"
			}
			var logs notifytest.Logs
			n := newNotifier(t, jiraConfig(jf.URL, extra), notifytest.Env(t.TempDir(), &logs))
			if err := n.Send(context.Background(), notification(notifytest.DeviceUp())); err != nil {
				t.Fatalf("resolve: %v", err)
			}
			checkRequests(t, jf.snapshot(), tt.wantReqs...)
			if tt.issue != nil && tt.issue.status.Name != tt.wantStatus {
				t.Errorf("status %q, want %q", tt.issue.status.Name, tt.wantStatus)
			}
			if !strings.Contains(logs.String(), tt.log) {
				t.Errorf("log lacks %q:\n%s", tt.log, logs.String())
			}
		})
	}
}

func TestNoSuchTransition(t *testing.T) {
	jf := newFakeJira(t)
	jf.issues = []*fakeIssue{{key: "NOC-7", labels: []string{labelPrefix + notifytest.DeviceDown().InstanceID}, status: statusOf("To Do", "new")}}
	n := newNotifier(t, jiraConfig(jf.URL, "resolve_transition: Close\n"), notifytest.Env(t.TempDir(), nil))
	err := n.Send(context.Background(), notification(notifytest.DeviceUp()))
	var ne *notify.Error
	if !errors.As(err, &ne) || ne.Retryable {
		t.Fatalf("got %v, want a permanent *notify.Error", err)
	}
	want := `jira NOC-7: no transition "Close" from status "To Do"; available: "To Do" (to "To Do"), "In Progress" (to "In Progress"), "Done" (to "Done")`
	if !strings.HasPrefix(ne.Reason, want) {
		t.Errorf("reason:\n %s\nwant prefix\n %s", ne.Reason, want)
	}
	checkRequests(t, jf.snapshot(), "POST /rest/api/3/search/jql", "GET /rest/api/3/issue/NOC-7/transitions")
}

func TestTemplate(t *testing.T) {
	dir := t.TempDir()
	notifytest.WriteFile(t, dir, "jira.tmpl", `{{ if eq (print .Status) "resolved" }}Cleared.{{ else }}*{{ .Name }}*
Site {{ .Device.Site }}{{ end }}

Details: {{ .AlertURL }}.
`)
	jf := newFakeJira(t)
	n := newNotifier(t, jiraConfig(jf.URL, "template_file: jira.tmpl\nissue_type: Incident\n"), notifytest.Env(dir, nil))
	if err := n.Send(context.Background(), notification(notifytest.DeviceDown())); err != nil {
		t.Fatal(err)
	}
	if err := n.Send(context.Background(), notification(notifytest.DeviceUp())); err != nil {
		t.Fatal(err)
	}
	jf.mu.Lock()
	defer jf.mu.Unlock()
	is := jf.issues[0]
	link := notifytest.ExternalURL + "/alerts/" + notifytest.DeviceDown().InstanceID
	linkNode := adfNode{Type: "text", Text: link, Marks: []adfMark{{Type: "link", Attrs: map[string]string{"href": link}}}}
	wantDesc := adfNode{Type: "doc", Version: 1, Content: []adfNode{
		{Type: "paragraph", Content: []adfNode{{Type: "text", Text: "*Device core-sw1 is unreachable*"}, {Type: "hardBreak"}, {Type: "text", Text: "Site HQ"}}},
		{Type: "paragraph", Content: []adfNode{{Type: "text", Text: "Details: "}, linkNode, {Type: "text", Text: "."}}},
	}}
	var gotDesc adfNode
	_ = json.Unmarshal(is.fields["description"].(json.RawMessage), &gotDesc)
	if !reflect.DeepEqual(gotDesc, wantDesc) {
		t.Errorf("description:\n%+v\nwant\n%+v", gotDesc, wantDesc)
	}
	var gotComment adfNode
	_ = json.Unmarshal(is.comments[0], &gotComment)
	if len(gotComment.Content) != 2 || gotComment.Content[0].Content[0].Text != "Cleared." {
		t.Errorf("comment = %+v", gotComment)
	}
	var summary string
	_ = json.Unmarshal(is.fields["summary"].(json.RawMessage), &summary)
	if summary != "[P1] Device unreachable: core-sw1 (10.0.0.1) is unreachable" {
		t.Errorf("summary is not templated: %q", summary)
	}
}

func TestADF(t *testing.T) {
	text := func(s string) adfNode { return adfNode{Type: "text", Text: s} }
	link := func(s string) adfNode {
		return adfNode{Type: "text", Text: s, Marks: []adfMark{{Type: "link", Attrs: map[string]string{"href": s}}}}
	}
	para := func(c ...adfNode) adfNode { return adfNode{Type: "paragraph", Content: c} }
	tests := []struct {
		in   string
		want []adfNode
	}{
		{"", []adfNode{{Type: "paragraph"}}},
		{"  \n\n ", []adfNode{{Type: "paragraph"}}},
		{"one", []adfNode{para(text("one"))}},
		{"a\r\nb\n\n\n  \nc", []adfNode{para(text("a"), adfNode{Type: "hardBreak"}, text("b")), para(text("c"))}},
		{"(see https://x.example/a?b=1).", []adfNode{para(text("(see "), link("https://x.example/a?b=1"), text(")."))}},
		{"http://a.example http://b.example", []adfNode{para(link("http://a.example"), text(" "), link("http://b.example"))}},
	}
	for _, tt := range tests {
		got := adfFromText(tt.in)
		if got.Type != "doc" || got.Version != 1 || !reflect.DeepEqual(got.Content, tt.want) {
			t.Errorf("adfFromText(%q) = %+v, want %+v", tt.in, got.Content, tt.want)
		}
		b, _ := json.Marshal(got)
		if msg := validADF(b); msg != "" {
			t.Errorf("adfFromText(%q) is not valid ADF: %s", tt.in, msg)
		}
	}
}

func TestSummaryRules(t *testing.T) {
	ev := notifytest.DeviceDown()
	ev.Description = "line one\nline two " + strings.Repeat("x", 400)
	jf := newFakeJira(t)
	n := newNotifier(t, jiraConfig(jf.URL, ""), notifytest.Env(t.TempDir(), nil))
	if err := n.Send(context.Background(), notification(ev)); err != nil {
		t.Fatalf("a long, multi-line description must still make a valid summary: %v", err)
	}
}

func TestStatusClassification(t *testing.T) {
	tests := []struct {
		name       string
		answer     func(w http.ResponseWriter, r *http.Request) bool
		status     int
		retryable  bool
		retryAfter time.Duration
		reason     string
	}{
		{"400 project", func(w http.ResponseWriter, r *http.Request) bool {
			jiraError(w, 400, []string{"The value 'NOC' does not exist for the field 'project'."}, nil)
			return true
		}, 400, false, 0, "POST %s/rest/api/3/search/jql: HTTP 400: The value 'NOC' does not exist for the field 'project'."},
		{"400 create field errors", func(w http.ResponseWriter, r *http.Request) bool {
			if r.URL.Path != "/rest/api/3/issue" {
				return false
			}
			jiraError(w, 400, []string{"Fix these"}, map[string]string{"issuetype": "Specify a valid issue type", "components": "Component/s is required."})
			return true
		}, 400, false, 0, "POST %s/rest/api/3/issue: HTTP 400: Fix these; components: Component/s is required.; issuetype: Specify a valid issue type"},
		{"401", func(w http.ResponseWriter, r *http.Request) bool {
			w.WriteHeader(401)
			_, _ = io.WriteString(w, "Client must be authenticated to access this resource.")
			return true
		}, 401, false, 0, "HTTP 401: Client must be authenticated to access this resource."},
		{"429", func(w http.ResponseWriter, r *http.Request) bool {
			w.Header().Set("Retry-After", "9")
			jiraError(w, 429, []string{"Rate limit exceeded."}, nil)
			return true
		}, 429, true, 9 * time.Second, "HTTP 429: Rate limit exceeded."},
		{"503", func(w http.ResponseWriter, r *http.Request) bool {
			w.WriteHeader(503)
			return true
		}, 503, true, 0, "HTTP 503"},
		{"200 login page", func(w http.ResponseWriter, r *http.Request) bool {
			_, _ = io.WriteString(w, "<html>Log in to continue</html>")
			return true
		}, 200, true, 0, "HTTP 200: the answer is not Jira REST JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jf := newFakeJira(t)
			jf.fail = tt.answer
			n := newNotifier(t, jiraConfig(jf.URL, ""), notifytest.Env(t.TempDir(), nil))
			err := n.Send(context.Background(), notification(notifytest.DeviceDown()))
			notifytest.Classified{Status: tt.status, Retryable: tt.retryable, RetryAfter: tt.retryAfter,
				Reason: strings.ReplaceAll(tt.reason, "%s", jf.URL)}.Check(t, err)
		})
	}
}

func TestNetworkErrorsAreRetryable(t *testing.T) {
	u := notifytest.RefusedURL(t)
	n := newNotifier(t, jiraConfig(u, ""), notifytest.Env(t.TempDir(), nil))
	notifytest.Unreachable(t, n, notification(notifytest.DeviceDown()), notification(notifytest.DeviceUp()))
}

func TestSecretNeverLeaks(t *testing.T) {
	dir := t.TempDir()
	notifytest.WriteFile(t, dir, "token", jiraToken+"\n")
	var logs notifytest.Logs
	var texts notifytest.Failures
	jf := newFakeJira(t)
	ok := newNotifier(t, "name: jira\ntype: jira\nurl: "+jf.URL+"\nuser: "+jiraUser+"\napi_token_file: token\nproject: NOC\n", notifytest.Env(dir, &logs))
	if err := ok.Send(context.Background(), notification(notifytest.DeviceDown())); err != nil {
		t.Fatal(err)
	}
	if err := ok.Send(context.Background(), notification(notifytest.DeviceUp())); err != nil {
		t.Fatal(err)
	}
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		_, _ = fmt.Fprintf(w, `{"errorMessages":["denied %s with token %s"]}`, r.Header.Get("Authorization"), jiraToken)
	}))
	defer echo.Close()
	texts.Add(t, newNotifier(t, jiraConfig(echo.URL, ""), notifytest.Env(dir, &logs)).Send(context.Background(), notification(notifytest.DeviceDown())))
	wrong := newNotifier(t, "name: jira\ntype: jira\nurl: "+jf.URL+"\nuser: "+jiraUser+"\napi_token: "+jiraToken+"x\nproject: NOC\n", notifytest.Env(dir, &logs))
	err := wrong.Send(context.Background(), notification(notifytest.DeviceDown()))
	texts.Add(t, err)
	if notify.Retryable(err) {
		t.Errorf("a wrong token must be permanent")
	}
	_, err = New(notifytest.Destination(t, jiraConfig("https://"+jiraUser+":"+jiraToken+"@acme.atlassian.net", "api_token_file: token\n")), notifytest.Env(dir, &logs))
	texts.Add(t, err)
	r := http.Request{Header: http.Header{}}
	r.SetBasicAuth(jiraUser, jiraToken)
	notifytest.NoSecretsIn(t, []string{jiraToken, strings.TrimPrefix(r.Header.Get("Authorization"), "Basic ")}, append(texts, logs.String()))
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	notifytest.WriteFile(t, dir, "token", "x\n")
	notifytest.WriteFile(t, dir, "broken.tmpl", "{{ range .Device.Labels }}\n")
	notifytest.WriteFile(t, dir, "missing.tmpl", "{{ .Device.Nmae }}")
	base := "url: https://acme.atlassian.net\nuser: a@b.c\napi_token: t\nproject: NOC\n"
	notifytest.ConfigCases(t, New, "name: jira\ntype: jira\n", dir, []notifytest.ConfigCase{
		{Name: "nothing set", YAML: "", Want: []string{
			`c.yaml:1: destination "jira": url is required`,
			`c.yaml:1: destination "jira": api_token (or api_token_file) is required`,
			`c.yaml:1: destination "jira": user is required`,
			`c.yaml:1: destination "jira": project is required`}},
		{Name: "unknown key", YAML: base + "transition: Done\n", Want: []string{
			`c.yaml:7: destination "jira": unknown key "transition" (known: api_token, api_token_file, issue_type, project, resolve_transition, template_file, url, user)`}},
		{Name: "token inline and file", YAML: base + "api_token_file: token\n", Want: []string{
			`c.yaml:7: destination "jira": api_token: set either the value or the _file key, not both`}},
		{Name: "token file missing", YAML: "url: https://acme.atlassian.net\nuser: a@b.c\napi_token_file: nope\nproject: NOC\n", Want: []string{
			`c.yaml:5: destination "jira": api_token: reading secret file`}},
		{Name: "project name instead of key", YAML: "url: https://acme.atlassian.net\nuser: a@b.c\napi_token: t\nproject: Network Ops\n", Want: []string{
			`c.yaml:6: destination "jira": project "Network Ops": want the project key`}},
		{Name: "url without scheme", YAML: "url: acme.atlassian.net\nuser: a@b.c\napi_token: t\nproject: NOC\n", Want: []string{
			`c.yaml:3: destination "jira": url acme.atlassian.net: scheme must be http or https`}},
		{Name: "broken template", YAML: base + "template_file: broken.tmpl\n", Want: []string{
			`c.yaml:7: destination "jira": template_file: template: broken.tmpl:2: unexpected EOF`}},
		{Name: "template with a typo", YAML: base + "template_file: missing.tmpl\n", Want: []string{
			`c.yaml:7: destination "jira": template_file: ` + filepath.Join(dir, "missing.tmpl") + `: template: missing.tmpl:1:`}},
	})
}

func TestDefaults(t *testing.T) {
	n := newNotifier(t, jiraConfig("https://acme.atlassian.net/", ""), notifytest.Env(t.TempDir(), nil))
	if n.s.issueType != "Task" || n.s.resolveTransition != "Done" {
		t.Errorf("defaults: issue_type %q resolve_transition %q", n.s.issueType, n.s.resolveTransition)
	}
	if got := n.apiURL("search/jql").String(); got != "https://acme.atlassian.net/rest/api/3/search/jql" {
		t.Errorf("apiURL = %s", got)
	}
	if got := jqlString(`a "b" \c`); got != `"a \"b\" \\c"` {
		t.Errorf("jqlString = %s", got)
	}
}
