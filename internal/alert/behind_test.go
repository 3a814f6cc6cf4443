package alert

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nocbridge/nocbridge/internal/store"
)

// opStore is a Store that logs every write, can hold the first one until
// released, and can fail writes of chosen keys a number of times.
type opStore struct {
	mu    sync.Mutex
	data  map[string][]byte
	ops   []string
	fails map[string]int // key → failures left; -1 fails forever
	hold  chan struct{}  // non-nil: the first write waits for it to close
	held  bool
	down  bool // every write fails as on a full disk
}

func newOpStore() *opStore { return &opStore{data: map[string][]byte{}, fails: map[string]int{}} }

func (s *opStore) write(op, k string, v []byte) error {
	s.mu.Lock()
	hold := s.hold
	first := !s.held
	s.held = true
	s.mu.Unlock()
	if hold != nil && first {
		<-hold
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		s.ops = append(s.ops, op+" "+k+" refused")
		return fmt.Errorf("%w: no space left on device", store.ErrUnavailable)
	}
	if n := s.fails[k]; n != 0 {
		s.fails[k] = n - 1
		s.ops = append(s.ops, op+" "+k+" failed")
		return errors.New("disk full")
	}
	if v == nil {
		delete(s.data, k)
		s.ops = append(s.ops, op+" "+k)
		return nil
	}
	s.data[k] = append([]byte(nil), v...)
	s.ops = append(s.ops, op+" "+k+"="+string(v))
	return nil
}

func (s *opStore) Put(_ context.Context, k string, v []byte) error { return s.write("put", k, v) }
func (s *opStore) Delete(_ context.Context, k string) error        { return s.write("delete", k, nil) }
func (s *opStore) All(context.Context) (map[string][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]byte, len(s.data))
	for k, v := range s.data {
		out[k] = append([]byte(nil), v...)
	}
	return out, nil
}

func (s *opStore) log() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ops)
}

func TestWriteBehindKeepsOrderAndCoalesces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newOpStore()
		st.hold = make(chan struct{})
		w := newWriteBehind(st, slog.New(slog.DiscardHandler))
		w.put("a_1", []byte("v1"), "", "")
		synctest.Wait() // a_1 is under way, held
		w.put("a_2", []byte("v2"), "", "")
		w.put("j_1", nil, "", "")
		w.put("a_1", []byte("v1b"), "", "") // a_1 is under way: queued after it
		w.put("a_2", []byte("v2b"), "", "") // replaces the queued a_2 in its place
		if !w.queued("a_2") || w.queued("a_3") {
			t.Error("queued: want a_2 reported queued and a_3 not")
		}
		close(st.hold)
		w.drain()
		want := []string{"put a_1=v1", "put a_2=v2b", "delete j_1", "put a_1=v1b"}
		if got := st.log(); !slices.Equal(got, want) {
			t.Errorf("writes %q; want %q", got, want)
		}
		if w.queued("a_1") || w.queued("a_2") {
			t.Error("keys still reported queued after drain")
		}
	})
}

func TestWriteBehindRetriesAndHoldsLaterWrites(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newOpStore()
		st.fails["a_1"] = 3
		w := newWriteBehind(st, slog.New(slog.DiscardHandler))
		start := time.Now()
		w.put("a_1", []byte("v1"), "NETWORK-DEVICES-1-101", "core-sw1")
		w.put("j_1", nil, "", "")
		synctest.Wait()
		if got := st.log(); !slices.Equal(got, []string{"put a_1 failed"}) {
			t.Fatalf("writes %q; want one failed a_1 and the journal deletion held back", got)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		want := []string{"put a_1 failed", "put a_1 failed", "put a_1 failed", "put a_1=v1", "delete j_1"}
		if got := st.log(); !slices.Equal(got, want) {
			t.Errorf("writes %q; want %q", got, want)
		}
		// Backoff 100ms, 200ms, 400ms before the three retries.
		if d := time.Since(start); d < 700*time.Millisecond {
			t.Errorf("retried within %v; want backoff", d)
		}
	})
}

func TestWriteBehindDrainLeavesFailingWritesToTheJournal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newOpStore()
		st.fails["a_1"] = -1
		w := newWriteBehind(st, slog.New(slog.DiscardHandler))
		w.put("a_0", []byte("v0"), "", "")
		w.put("a_1", []byte("v1"), "", "")
		w.put("j_1", nil, "", "")
		done := make(chan struct{})
		go func() {
			w.drain()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Fatal("drain did not return with a write failing for ever")
		}
		got := st.log()
		if !slices.Equal(got[:2], []string{"put a_0=v0", "put a_1 failed"}) || slices.Contains(got, "delete j_1") {
			t.Errorf("writes %q; want a_0 written, a_1 failed and the journal entry kept", got)
		}
	})
}

// TestWriteBehindManyKeys checks that a burst of writes all land, each key
// with its last value.
func TestWriteBehindManyKeys(t *testing.T) {
	st := newOpStore()
	w := newWriteBehind(st, slog.New(slog.DiscardHandler))
	for round := range 3 {
		for i := range 200 {
			w.put(fmt.Sprintf("a_%d", i), fmt.Appendf(nil, "r%d", round), "", "")
		}
	}
	w.drain()
	data, _ := st.All(context.Background())
	for i := range 200 {
		if v := string(data[fmt.Sprintf("a_%d", i)]); v != "r2" {
			t.Fatalf("a_%d = %q; want the last value r2", i, v)
		}
	}
}
