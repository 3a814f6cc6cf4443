package notify

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestRedactorCredentialPatterns(t *testing.T) {
	r := Redactor{}
	for in, want := range map[string]string{
		"Authorization: Bearer abc.def-123":                     "Authorization: " + Redacted,
		`{"headers":{"authorization":"Basic dXNlcjpwdw=="}}`:    `{"headers":{"authorization":"` + Redacted + `"}}`,
		`{"Authorization": ["Bearer tok1"]}`:                    `{"Authorization": ["Bearer ` + Redacted + `"]}`,
		"Proxy-Authorization: Digest xyz\nnext":                 "Proxy-Authorization: " + Redacted + "\nnext",
		"sent bearer eyJhbGciOi.x.y and more":                   "sent bearer " + Redacted + " and more",
		"GenieKey 1234-abcd rejected":                           "GenieKey " + Redacted + " rejected",
		"GET /hook?token=s3cr3t&x=1":                            "GET /hook?token=" + Redacted + "&x=1",
		`{"access_token":"at-123","ok":false}`:                  `{"access_token":"` + Redacted + `","ok":false}`,
		"password=hunter2 user=bob":                             "password=" + Redacted + " user=bob",
		"X-Api-Key: k-42":                                       "X-Api-Key: " + Redacted,
		"api_key: abc":                                          "api_key: " + Redacted,
		`"client_secret" : "cs"`:                                `"client_secret" : "` + Redacted + `"`,
		"see https://bob:pw9@proxy.example/ for details":        "see https://" + Redacted + "@proxy.example/ for details",
		"token xoxb-1111-2222-abc leaked":                       "token " + Redacted + " leaked",
		"HTTP 400: field severity must be a string":             "HTTP 400: field severity must be a string",
		"invalid token, try again":                              "invalid token, try again",
		"https://h.example/hooks/x: HTTP 404: no such password": "https://h.example/hooks/x: HTTP 404: no such password",
	} {
		// Failures show what was expected, never an unscrubbed input.
		if got := r.Redact(in); got != want {
			t.Errorf("Redact gave something else than %q", want)
		}
	}
}

func TestRedactorCutsAfterScrubbing(t *testing.T) {
	const secret = "configured-secret-42"
	// The secret straddles the cut: scrubbed first, nothing of it stays.
	in := strings.Repeat("é", (MaxReason-10)/2) + secret + strings.Repeat("x", 5000)
	got := NewRedactor(4, secret).Redact(in)
	if len(got) > MaxReason || !strings.HasSuffix(got, Ellipsis) || !utf8.ValidString(got) {
		t.Errorf("cut to %d bytes (valid UTF-8 %v), want at most %d ending with %q", len(got), utf8.ValidString(got), MaxReason, Ellipsis)
	}
	if strings.Contains(got, "configured") {
		t.Error("a piece of the secret survived the cut")
	}
	if short := "short"; NewRedactor(4).Redact(short) != short {
		t.Error("short text changed")
	}
}

// An Error's text is scrubbed even when it was built without a Redactor.
func TestErrorTextScrubbed(t *testing.T) {
	e := &Error{Reason: "POST https://h/x: HTTP 400: echo", Err: errors.New("Authorization: Bearer leaked-42 " + strings.Repeat("y", 2*MaxReason))}
	if txt := e.Error(); strings.Contains(txt, "leaked-42") || len(txt) > MaxReason {
		t.Errorf("Error() is %d bytes or holds the token", len(txt))
	}
	if got := StatusError(400, []byte("token=abc123\n"), 0).Reason; got != "HTTP 400: token="+Redacted {
		t.Errorf("StatusError reason %q", got)
	}
}
