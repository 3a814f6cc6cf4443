package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/nocbridge/nocbridge/internal/devstate"
	"github.com/nocbridge/nocbridge/internal/outbox"
)

// TestDeadLetterPaging: limit and cursor page /api/v1/deadletters, the
// next page announced in Link and X-Next-Cursor and absent on the last;
// without limit everything comes as before; bad values are 400 with a
// JSON error.
func TestDeadLetterPaging(t *testing.T) {
	d, ob, _ := testDeps(testToken, true)
	ob.dead = nil
	for i := range 5 {
		dest := "noc-webhook"
		if i%2 == 1 {
			dest = "other"
		}
		ob.dead = append(ob.dead, outbox.DeadLetter{ID: fmt.Sprintf("msg_%d", i), Destination: dest, Reason: "400", Attempts: 1})
	}
	srv := newServer(t, d)

	ids := func(body string) string {
		t.Helper()
		var dls []outbox.DeadLetter
		if err := json.Unmarshal([]byte(body), &dls); err != nil {
			t.Fatalf("not a JSON array of dead letters: %v\n%s", err, body)
		}
		var out []string
		for _, dl := range dls {
			out = append(out, strings.TrimPrefix(dl.ID, "msg_"))
		}
		return strings.Join(out, ",")
	}
	tests := []struct {
		name, query string
		status      int
		ids         string // the page's, by number
		next        string // X-Next-Cursor; "" for none
		errText     string // in the 400's JSON error
	}{
		{name: "no limit: all", query: "", status: 200, ids: "0,1,2,3,4"},
		{name: "limit 1", query: "?limit=1", status: 200, ids: "0", next: "d1"},
		{name: "limit 2 from a cursor", query: "?limit=2&cursor=d1", status: 200, ids: "1,2", next: "d3"},
		{name: "last page has no next", query: "?limit=2&cursor=d3", status: 200, ids: "3,4"},
		{name: "limit exactly all", query: "?limit=5", status: 200, ids: "0,1,2,3,4"},
		{name: "huge limit is the largest page", query: "?limit=99999999999999999999999", status: 200, ids: "0,1,2,3,4"},
		{name: "destination filter pages too", query: "?destination=other&limit=1", status: 200, ids: "1", next: "d3"},
		{name: "limit 0", query: "?limit=0", status: 400, errText: `limit "0": want a positive integer`},
		{name: "negative limit", query: "?limit=-3", status: 400, errText: `limit "-3": want a positive integer`},
		{name: "limit not a number", query: "?limit=ten", status: 400, errText: `limit "ten"`},
		{name: "empty limit", query: "?limit=", status: 400, errText: `limit ""`},
		{name: "bad cursor", query: "?limit=1&cursor=zzz", status: 400, errText: `"zzz" is not one a page of dead letters gave`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body, hdr := do(t, http.MethodGet, srv.URL+"/api/v1/deadletters"+tt.query, "", "")
			if status != tt.status {
				t.Fatalf("status %d, want %d: %s", status, tt.status, body)
			}
			if hdr.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type %q", hdr.Get("Content-Type"))
			}
			if tt.status != 200 {
				var e struct{ Error string }
				if err := json.Unmarshal([]byte(body), &e); err != nil || !strings.Contains(e.Error, tt.errText) {
					t.Errorf("error %q (%v), want it to say %q", body, err, tt.errText)
				}
				return
			}
			if got := ids(body); got != tt.ids {
				t.Errorf("page %s, want %s", got, tt.ids)
			}
			if got := hdr.Get("X-Next-Cursor"); got != tt.next {
				t.Errorf("X-Next-Cursor %q, want %q", got, tt.next)
			}
			link := hdr.Get("Link")
			if tt.next == "" {
				if link != "" {
					t.Errorf("last page announces a next one: %s", link)
				}
				return
			}
			// The link is this request with the next cursor, filters kept.
			if !strings.HasPrefix(link, "</api/v1/deadletters?") || !strings.HasSuffix(link, `>; rel="next"`) || !strings.Contains(link, "cursor="+tt.next) ||
				(strings.Contains(tt.query, "destination") && !strings.Contains(link, "destination=other")) {
				t.Errorf("Link %q", link)
			}
			next := strings.TrimSuffix(strings.TrimPrefix(link, "<"), `>; rel="next"`)
			if status, body, _ := do(t, http.MethodGet, srv.URL+next, "", ""); status != 200 || ids(body) == tt.ids {
				t.Errorf("following Link %s: %d %s", next, status, body)
			}
		})
	}
}

// newServer serves d on a loopback test server.
func newServer(t *testing.T, d Deps) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(Handler(d))
	t.Cleanup(srv.Close)
	return srv
}

// TestListPagingByKey: /api/v1/devices (and alerts and silences, the same
// helper) page by name when asked: following Link from limit=2 yields every
// device once, in name order, even when the device a cursor names is gone
// meanwhile; without limit or cursor the list is whole, as before.
func TestListPagingByKey(t *testing.T) {
	d, _, _ := testDeps(testToken, true)
	names := []string{"sw-b", "core 1/0", "sw-a", "édge", "sw-c"}
	d.Devices = func() []devstate.Status {
		var out []devstate.Status
		for _, n := range names {
			out = append(out, devstate.Status{Name: n})
		}
		return out
	}
	srv := newServer(t, d)
	list := func(url string) ([]string, string, int) {
		t.Helper()
		status, body, hdr := do(t, http.MethodGet, url, "", "")
		var devs []devstate.Status
		if status == 200 {
			if err := json.Unmarshal([]byte(body), &devs); err != nil {
				t.Fatalf("%s: %v\n%s", url, err, body)
			}
		}
		var got []string
		for _, dv := range devs {
			got = append(got, dv.Name)
		}
		link := strings.TrimSuffix(strings.TrimPrefix(hdr.Get("Link"), "<"), `>; rel="next"`)
		if (link == "") != (hdr.Get("X-Next-Cursor") == "") {
			t.Errorf("%s: Link %q but X-Next-Cursor %q", url, link, hdr.Get("X-Next-Cursor"))
		}
		return got, link, status
	}

	if all, link, _ := list(srv.URL + "/api/v1/devices"); strings.Join(all, ",") != strings.Join(names, ",") || link != "" {
		t.Fatalf("without limit: %v (next %q), want the list whole and in its order", all, link)
	}
	var seen []string
	url := srv.URL + "/api/v1/devices?limit=2"
	for pages := 0; url != srv.URL; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		got, link, status := list(url)
		if status != 200 || len(got) == 0 || len(got) > 2 {
			t.Fatalf("%s: %d, %v", url, status, got)
		}
		seen = append(seen, got...)
		if pages == 0 {
			names = slices.DeleteFunc(names, func(n string) bool { return n == got[1] }) // the cursor's device goes away
		}
		url = srv.URL + link
	}
	if want := "core 1/0,sw-a,sw-b,sw-c,édge"; strings.Join(seen, ",") != want {
		t.Errorf("pages gave %v, want %s once each", seen, want)
	}
	for _, bad := range []string{"?cursor=zzz", "?limit=1&cursor=k!!", "?limit=0"} {
		if _, _, status := list(srv.URL + "/api/v1/devices" + bad); status != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", bad, status)
		}
	}
	if got, _, _ := list(srv.URL + "/api/v1/devices?limit=2&cursor=" + "k" + base64.RawURLEncoding.EncodeToString([]byte("\uffff"))); len(got) != 0 {
		t.Errorf("past the end: %v, want an empty page", got)
	}
}
