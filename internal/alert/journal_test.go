package alert

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/nocbridge/nocbridge/internal/event"
)

func mustRecord(t *testing.T, r record) []byte {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestJournalEntriesSplitAndRoundTrip(t *testing.T) {
	records := map[string][]byte{}
	for i := range 3000 {
		in := Instance{EventID: "NETWORK-INTERFACES-2-301", Device: *sw, Key: fmt.Sprint(i), State: StateFiring,
			Unsent: &event.Event{InstanceID: fmt.Sprintf("id-%d", i), Description: strings.Repeat("x", 200)}}
		records[instanceKey(in.EventID, sw.Name, in.Key)] = mustRecord(t, record{Instance: in, Rev: 7})
	}
	entries := journalEntries(7, records)
	if len(entries) < 2 {
		t.Fatalf("%d journal entries for %d records of ~400 bytes; want them split below %d bytes", len(entries), len(records), maxJournalBytes)
	}
	got := map[string][]byte{}
	for k, v := range entries {
		if !strings.HasPrefix(k, journalPrefix+"0000000000000007_") {
			t.Errorf("journal key %q; want prefix %s plus the revision", k, journalPrefix)
		}
		if len(v) > maxJournalBytes {
			t.Errorf("entry %s is %d bytes, above %d", k, len(v), maxJournalBytes)
		}
		var batch map[string]json.RawMessage
		if err := json.Unmarshal(v, &batch); err != nil {
			t.Fatalf("entry %s is not a JSON object: %v", k, err)
		}
		for ik, rec := range batch {
			if _, dup := got[ik]; dup {
				t.Errorf("instance %s in two entries", ik)
			}
			got[ik] = rec
		}
	}
	if !maps.EqualFunc(got, records, func(a, b []byte) bool { return string(a) == string(b) }) {
		t.Errorf("entries hold %d records; want the %d written, byte for byte", len(got), len(records))
	}
}

func TestMergeStored(t *testing.T) {
	firing := Instance{EventID: "NETWORK-INTERFACES-2-301", Device: *sw, Key: "3", State: StateFiring, ResolveTo: []string{"hook"}}
	unsent := firing
	unsent.ResolveTo = nil
	unsent.Unsent = &event.Event{InstanceID: "i-1", Status: event.StatusActive}
	resolving := firing
	resolving.Unsent = &event.Event{InstanceID: "i-1", Status: event.StatusResolved}
	journal := func(rev uint64, recs map[string]Instance) []byte {
		out := map[string]record{}
		for k, in := range recs {
			out[k] = record{Instance: in, Rev: rev}
		}
		b, err := json.Marshal(out)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	oldFormat, err := json.Marshal(firing) // written before records had revisions
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name        string
		stored      map[string][]byte
		want        map[string]Instance
		fromJournal []string
		rev         uint64
		bad         int
	}{
		{
			name:   "own keys only",
			stored: map[string][]byte{"a_1": mustRecord(t, record{Instance: firing, Rev: 3})},
			want:   map[string]Instance{"a_1": firing}, rev: 3,
		},
		{
			name: "a newer journal entry wins: crash before the sent mark",
			stored: map[string][]byte{
				"a_1":            mustRecord(t, record{Instance: firing, Rev: 2}),
				journalKey(3, 0): journal(3, map[string]Instance{"a_1": resolving}),
				"a_2":            mustRecord(t, record{Instance: firing, Rev: 1}),
				journalKey(1, 0): journal(1, map[string]Instance{"a_2": unsent}),
			},
			want:        map[string]Instance{"a_1": resolving, "a_2": firing},
			fromJournal: []string{"a_1"}, rev: 3,
		},
		{
			name: "on a tie the own key wins: it is written after the journal",
			stored: map[string][]byte{
				"a_1":            mustRecord(t, record{Instance: firing, Rev: 5}),
				journalKey(5, 0): journal(5, map[string]Instance{"a_1": unsent}),
			},
			want: map[string]Instance{"a_1": firing}, rev: 5,
		},
		{
			name: "only in the journal: crash before the first own write",
			stored: map[string][]byte{
				journalKey(4, 0): journal(4, map[string]Instance{"a_9": unsent}),
				journalKey(4, 1): journal(4, map[string]Instance{"a_8": unsent}),
			},
			want:        map[string]Instance{"a_9": unsent, "a_8": unsent},
			fromJournal: []string{"a_8", "a_9"}, rev: 4,
		},
		{
			name:   "records from before revisions load as revision 0",
			stored: map[string][]byte{"a_1": oldFormat, journalKey(1, 0): journal(1, map[string]Instance{"a_1": unsent})},
			want:   map[string]Instance{"a_1": unsent}, fromJournal: []string{"a_1"}, rev: 1,
		},
		{
			name: "unreadable entries are dropped and reported",
			stored: map[string][]byte{
				"a_1": []byte("{"), journalKey(2, 0): []byte("["),
				"a_2": mustRecord(t, record{Instance: firing, Rev: 1}),
			},
			want: map[string]Instance{"a_2": firing}, rev: 1, bad: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := mergeStored(tt.stored)
			if len(st.bad) != tt.bad {
				t.Errorf("bad = %v; want %d", st.bad, tt.bad)
			}
			if st.rev != tt.rev {
				t.Errorf("rev = %d; want %d", st.rev, tt.rev)
			}
			got := map[string]Instance{}
			for k, in := range st.instances {
				got[k] = *in
			}
			if !maps.EqualFunc(got, tt.want, sameInstance) {
				t.Errorf("instances = %+v; want %+v", got, tt.want)
			}
			if fj := slices.Sorted(maps.Keys(st.fromJournal)); !slices.Equal(fj, tt.fromJournal) {
				t.Errorf("fromJournal = %v; want %v", fj, tt.fromJournal)
			}
			var wantJournals []string
			for k := range tt.stored {
				if strings.HasPrefix(k, journalPrefix) {
					wantJournals = append(wantJournals, k)
				}
			}
			slices.Sort(wantJournals)
			if got := slices.Sorted(slices.Values(st.journals)); !slices.Equal(got, wantJournals) {
				t.Errorf("journals = %v; want every journal key %v, to be retired", got, wantJournals)
			}
		})
	}
}

func sameInstance(a, b Instance) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}
