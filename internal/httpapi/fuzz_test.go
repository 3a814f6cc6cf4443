package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Whatever the body, the dead-letter replay answers 200, 400 (not JSON, or
// not ours) or 404 (an unknown id), never a server error or a panic.
func FuzzReplayBody(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"id":"msg_dead1"}`, `{"destination":"other"}`, `{"id":"nope"}`, `{"id":1}`, `[]`, `{"id":"a"}{"id":"b"}`} {
		f.Add(s)
	}
	d, _, _ := testDeps(testToken, true)
	h := Handler(d)
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest(http.MethodPost, "/api/v1/deadletters/replay", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusNotFound:
		default:
			t.Fatalf("body %q: status %d %s", body, rec.Code, rec.Body)
		}
	})
}
