package alert

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// The store holds two kinds of entries:
//
//   - "a_…" (instanceKey): one instance, as the API shows it plus the
//     revision of the batch that last changed it;
//   - "j_…" (journalKey): a batch's transitions, each instance with its
//     event unsent, written in one store write before any of them is
//     dispatched.
//
// Each store write costs an fsync, so writing a batch as one journal entry
// instead of one entry per instance is what lets a burst of alerts reach
// the outbox in a few milliseconds. Once the batch is dispatched, its
// instances are written to their own keys and the journal entry is deleted
// (written behind, in that order: see writeBehind). At start, an instance
// takes its newest revision from either kind, so a crash at any point
// loses no transition and replays at most the last one.

const journalPrefix = "j_"

// maxJournalBytes bounds one journal entry, well below the store's message
// size limit (1 MiB); a larger batch is written as several entries.
const maxJournalBytes = 256 << 10

// record is an instance as stored.
type record struct {
	Instance
	Rev uint64 `json:"rev,omitempty"`
	// ResolvedAt marks a tombstone: a resolved trap alert of a cluster,
	// kept for its BusSeq (replay.go).
	ResolvedAt time.Time `json:"resolved_at,omitzero"`
}

func journalKey(rev uint64, part int) string {
	return fmt.Sprintf("%s%016x_%d", journalPrefix, rev, part)
}

// journalEntries encodes a batch's records (key → record JSON) as journal
// entries of at most maxJournalBytes each, unless one record alone is
// larger.
func journalEntries(rev uint64, records map[string][]byte) map[string][]byte {
	out := map[string][]byte{}
	var buf bytes.Buffer
	flush := func() {
		if buf.Len() > 0 {
			buf.WriteByte('}')
			out[journalKey(rev, len(out))] = bytes.Clone(buf.Bytes())
			buf.Reset()
		}
	}
	for k, rec := range records {
		key, _ := json.Marshal(k) // a string always encodes
		if buf.Len() > 0 && buf.Len()+len(key)+len(rec)+2 > maxJournalBytes {
			flush()
		}
		if buf.Len() == 0 {
			buf.WriteByte('{')
		} else {
			buf.WriteByte(',')
		}
		buf.Write(key)
		buf.WriteByte(':')
		buf.Write(rec)
	}
	flush()
	return out
}

// loadedState is what the store held, merged.
type loadedState struct {
	instances map[string]*Instance
	tombs     map[string]tomb
	rev       uint64 // the newest revision seen
	// fromJournal are the instances whose newest revision is only in a
	// journal entry, and journals the journal keys found.
	fromJournal map[string]record
	journals    []string
	bad         []error // unreadable entries, dropped
}

// mergeStored rebuilds the instances from the store's entries.
func mergeStored(stored map[string][]byte) loadedState {
	st := loadedState{instances: map[string]*Instance{}, tombs: map[string]tomb{}, fromJournal: map[string]record{}}
	newest := map[string]record{}
	for k, v := range stored {
		if strings.HasPrefix(k, journalPrefix) {
			continue
		}
		var r record
		if err := json.Unmarshal(v, &r); err != nil {
			st.bad = append(st.bad, fmt.Errorf("alert state record %s: %w", k, err))
			continue
		}
		newest[k] = r
		st.rev = max(st.rev, r.Rev)
	}
	for k, v := range stored {
		if !strings.HasPrefix(k, journalPrefix) {
			continue
		}
		st.journals = append(st.journals, k)
		var batch map[string]record
		if err := json.Unmarshal(v, &batch); err != nil {
			st.bad = append(st.bad, fmt.Errorf("alert journal entry %s: %w", k, err))
			continue
		}
		for ik, r := range batch {
			st.rev = max(st.rev, r.Rev)
			// On a tie the instance's own entry wins: it is written
			// after the journal, from the same batch.
			if cur, ok := newest[ik]; !ok || r.Rev > cur.Rev {
				newest[ik] = r
				st.fromJournal[ik] = r
			}
		}
	}
	for k, r := range newest {
		if !r.ResolvedAt.IsZero() {
			st.tombs[k] = tomb{seq: r.BusSeq, at: r.ResolvedAt}
			continue
		}
		in := r.Instance
		st.instances[k] = &in
	}
	return st
}
