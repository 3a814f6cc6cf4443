package notify

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/config"
)

func TestConfigCheckSecret(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tok"), []byte("s3cr3t-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := parseDest(t, "type: x\ntoken: s3cr3t-inline\ntoken_file: tok\n")
	env := Env{ConfigFile: "nocbridge.yaml", BaseDir: dir}
	for _, tc := range []struct {
		name       string
		inline     config.Secret
		file       string
		want       string
		wantPath   string
		wantOK     bool
		wantErrSub string // "" when nothing is recorded
		wantLine   int
	}{
		{name: "inline", inline: "s3cr3t-inline", want: "s3cr3t-inline", wantPath: "token", wantOK: true},
		{name: "file, trimmed", file: "tok", want: "s3cr3t-from-file", wantPath: "token_file", wantOK: true},
		{name: "neither is ok, empty", wantPath: "token", wantOK: true},
		{name: "both", inline: "s3cr3t-inline", file: "tok", wantPath: "token_file", wantErrSub: `destination "d1": token: set either`, wantLine: 3},
		{name: "missing file", file: "absent", wantPath: "token_file", wantErrSub: `destination "d1": token: `, wantLine: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := NewConfigCheck(env, d)
			got, path, ok := check.Secret("token", tc.inline, tc.file)
			if got.Reveal() != tc.want || path != tc.wantPath || ok != tc.wantOK {
				t.Errorf("Secret = (len %d, %q, %v), want (len %d, %q, %v)", len(got), path, ok, len(tc.want), tc.wantPath, tc.wantOK)
			}
			errs := check.Errors()
			if tc.wantErrSub == "" {
				if errs != nil {
					t.Fatalf("recorded %v, want nothing", errs)
				}
				return
			}
			if len(errs) != 1 || !strings.Contains(errs[0].Msg, tc.wantErrSub) || errs[0].Line != tc.wantLine || errs[0].File != "nocbridge.yaml" {
				t.Fatalf("recorded %+v, want one error at nocbridge.yaml:%d containing %q", errs, tc.wantLine, tc.wantErrSub)
			}
			if strings.Contains(errs[0].Msg, "s3cr3t") {
				t.Fatal("the error quotes the secret")
			}
		})
	}
}

func TestConfigCheckTemplate(t *testing.T) {
	dir := t.TempDir()
	for name, src := range map[string]string{"ok.tmpl": "{{.Event.Name}}", "bad.tmpl": "{{.Event.NoSuchField}}"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	d := parseDest(t, "type: x\ntemplate_file: whatever\n")
	env := Env{ConfigFile: "nocbridge.yaml", BaseDir: dir}
	for _, tc := range []struct {
		file     string
		wantTmpl bool
		wantErr  bool
	}{
		{file: "", wantTmpl: false},
		{file: "ok.tmpl", wantTmpl: true},
		{file: "bad.tmpl", wantErr: true},
		{file: "absent.tmpl", wantErr: true},
	} {
		check := NewConfigCheck(env, d)
		got := check.Template(tc.file)
		if (got != nil) != tc.wantTmpl {
			t.Errorf("Template(%q) = %v, want a template: %v", tc.file, got, tc.wantTmpl)
		}
		errs := check.Errors()
		if (len(errs) > 0) != tc.wantErr {
			t.Errorf("Template(%q) recorded %v, want an error: %v", tc.file, errs, tc.wantErr)
		}
		if tc.wantErr && (errs[0].Line != 2 || !strings.HasPrefix(errs[0].Msg, `destination "d1": template_file: `)) {
			t.Errorf("Template(%q) error %+v, want it at line 2, about template_file", tc.file, errs[0])
		}
	}
}

func TestCheckWebhookURL(t *testing.T) {
	for _, tc := range []struct{ raw, wantMsg string }{
		{"https://hooks.example/services/T0/B0/s3cr3t", ""},
		{"http://127.0.0.1:8080/hook?sig=s3cr3t", ""},
		{"https://hooks.example/%zz/s3cr3t", "is not a valid URL"},
		{"ftp://hooks.example/s3cr3t", "must be an http or https URL"},
		{"https:///s3cr3t", "is missing a host"},
	} {
		u, msg := CheckWebhookURL(tc.raw)
		if msg != tc.wantMsg || (msg == "") != (u != nil) {
			t.Errorf("CheckWebhookURL(%q) = %v, %q; want message %q", tc.raw, u, msg, tc.wantMsg)
		}
		if strings.Contains(msg, "s3cr3t") {
			t.Errorf("CheckWebhookURL(%q): message quotes the URL", tc.raw)
		}
	}
}

func TestCheckServiceURL(t *testing.T) {
	const hint = "use user and api_token"
	for _, tc := range []struct {
		raw                 string
		base                bool
		wantURL, wantMsg    string
		wantMsgNotContained string
	}{
		{raw: "https://acme.example/v2/enqueue?x=1", wantURL: "https://acme.example/v2/enqueue?x=1"},
		{raw: "https://acme.example/api//", base: true, wantURL: "https://acme.example/api"},
		{raw: "https://acme.example", base: true, wantURL: "https://acme.example"},
		{raw: "https://acme.example/%zz", wantMsg: "is not a valid URL"},
		{raw: "ftp://acme.example", wantMsg: "ftp://acme.example: scheme must be http or https"},
		{raw: "https:///x", base: true, wantMsg: "https:///x: missing host"},
		{raw: "https://bob:s3cr3t@acme.example", base: true, wantMsg: "https://acme.example: must not hold credentials (" + hint + ")", wantMsgNotContained: "s3cr3t"},
		{raw: "https://acme.example/x?token=s3cr3t", base: true, wantMsg: "https://acme.example/x: must not have a query or fragment", wantMsgNotContained: "s3cr3t"},
		{raw: "https://acme.example/x#frag", base: true, wantMsg: "https://acme.example/x: must not have a query or fragment"},
	} {
		check := CheckServiceURL
		if tc.base {
			check = CheckServiceBase
		}
		u, msg := check(tc.raw, hint)
		if msg != tc.wantMsg {
			t.Errorf("check(%q, base %v) message %q, want %q", tc.raw, tc.base, msg, tc.wantMsg)
		}
		if tc.wantMsgNotContained != "" && strings.Contains(msg, tc.wantMsgNotContained) {
			t.Errorf("check(%q) message quotes a secret", tc.raw)
		}
		switch {
		case tc.wantURL == "" && u != nil:
			t.Errorf("check(%q) = %v, want no URL", tc.raw, u)
		case tc.wantURL != "" && (u == nil || u.String() != tc.wantURL):
			t.Errorf("check(%q) = %v, want %s", tc.raw, u, tc.wantURL)
		}
	}
}

func TestBasicAuth(t *testing.T) {
	header, secrets := BasicAuth("noc-bot@acme.example", "pa:ss")
	encoded := base64.StdEncoding.EncodeToString([]byte("noc-bot@acme.example:pa:ss"))
	if header != "Basic "+encoded {
		t.Errorf("header %q, want Basic %s", header, encoded)
	}
	if len(secrets) != 2 || secrets[0] != "pa:ss" || secrets[1] != encoded {
		t.Errorf("secrets %q, want the password and the encoded credentials", secrets)
	}
}

// recorded is what check recorded, as "LINE: message" without the
// destination prefix.
func recorded(check *ConfigCheck) []string {
	var out []string
	for _, e := range check.Errors() {
		out = append(out, fmt.Sprintf("%d: %s", e.Line, strings.TrimPrefix(e.Msg, `destination "d1": `)))
	}
	return out
}

func TestConfigCheckRequiredSecret(t *testing.T) {
	d := parseDest(t, "type: x\nuser: bob\napi_token: \"\"\n")
	env := Env{ConfigFile: "nocbridge.yaml", BaseDir: t.TempDir()}
	check := NewConfigCheck(env, d)
	if s, path, ok := check.RequiredSecret("api_token", "", "", "an API token of user"); s != "" || path != "api_token" || ok {
		t.Errorf("empty: (%q, %q, %v), want not ok", s, path, ok)
	}
	if s, _, ok := check.RequiredSecret("password", "", "", ""); s != "" || ok {
		t.Errorf("empty, no hint: (%q, %v), want not ok", s, ok)
	}
	if s, _, ok := check.RequiredSecret("password", "s3cr3t", "absent", ""); s != "" || ok {
		t.Errorf("unresolvable: (len %d, %v), want not ok", len(s), ok)
	}
	if s, _, ok := check.RequiredSecret("api_token", "s3cr3t", "", "x"); s != "s3cr3t" || !ok {
		t.Errorf("given: ok %v", ok)
	}
	got, want := recorded(check), []string{
		"3: api_token (or api_token_file) is required: an API token of user",
		"1: password (or password_file) is required",
		"1: password: set either the value or the _file key, not both",
	}
	if !slices.Equal(got, want) {
		t.Errorf("recorded\n %q\nwant\n %q", got, want)
	}
}

func TestConfigCheckBasicCredentials(t *testing.T) {
	d := parseDest(t, "type: x\nuser: bob\napi_token: t\n")
	env := Env{ConfigFile: "nocbridge.yaml"}
	creds := func(user string, secret config.Secret) BasicCredentials {
		return BasicCredentials{UserKey: "user", User: user, UserHint: "the account",
			SecretKey: "api_token", Secret: secret, SecretHint: "its token"}
	}
	for _, tc := range []struct {
		name, user   string
		secret       config.Secret
		wantRecorded []string
	}{
		{name: "ok", user: "bob", secret: "s3cr3t"},
		{name: "no user", secret: "s3cr3t", wantRecorded: []string{"2: user is required: the account"}},
		{name: "colon", user: "b:ob", secret: "s3cr3t", wantRecorded: []string{"2: user must not contain ':'"}},
		{name: "neither, secret first", wantRecorded: []string{"3: api_token (or api_token_file) is required: its token", "2: user is required: the account"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := NewConfigCheck(env, d)
			header, secrets := check.BasicCredentials(creds(tc.user, tc.secret))
			if got := recorded(check); !slices.Equal(got, tc.wantRecorded) {
				t.Errorf("recorded %q, want %q", got, tc.wantRecorded)
			}
			wantHeader, wantSecrets := "", []string(nil)
			if tc.wantRecorded == nil {
				wantHeader, wantSecrets = BasicAuth(tc.user, tc.secret.Reveal())
			}
			if header != wantHeader || !slices.Equal(secrets, wantSecrets) {
				t.Errorf("got %q %q, want %q %q", header, secrets, wantHeader, wantSecrets)
			}
		})
	}
}

func TestConfigCheckServiceURL(t *testing.T) {
	d := parseDest(t, "type: x\napi_url: ftp://x\nurl: y\n")
	check := NewConfigCheck(Env{ConfigFile: "nocbridge.yaml"}, d)
	if u := check.ServiceBase("api_url", "https://api.example/v1/", "the key goes in api_key"); u == nil || u.String() != "https://api.example/v1" {
		t.Errorf("ServiceBase = %v", u)
	}
	if u := check.ServiceURL("url", "https://events.example/enqueue?x=1", "k"); u == nil || u.String() != "https://events.example/enqueue?x=1" {
		t.Errorf("ServiceURL = %v", u)
	}
	if u := check.ServiceBase("api_url", "ftp://x", "k"); u != nil {
		t.Errorf("bad base = %v, want nil", u)
	}
	if u := check.ServiceURL("url", "https://u:p@events.example", "k"); u != nil {
		t.Errorf("bad URL = %v, want nil", u)
	}
	got, want := recorded(check), []string{
		"2: api_url ftp://x: scheme must be http or https",
		"3: url https://events.example: must not hold credentials (k)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("recorded\n %q\nwant\n %q", got, want)
	}
}

func TestConfigCheckDigest(t *testing.T) {
	env := Env{ConfigFile: "nocbridge.yaml"}
	for _, tc := range []struct {
		name string
		yaml string
		want DigestPolicy
		errs []string // each at its line, in order
	}{
		{name: "absent: the default", yaml: "url: x\n", want: DigestPolicy{After: 10, Window: time.Minute}},
		{name: "empty: the default", yaml: "digest:\n", want: DefaultDigest},
		{name: "true: the default", yaml: "digest: true\n", want: DefaultDigest},
		{name: "false: off", yaml: "digest: false\n", want: DigestPolicy{}},
		{name: "both keys", yaml: "digest: {after: 3, window: 30s}\n", want: DigestPolicy{After: 3, Window: 30 * time.Second}},
		{name: "one key, the other default", yaml: "digest:\n  window: 5m\n", want: DigestPolicy{After: 10, Window: 5 * time.Minute}},
		{name: "merged", yaml: "base: &b {digest: {after: 2}}\n<<: *b\n", want: DigestPolicy{After: 2, Window: time.Minute}},
		{name: "a string", yaml: "digest: off\n", want: DefaultDigest,
			errs: []string{`nocbridge.yaml:1: destination "d1": digest must be a mapping {after: 10, window: 1m} or false`}},
		{name: "unknown key", yaml: "digest:\n  after: 3\n  windw: 1m\n", want: DefaultDigest,
			errs: []string{`nocbridge.yaml:3: destination "d1": digest: unknown key "windw" (known: after, window)`}},
		{name: "wrong kinds", yaml: "digest:\n  after: ten\n  window: 60\n", want: DefaultDigest,
			errs: []string{
				`nocbridge.yaml:2: destination "d1": digest: after must be an integer, not a string`,
				`nocbridge.yaml:3: destination "d1": digest: window: invalid duration`,
			}},
		{name: "out of range", yaml: "digest:\n  after: 0\n  window: 10ms\n", want: DigestPolicy{After: 0, Window: 10 * time.Millisecond},
			errs: []string{
				`nocbridge.yaml:2: destination "d1": digest: after must be at least 1`,
				`nocbridge.yaml:3: destination "d1": digest: window must be at least 1s`,
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := NewConfigCheck(env, parseDest(t, tc.yaml))
			got := check.Digest()
			errs := check.Errors().Sorted()
			if len(errs) != len(tc.errs) {
				t.Fatalf("errors %v, want %d: %v", errs, len(tc.errs), tc.errs)
			}
			for i, want := range tc.errs {
				if !strings.HasPrefix(errs[i].Error(), want) {
					t.Errorf("error %d: %s\nwant prefix %s", i, errs[i], want)
				}
			}
			if len(tc.errs) == 0 && got != tc.want {
				t.Errorf("policy %+v, want %+v", got, tc.want)
			}
		})
	}
}
