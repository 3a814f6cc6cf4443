package webhook

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/notify"
	"github.com/nocbridge/nocbridge/internal/notify/notifytest"
)

// A receiver that echoes the request (headers included) in its error
// answer: no configured secret reaches the reason, the error or the logs.
func TestEchoedSecretsScrubbed(t *testing.T) {
	const (
		bearer    = "echoed-bearer-T0k3n"
		headerKey = "echoed-header-K3y"
		password  = "echoed-passw0rd"
	)
	echo := func(status int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Echo", r.Header.Get("Authorization"))
			w.WriteHeader(status)
			_ = r.Header.Write(w) // every header, as a debugging proxy would
			fmt.Fprintf(w, "\nyou sent token=%s and %s\n", headerKey, strings.Repeat("padding ", 1000))
		}
	}
	for _, tc := range []struct {
		name, auth string
		secrets    []string
		status     int
	}{
		{"bearer, 400", "bearer_token: " + bearer + "\n", []string{bearer, headerKey, testSecret}, http.StatusBadRequest},
		{"basic, 500", "basic_auth: {username: u, password: " + password + "}\n",
			[]string{password, basicB64("u", password), headerKey, testSecret}, http.StatusInternalServerError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(echo(tc.status))
			defer srv.Close()
			logs := &notifytest.Logs{}
			env := notifytest.TextEnv(t.TempDir(), logs)
			d := notifytest.Destination(t, "name: h\ntype: webhook\nurl: "+srv.URL+"/hook\nheaders: {X-Api-Key: "+headerKey+", X-Team: noc}\nsecret: "+testSecret+"\n"+tc.auth)
			n := notifytest.New[*Notifier](t, New, d, env)
			err := n.Send(context.Background(), notification(activeEvent(), "h"))
			ne := notifytest.Classified{Status: tc.status, Retryable: tc.status >= 500, Reason: "X-Team: noc"}.Check(t, err)
			if len(err.Error()) > notify.MaxReason {
				t.Errorf("error text is %d bytes, want at most %d", len(err.Error()), notify.MaxReason)
			}
			notifytest.NoSecrets(t, tc.secrets, err, logs.String())
			notifytest.NoSecretsIn(t, tc.secrets, []string{ne.Reason})
		})
	}
}

func basicB64(user, password string) string {
	h, _ := notify.BasicAuth(user, password)
	return strings.TrimPrefix(h, "Basic ")
}

// The measured case of issue 11: a 307 to another host must not carry the
// request, custom headers included, there.
func TestRedirectElsewhereNotFollowed(t *testing.T) {
	other := newRecorder(t, http.StatusOK)
	target := strings.Replace(other.URL, "127.0.0.1", "localhost", 1) + "/steal?k=v"
	hook := httptest.NewServer(http.RedirectHandler(target, http.StatusTemporaryRedirect))
	defer hook.Close()
	for _, policy := range []string{"", "follow_redirects: same_host\n"} {
		d := notifytest.Destination(t, "name: h\ntype: webhook\nurl: "+hook.URL+"/hook\nheaders: {X-Api-Key: redirect-k3y}\nbearer_token: redirect-b3arer\n"+policy)
		n := newNotifier(t, d, t.TempDir())
		err := n.Send(context.Background(), notification(activeEvent(), "h"))
		notifytest.Classified{Status: http.StatusTemporaryRedirect, Reason: "POST " + hook.URL + "/hook: HTTP 307 redirect to " +
			strings.TrimSuffix(target, "?k=v") + " not followed"}.Check(t, err)
	}
	if len(other.reqs) != 0 {
		t.Fatalf("the other host got %d requests", len(other.reqs))
	}
}

func TestWarnings(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("file-passw0rd"), 0o640); err != nil {
		t.Fatal(err)
	}
	var ws config.Warnings
	env := notifytest.Env(dir, nil)
	env.Warnings = &ws
	d := notifytest.Destination(t, `name: h
type: webhook
url: http://itsm.example.com/hook
basic_auth: {username: u, password_file: pw}
headers: {X-Auth-Token: t0ken-in-header, X-Team: noc}
`)
	if _, err := New(d, env); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range ws.Sorted() {
		got = append(got, w.String())
	}
	want := []string{
		`nocbridge.yaml:3: warning: destination "h": basic_auth, header X-Auth-Token goes over plain http:// to itsm.example.com, readable by anyone on the path: use https://`,
		`nocbridge.yaml:4: warning: destination "h": basic_auth.password_file: secret file ` + pw + ` is readable by group or others (mode 0640)`,
	}
	if len(got) != len(want) {
		t.Fatalf("warnings:\n%s", strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("warning %d:\n %s\nwant prefix\n %s", i, got[i], want[i])
		}
	}
	notifytest.NoSecretsIn(t, []string{"file-passw0rd", "t0ken-in-header"}, got)

	// Over https, or to this machine, credentials stay private.
	ws = nil
	for _, u := range []string{"https://itsm.example.com/hook", "http://127.0.0.1:8080/hook", "http://localhost/hook"} {
		d := notifytest.Destination(t, "name: h\ntype: webhook\nurl: "+u+"\nbearer_token: t\n")
		if _, err := New(d, env); err != nil {
			t.Fatal(err)
		}
	}
	if len(ws) != 0 {
		t.Errorf("unexpected warnings: %v", ws)
	}
}
