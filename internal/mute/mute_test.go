package mute

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/store"
)

// memStore is a Store in memory; fail makes writes fail.
type memStore struct {
	mu   sync.Mutex
	m    map[string][]byte
	fail error
}

func newMemStore() *memStore { return &memStore{m: map[string][]byte{}} }

func (s *memStore) Put(_ context.Context, k string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.m[k] = v
	return nil
}

func (s *memStore) Delete(_ context.Context, k string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	delete(s.m, k)
	return nil
}

func (s *memStore) All(context.Context) (map[string][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.m), nil
}

func (s *memStore) keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.m))
}

// clock is a settable Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

var t0 = utc("2026-06-01T12:00:00Z") // a Monday

func newSet(t *testing.T, st Store, ws []*Window, now *clock) *Set {
	t.Helper()
	s, err := New(context.Background(), st, ws, Options{Now: now.Now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func devices(names ...string) config.Match {
	return config.Match{Selector: config.Selector{Devices: names}}
}

func TestAddRefusesWithEveryReason(t *testing.T) {
	s := newSet(t, newMemStore(), nil, &clock{t: t0})
	tests := []struct {
		name string
		n    NewSilence
		want []string
	}{
		{"empty match, no end, no comment", NewSilence{}, []string{"match is empty", "ends_at or duration is required", "comment is required"}},
		{"bad globs", NewSilence{Match: config.Match{Selector: config.Selector{Devices: []string{"core-["}}, EventIDs: []string{"X-\\"}}, Duration: Duration(time.Hour), Comment: "c"},
			[]string{`match event_ids[0] "X-\\" is not a valid glob`, `match devices[0] "core-[" is not a valid glob`}},
		{"both ends", NewSilence{Match: devices("sw1"), EndsAt: t0.Add(time.Hour), Duration: Duration(time.Hour), Comment: "c"}, []string{"give ends_at or duration, not both"}},
		{"negative duration", NewSilence{Match: devices("sw1"), Duration: Duration(-time.Hour), Comment: "c"}, []string{"duration must be positive"}},
		{"ends before it starts", NewSilence{Match: devices("sw1"), StartsAt: t0.Add(2 * time.Hour), EndsAt: t0.Add(time.Hour), Comment: "c"}, []string{"ends_at must be after starts_at"}},
		{"ends in the past", NewSilence{Match: devices("sw1"), StartsAt: t0.Add(-2 * time.Hour), EndsAt: t0.Add(-time.Hour), Comment: "c"}, []string{"ends_at 2026-06-01T11:00:00Z is in the past"}},
		{"blank comment", NewSilence{Match: devices("sw1"), Duration: Duration(time.Hour), Comment: "  "}, []string{"comment is required"}},
		{"long comment", NewSilence{Match: devices("sw1"), Duration: Duration(time.Hour), Comment: strings.Repeat("x", maxComment+1)}, []string{"comment is longer than 1024 bytes"}},
		{"long created_by", NewSilence{Match: devices("sw1"), Duration: Duration(time.Hour), Comment: "c", CreatedBy: strings.Repeat("x", maxCreatedBy+1)}, []string{"created_by is longer than 256 bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Add(context.Background(), tt.n)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Add: %v, want ErrInvalid", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	if l := s.List(); len(l) != 0 {
		t.Errorf("refused silences were kept: %+v", l)
	}
}

func TestAddListExpire(t *testing.T) {
	st, now := newMemStore(), &clock{t: t0}
	s := newSet(t, st, nil, now)
	ctx := context.Background()

	active, err := s.Add(ctx, NewSilence{Match: devices("core-sw1"), Duration: Duration(2 * time.Hour), Comment: " CHG-1 ", CreatedBy: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if active.ID == "" || active.State != Active || !active.StartsAt.Equal(t0) || !active.EndsAt.Equal(t0.Add(2*time.Hour)) ||
		active.Comment != "CHG-1" || active.CreatedBy != "alice" || !active.CreatedAt.Equal(t0) {
		t.Fatalf("added %+v", active)
	}
	pending, err := s.Add(ctx, NewSilence{Match: devices("sw2"), StartsAt: t0.Add(time.Hour), EndsAt: t0.Add(3 * time.Hour), Comment: "later"})
	if err != nil {
		t.Fatal(err)
	}
	if pending.State != Pending {
		t.Fatalf("a silence starting later is %s, want pending", pending.State)
	}
	if got := st.keys(); !slices.Equal(got, slices.Sorted(slices.Values([]string{active.ID, pending.ID}))) {
		t.Fatalf("stored keys %v", got)
	}

	// Expiring the pending one ends it before it starts.
	now.Set(t0.Add(10 * time.Minute))
	exp, err := s.Expire(ctx, pending.ID)
	if err != nil {
		t.Fatal(err)
	}
	if exp.State != Expired || !exp.EndsAt.Equal(now.Now()) || !exp.StartsAt.Equal(now.Now()) {
		t.Fatalf("expired pending silence %+v", exp)
	}
	// Again: unchanged, not an error.
	now.Set(t0.Add(20 * time.Minute))
	if again, err := s.Expire(ctx, pending.ID); err != nil || !again.EndsAt.Equal(exp.EndsAt) {
		t.Fatalf("expiring twice: %+v, %v", again, err)
	}
	if _, err := s.Expire(ctx, "no-such-id"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown id: %v, want ErrNotFound", err)
	}

	list := s.List()
	if len(list) != 2 || list[0].ID != active.ID || list[0].State != Active || list[1].ID != pending.ID || list[1].State != Expired {
		t.Fatalf("List: %+v; want the active one, then the expired one", list)
	}
	// The stored form holds no state: it is computed when listed.
	if strings.Contains(string(st.m[active.ID]), "state") {
		t.Errorf("stored silence carries a state: %s", st.m[active.ID])
	}

	now.Set(t0.Add(2 * time.Hour))
	if l := s.List(); l[0].State != Expired || l[1].State != Expired {
		t.Errorf("at its end a silence is expired: %+v", l)
	}
}

func TestAddKeepsNothingWhenTheStoreFails(t *testing.T) {
	st := newMemStore()
	s := newSet(t, st, nil, &clock{t: t0})
	changed := s.Changed()
	st.fail = errors.New("disk full")
	if _, err := s.Add(context.Background(), NewSilence{Match: devices("sw1"), Duration: Duration(time.Hour), Comment: "c"}); err == nil || errors.Is(err, ErrInvalid) {
		t.Fatalf("Add with a failing store: %v, want the store's error", err)
	}
	if len(s.List()) != 0 {
		t.Error("a silence the store refused is in force")
	}
	select {
	case <-changed:
		t.Error("Changed closed without a change")
	default:
	}
}

func TestMutedBy(t *testing.T) {
	ws, err := Compile([]config.Maintenance{
		{Name: "sunday-patching", Match: config.Match{Selector: config.Selector{Sites: []string{"HQ"}, Roles: []string{"access"}}}, Every: "sun 02:00", Duration: config.Duration(2 * time.Hour), Timezone: "UTC"},
		{Name: "interfaces", Match: config.Match{Selector: config.Selector{Devices: []string{"*"}}, EventIDs: []string{"NETWORK-INTERFACES-*"}}, Every: "02:00", Duration: config.Duration(time.Hour), Timezone: "UTC"},
	})
	if err != nil {
		t.Fatal(err)
	}
	now := &clock{t: utc("2026-06-07T00:00:00Z")} // a Sunday
	s := newSet(t, newMemStore(), ws, now)
	sil, err := s.Add(context.Background(), NewSilence{Match: config.Match{Selector: config.Selector{Devices: []string{"acc-*"}, Labels: map[string]string{"vendor": "cisco"}}},
		StartsAt: utc("2026-06-07T02:30:00Z"), EndsAt: utc("2026-06-07T05:00:00Z"), Comment: "c"})
	if err != nil {
		t.Fatal(err)
	}
	acc := &inventory.Device{Name: "acc-sw7", Site: "HQ", Role: "access", Labels: map[string]string{"vendor": "cisco"}}
	core := &inventory.Device{Name: "core-sw1", Site: "HQ", Role: "core"}
	const down, ifDown = "NETWORK-DEVICES-1-101", "NETWORK-INTERFACES-2-301"
	tests := []struct {
		d    *inventory.Device
		ev   string
		at   string
		want []string
	}{
		{acc, down, "2026-06-07T01:59:59Z", nil},
		{acc, down, "2026-06-07T02:00:00Z", []string{"maintenance sunday-patching"}},
		{acc, ifDown, "2026-06-07T02:00:00Z", []string{"maintenance sunday-patching", "maintenance interfaces"}},
		{core, ifDown, "2026-06-07T02:00:00Z", []string{"maintenance interfaces"}},
		{core, down, "2026-06-07T02:00:00Z", nil},
		{acc, down, "2026-06-07T02:30:00Z", []string{"maintenance sunday-patching", "silence " + sil.ID}},
		{acc, down, "2026-06-07T04:00:00Z", []string{"silence " + sil.ID}},
		{acc, down, "2026-06-07T05:00:00Z", nil},
		{&inventory.Device{Name: "acc-sw8", Site: "HQ", Role: "access"}, down, "2026-06-07T04:00:00Z", nil}, // no vendor label
		{acc, down, "2026-06-08T02:30:00Z", nil},                                                            // Monday
		{nil, ifDown, "2026-06-08T02:30:00Z", []string{"maintenance interfaces"}},
		{nil, down, "2026-06-07T02:30:00Z", nil},
	}
	for _, tt := range tests {
		name := "unknown device"
		if tt.d != nil {
			name = tt.d.Name
		}
		if got := s.MutedBy(tt.d, tt.ev, utc(tt.at)); !slices.Equal(got, tt.want) {
			t.Errorf("MutedBy(%s, %s, %s) = %q, want %q", name, tt.ev, tt.at, got, tt.want)
		}
	}
}

func TestNextBoundary(t *testing.T) {
	ws, err := Compile([]config.Maintenance{
		{Name: "nightly", Match: devices("*"), Every: "02:00", Duration: config.Duration(time.Hour), Timezone: "UTC"},
	})
	if err != nil {
		t.Fatal(err)
	}
	now := &clock{t: utc("2026-06-01T00:00:00Z")}
	s := newSet(t, newMemStore(), ws, now)
	if _, err := s.Add(context.Background(), NewSilence{Match: devices("sw1"), StartsAt: utc("2026-06-01T02:30:00Z"), EndsAt: utc("2026-06-01T04:00:00Z"), Comment: "c"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][2]string{
		{"2026-06-01T00:00:00Z", "2026-06-01T02:00:00Z"}, // window starts
		{"2026-06-01T02:00:00Z", "2026-06-01T02:30:00Z"}, // silence starts
		{"2026-06-01T02:30:00Z", "2026-06-01T03:00:00Z"}, // window ends
		{"2026-06-01T03:00:00Z", "2026-06-01T04:00:00Z"}, // silence ends
		{"2026-06-01T04:00:00Z", "2026-06-02T02:00:00Z"}, // tomorrow's window
	} {
		if got, ok := s.NextBoundary(utc(c[0])); !ok || !got.Equal(utc(c[1])) {
			t.Errorf("NextBoundary(%s) = %s, %v; want %s", c[0], got, ok, c[1])
		}
	}
	empty := newSet(t, newMemStore(), nil, now)
	if got, ok := empty.NextBoundary(t0); ok {
		t.Errorf("nothing configured: NextBoundary = %s, want none", got)
	}
}

func TestChanged(t *testing.T) {
	s := newSet(t, newMemStore(), nil, &clock{t: t0})
	ctx := context.Background()
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	ch := s.Changed()
	sl, err := s.Add(ctx, NewSilence{Match: devices("sw1"), Duration: Duration(time.Hour), Comment: "c"})
	if err != nil || !closed(ch) {
		t.Fatalf("Add: %v; Changed closed %v", err, closed(ch))
	}
	ch = s.Changed()
	if closed(ch) {
		t.Fatal("a fresh Changed channel is closed")
	}
	if _, err := s.Expire(ctx, sl.ID); err != nil || !closed(ch) {
		t.Fatalf("Expire: %v; Changed closed %v", err, closed(ch))
	}
	ch = s.Changed()
	if _, err := s.Expire(ctx, sl.ID); err != nil || closed(ch) {
		t.Fatalf("expiring an expired silence changes nothing: %v, closed %v", err, closed(ch))
	}
	s.SetWindows([]*Window{window(t, config.Maintenance{Every: "02:00", Duration: config.Duration(time.Hour), Timezone: "UTC"})})
	if !closed(ch) || len(s.Windows()) != 1 {
		t.Fatal("SetWindows: Changed not closed, or windows not swapped")
	}
}

// Expired silences stay listed for Retention, then Run deletes them from
// the set and the store. Under synctest the timers run on a fake clock.
func TestRunDeletesAfterRetention(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newMemStore()
		s, err := New(t.Context(), st, nil, Options{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- s.Run(ctx) }()

		short, err := s.Add(ctx, NewSilence{Match: devices("sw1"), Duration: Duration(time.Hour), Comment: "c"})
		if err != nil {
			t.Fatal(err)
		}
		long, err := s.Add(ctx, NewSilence{Match: devices("sw2"), Duration: Duration(48 * time.Hour), Comment: "c"})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Hour + Retention - time.Second)
		synctest.Wait()
		if l := s.List(); len(l) != 2 || l[1].ID != short.ID || l[1].State != Expired {
			t.Fatalf("just before its retention ends: %+v; want it listed as expired", l)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if l := s.List(); len(l) != 1 || l[0].ID != long.ID {
			t.Fatalf("after retention: %+v; want only %s", l, long.ID)
		}
		if got := st.keys(); !slices.Equal(got, []string{long.ID}) {
			t.Fatalf("stored %v, want only %s", got, long.ID)
		}
		// A failed delete is tried again later.
		st.mu.Lock()
		st.fail = errors.New("disk full")
		st.mu.Unlock()
		time.Sleep(48*time.Hour + Retention)
		synctest.Wait()
		if len(s.List()) != 1 {
			t.Fatal("a silence whose deletion failed vanished from the list")
		}
		st.mu.Lock()
		st.fail = nil
		st.mu.Unlock()
		time.Sleep(purgeRetry)
		synctest.Wait()
		if len(s.List()) != 0 || len(st.keys()) != 0 {
			t.Fatalf("deletion not retried: %+v, stored %v", s.List(), st.keys())
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
	})
}

// Silences survive a restart: the real embedded store, closed and opened
// again.
func TestSilencesSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	now := &clock{t: time.Now().UTC().Truncate(time.Second)}
	open := func() (*store.Store, *Set) {
		st, err := store.Open(ctx, store.Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		b, err := st.Bucket(ctx, "silences")
		if err != nil {
			t.Fatal(err)
		}
		return st, newSet(t, b, nil, now)
	}
	st, s := open()
	a, err := s.Add(ctx, NewSilence{Match: config.Match{Selector: config.Selector{Sites: []string{"HQ"}}, EventIDs: []string{"NETWORK-*"}}, Duration: Duration(time.Hour), Comment: "a", CreatedBy: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Add(ctx, NewSilence{Match: devices("core-sw1"), Duration: Duration(time.Hour), Comment: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expire(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	want := s.List()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st, s = open()
	defer st.Close()
	got := s.List()
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Fatalf("after reopening:\n%+v\nwant:\n%+v", got, want)
	}
	if got[0].ID != a.ID || got[1].ID != b.ID || got[1].State != Expired {
		t.Fatalf("after reopening: %+v", got)
	}
}

func TestUnreadableStoredSilenceIsSkipped(t *testing.T) {
	st := newMemStore()
	st.m["broken"] = []byte("{not json")
	st.m["other-id"] = []byte(`{"id":"mismatch"}`)
	s := newSet(t, st, nil, &clock{t: t0})
	if l := s.List(); len(l) != 0 {
		t.Fatalf("List: %+v", l)
	}
	if len(st.keys()) != 2 {
		t.Error("an unreadable value was deleted; it should be left for a newer version")
	}
}

func TestMetrics(t *testing.T) {
	now := &clock{t: t0}
	reg := prometheus.NewRegistry()
	s, err := New(context.Background(), newMemStore(), nil, Options{Now: now.Now, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, n := range []NewSilence{
		{Match: devices("a"), Duration: Duration(time.Hour), Comment: "c"},
		{Match: devices("b"), Duration: Duration(time.Hour), Comment: "c"},
		{Match: devices("c"), StartsAt: t0.Add(time.Hour), Duration: Duration(time.Hour), Comment: "c"},
	} {
		if _, err := s.Add(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	now.Set(t0.Add(90 * time.Minute))
	want := `# HELP nocbridge_silences Silences by state: active, pending, or expired and still listed.
# TYPE nocbridge_silences gauge
nocbridge_silences{state="active"} 1
nocbridge_silences{state="expired"} 2
nocbridge_silences{state="pending"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "nocbridge_silences"); err != nil {
		t.Error(err)
	}
}

// The gate asks from many goroutines while silences come and go.
func TestConcurrentUse(t *testing.T) {
	s := newSet(t, newMemStore(), nil, &clock{t: t0})
	ctx := context.Background()
	d := &inventory.Device{Name: "sw1"}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 4 {
		readers.Go(func() {
			for {
				s.MutedBy(d, "X", t0)
				s.NextBoundary(t0)
				select {
				case <-s.Changed():
				case <-stop:
					return
				}
			}
		})
	}
	for i := range 100 {
		sl, err := s.Add(ctx, NewSilence{Match: devices("sw1"), Duration: Duration(time.Hour), Comment: "c"})
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if _, err := s.Expire(ctx, sl.ID); err != nil {
				t.Fatal(err)
			}
		}
		s.SetWindows(nil)
	}
	close(stop)
	readers.Wait()
	if n := len(s.List()); n != 100 {
		t.Errorf("%d silences listed, want 100", n)
	}
}
