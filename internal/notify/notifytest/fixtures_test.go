package notifytest

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/notify"
)

// recorder is a testing.TB that keeps what a helper reports; Fatal ends
// the goroutine as the real one does.
type recorder struct {
	testing.TB
	failures []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}
func (r *recorder) Fatal(args ...any) {
	r.failures = append(r.failures, fmt.Sprint(args...))
	runtime.Goexit()
}

// run calls helper with a recorder and returns what it reported.
func run(helper func(t testing.TB)) []string {
	r := &recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		helper(r)
	}()
	<-done
	return r.failures
}

func TestHelpersReport(t *testing.T) {
	const secret = "s3cr3t-value"
	leaky := &notify.Error{Reason: "POST https://h: HTTP 401: bad token " + secret, Status: 401}
	for _, tc := range []struct {
		name     string
		helper   func(t testing.TB)
		wantFail string // "" when the helper must pass
	}{
		{name: "no secret", helper: func(t testing.TB) { NoSecretsIn(t, []string{secret}, []string{"clean", "text"}) }},
		{name: "secret leaked", wantFail: "secret #0 leaked into text #1",
			helper: func(t testing.TB) { NoSecretsIn(t, []string{secret}, []string{"clean", "x" + secret}) }},
		{name: "failures collect text and reason", wantFail: "secret #0 leaked into text #0",
			helper: func(t testing.TB) {
				var f Failures
				f.Add(t, &notify.Error{Reason: "r " + secret, Err: errors.New("cause")})
				f.Add(t, fmt.Errorf("sending: %w", errors.New("clean")))
				if len(f) != 3 {
					t.Errorf("collected %d texts, want 3", len(f))
				}
				NoSecretsIn(t, []string{secret}, f[1:]) // the reason alone
			}},
		{name: "failures want an error", wantFail: "expected an error",
			helper: func(t testing.TB) { var f Failures; f.Add(t, nil) }},
		{name: "classified", helper: func(t testing.TB) {
			Classified{Status: 401, Reason: "bad token"}.Check(t, leaky)
		}},
		{name: "misclassified", wantFail: "want 401 true 0s",
			helper: func(t testing.TB) { Classified{Status: 401, Retryable: true, Reason: "bad token"}.Check(t, leaky) }},
		{name: "config errors match", helper: func(t testing.TB) {
			ConfigErrors(t, config.Errors{{File: "c.yaml", Line: 3, Msg: "url is required"}}, []string{"c.yaml:3: url"})
		}},
		{name: "config errors differ", wantFail: "want prefix",
			helper: func(t testing.TB) {
				ConfigErrors(t, config.Errors{{File: "c.yaml", Line: 3, Msg: "url is required"}}, []string{"c.yaml:4: url"})
			}},
		{name: "not config errors", wantFail: "want config.Errors",
			helper: func(t testing.TB) { ConfigErrors(t, errors.New("boom"), []string{"c.yaml:4: url"}) }},
		{name: "status case success", helper: func(t testing.TB) { StatusCase{Reply: Reply{Status: 204}}.Check(t, nil, "x") }},
		{name: "status case names the target", wantFail: "does not start with the endpoint",
			helper: func(t testing.TB) {
				StatusCase{Reply: Reply{Status: 401}, WantReason: "HTTP 401"}.Check(t, &notify.Error{Reason: "POST https://h: HTTP 401", Status: 401}, "discord webhook https://h")
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := run(tc.helper)
			switch {
			case tc.wantFail == "" && len(got) > 0:
				t.Errorf("helper failed: %q", got)
			case tc.wantFail != "" && (len(got) == 0 || !strings.Contains(strings.Join(got, "\n"), tc.wantFail)):
				t.Errorf("helper reported %q, want a failure containing %q", got, tc.wantFail)
			}
			for _, f := range got {
				if strings.Contains(f, secret) {
					t.Errorf("a failure message quotes the secret")
				}
			}
		})
	}
}

func TestFixtures(t *testing.T) {
	down, up := DeviceDown(), DeviceUp()
	if up.Status == down.Status || up.Timestamp.Sub(down.Timestamp) != 90*time.Second || up.Details["Loss Percent"] != "0" || down.Details["Loss Percent"] != "100" {
		t.Errorf("DeviceUp %+v is not DeviceDown %+v recovered", up, down)
	}
	env := Env(t.TempDir(), nil)
	if env.ExternalURL != ExternalURL || env.UserAgent != UserAgent || env.ConfigFile != ConfigFile || env.Logger == nil {
		t.Errorf("Env = %+v", env)
	}
}
