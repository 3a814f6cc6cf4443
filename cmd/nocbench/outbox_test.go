package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestBenchReceiver: a webhook-id seen twice is a duplicate, and one nobody
// sent (or a request that is not a POST) is unexpected; either fails.
func TestBenchReceiver(t *testing.T) {
	rcv := newBenchReceiver(2)
	rcv.expect("msg_a", 0)
	rcv.expect("msg_b", 1)
	for _, r := range []struct{ method, id string }{
		{http.MethodPost, "msg_a"},
		{http.MethodPost, "msg_a"}, // a redelivery
		{http.MethodPost, "msg_b"},
		{http.MethodPost, "msg_z"}, // never sent
		{http.MethodPut, "msg_b"},
	} {
		req := httptest.NewRequest(r.method, "/bench-0", nil)
		req.Header.Set("webhook-id", r.id)
		w := httptest.NewRecorder()
		rcv.ServeHTTP(w, req)
		if w.Code != http.StatusNoContent {
			t.Fatalf("%s %s: answered %d; want 204", r.method, r.id, w.Code)
		}
	}
	delivered, dups, unknown := rcv.results()
	if delivered[0].IsZero() || delivered[1].IsZero() || dups != 1 || unknown != 2 {
		t.Fatalf("delivered %v, %d duplicates, %d unexpected; want both delivered, 1 duplicate, 2 unexpected", delivered, dups, unknown)
	}
	if err := outboxVerdict(2, 2, dups, 0, 5000, 2000); err == nil {
		t.Error("outboxVerdict with a duplicate passed")
	}
	if err := outboxVerdict(2, 2, 0, unknown, 5000, 2000); err == nil {
		t.Error("outboxVerdict with unexpected deliveries passed")
	}
	if err := outboxVerdict(2, 2, 0, 0, 5000, 2000); err != nil {
		t.Errorf("outboxVerdict on a clean run: %v", err)
	}
}
