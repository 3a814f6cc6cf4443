package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// LeaseKV is a KV bucket whose values expire TTL after their last write,
// with compare-and-set writes: what a leader lease (internal/cluster/lease)
// is built on, so that election is JetStream's, never home-made. Open it
// with Store.LeaseBucket.
type LeaseKV struct {
	st      *Store // nil for a bucket opened elsewhere (NewLeaseKV)
	kv      jetstream.KeyValue
	bucket  string
	ttl     time.Duration
	handing atomic.Bool // a hand-off (handOff) is under way
}

// LeaseBucket opens the lease bucket name (creating it) with the store's
// replicas (three in a cluster, so a minority cannot renew): file storage so
// that revisions (the lease terms) keep growing across restarts, the latest
// value only, values gone ttl after their last write.
func (s *Store) LeaseBucket(ctx context.Context, name string, ttl time.Duration) (*LeaseKV, error) {
	var kv *LeaseKV
	err := s.creating(ctx, func(ctx context.Context) (err error) {
		kv, err = OpenLeaseKV(ctx, s.js, name, ttl, s.replicas)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%w in %s", err, s.dir)
	}
	kv.st = s
	return kv, nil
}

// OpenLeaseKV opens the lease bucket name on any JetStream (a NATS server
// or cluster this process shares with others), with replicas copies (0:
// one); Store.LeaseBucket is the usual way.
func OpenLeaseKV(ctx context.Context, js jetstream.JetStream, name string, ttl time.Duration, replicas int) (*LeaseKV, error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("lease bucket %q: TTL %v must be positive", name, ttl)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:   name,
		History:  1,
		TTL:      ttl,
		Storage:  jetstream.FileStorage,
		Replicas: max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("opening lease bucket %q: %w", name, err)
	}
	return &LeaseKV{kv: kv, bucket: name, ttl: ttl}, nil
}

// refuse answers at once while the store cannot write: a leader whose
// store cannot write must not go on leading.
func (l *LeaseKV) refuse() error {
	if l.st == nil {
		return nil
	}
	return l.st.refuse()
}

// Create writes key only when it holds no value (never written, deleted
// or expired); created is false, without error, when it holds one.
func (l *LeaseKV) Create(ctx context.Context, key string, value []byte) (rev uint64, created bool, err error) {
	if err := l.refuse(); err != nil {
		return 0, false, fmt.Errorf("lease bucket %s: creating %q: %w", l.bucket, key, err)
	}
	rev, err = l.kv.Create(ctx, key, value)
	switch {
	case errors.Is(err, jetstream.ErrKeyExists):
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("lease bucket %s: creating %q: %w", l.bucket, key, err)
	}
	l.handOff()
	return rev, true, nil
}

// Update writes key only when its latest revision is last.
func (l *LeaseKV) Update(ctx context.Context, key string, value []byte, last uint64) (uint64, error) {
	if err := l.refuse(); err != nil {
		return 0, fmt.Errorf("lease bucket %s: updating %q: %w", l.bucket, key, err)
	}
	rev, err := l.kv.Update(ctx, key, value, last)
	if err != nil {
		return 0, fmt.Errorf("lease bucket %s: updating %q at revision %d: %w", l.bucket, key, last, err)
	}
	l.handOff()
	return rev, nil
}

// Get returns key's latest value, its revision and when JetStream stored
// it; found is false when it holds none.
func (l *LeaseKV) Get(ctx context.Context, key string) (value []byte, rev uint64, written time.Time, found bool, err error) {
	e, err := l.kv.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return nil, 0, time.Time{}, false, nil
	case err != nil:
		return nil, 0, time.Time{}, false, fmt.Errorf("lease bucket %s: reading %q: %w", l.bucket, key, err)
	}
	return e.Value(), e.Revision(), e.Created(), true, nil
}

// Delete removes key only when its latest revision is last.
func (l *LeaseKV) Delete(ctx context.Context, key string, last uint64) error {
	if err := l.refuse(); err != nil {
		return fmt.Errorf("lease bucket %s: deleting %q: %w", l.bucket, key, err)
	}
	if err := l.kv.Delete(ctx, key, jetstream.LastRevision(last)); err != nil {
		return fmt.Errorf("lease bucket %s: deleting %q at revision %d: %w", l.bucket, key, last, err)
	}
	return nil
}

// handOff moves the bucket's stream (Raft) leader to another server when
// this one has it, right after the lease holder wrote (its next write is a
// renew interval away): a holder that dies then does not take the bucket's
// leader with it, and the others can take the expired lease at once rather
// than after JetStream has elected a new one (4 to 9 s, measured 6.0 s
// after a kill -9). Only the embedded server of a cluster knows where the
// leader is.
func (l *LeaseKV) handOff() {
	st := l.st
	if st == nil || st.srv == nil || !st.Clustered() {
		return
	}
	stream := "KV_" + l.bucket
	if !st.srv.JetStreamIsStreamLeader(st.srv.GlobalAccount().Name, stream) || !l.handing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer l.handing.Store(false)
		msg, err := st.nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+stream, nil, l.ttl/3)
		if err == nil && bytes.Contains(msg.Data, []byte(`"error"`)) {
			err = errors.New(string(msg.Data))
		}
		if err != nil {
			st.log.Warn("lease bucket: moving its stream leader off the lease holder failed; a kill of this node then takes JetStream's election longer to recover", "stream", stream, "err", err)
			return
		}
		st.log.Info("lease bucket: its stream leader moved off the lease holder, so that the holder's death does not stall the lease", "stream", stream)
	}()
}

// TTL is how long a value lives after its last write.
func (l *LeaseKV) TTL() time.Duration { return l.ttl }
