package store

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"

	"github.com/nats-io/nats.go/jetstream"
)

// Records is what a component keeps its durable records in (the alert
// state, noise control's decisions, silences): a Bucket. Values are opaque.
type Records interface {
	Put(ctx context.Context, key string, value []byte) error
	Delete(ctx context.Context, key string) error
	All(ctx context.Context) (map[string][]byte, error)
}

var _ Records = (*KVState)(nil)

// KVState is a KV bucket as a small durable key/value space: a
// destination's notify.StateStore (any string as key), or the alert state
// (Bucket: keys already valid for JetStream, stored as they are).
type KVState struct {
	st     *Store
	kv     jetstream.KeyValue
	bucket string
	raw    bool // keys are stored unencoded
}

func (s *KVState) key(k string) string {
	if s.raw {
		return k
	}
	return encodeKey(k)
}

// Bucket opens a bucket whose keys are valid JetStream keys
// ([-/_=.A-Za-z0-9]) and stored as they are.
func (s *Store) Bucket(ctx context.Context, bucket string) (*KVState, error) {
	kv, err := s.kv(ctx, bucket)
	if err != nil {
		return nil, err
	}
	return &KVState{st: s, kv: kv, bucket: bucket, raw: true}, nil
}

var bucketUnsafe = regexp.MustCompile(`[^A-Za-z0-9_-]`)

// DestinationState opens the state bucket of a destination (Slack's
// message ids…), named after it.
func (s *Store) DestinationState(ctx context.Context, destination string) (*KVState, error) {
	return s.StateStore(ctx, "dest_"+bucketUnsafe.ReplaceAllString(destination, "_"))
}

// All reads every key and value. It watches the bucket itself rather than
// listing keys: a lister reports a watch that ended early (its
// subscription closed, as around a JetStream restart) as a complete,
// shorter list, and a caller restoring state must not take that for "no
// state".
func (s *KVState) All(ctx context.Context) (map[string][]byte, error) {
	out := map[string][]byte{}
	w, err := s.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("state bucket %s: listing keys: %w", s.bucket, err)
	}
	defer func() { _ = w.Stop() }()
	for {
		var e jetstream.KeyValueEntry
		var open bool
		select {
		case e, open = <-w.Updates():
		case <-ctx.Done():
			return nil, fmt.Errorf("state bucket %s: listing keys: %w", s.bucket, ctx.Err())
		}
		if !open {
			return nil, fmt.Errorf("state bucket %s: listing keys: the watch ended before every key was read", s.bucket)
		}
		if e == nil {
			return out, nil // every value there was when the watch began
		}
		key := e.Key()
		if !s.raw {
			b, err := base64.RawURLEncoding.DecodeString(key)
			if err != nil {
				continue // not written through this type
			}
			key = string(b)
		}
		out[key] = e.Value()
	}
}

// Keys are stored base64url-encoded so callers may use any string (JetStream
// keys allow only [-/_=.A-Za-z0-9]); the encoding is bijective, so distinct
// keys never collide.
func encodeKey(key string) string { return base64.RawURLEncoding.EncodeToString([]byte(key)) }

// Get returns the value and whether the key exists.
func (s *KVState) Get(ctx context.Context, key string) ([]byte, bool, error) {
	e, err := s.kv.Get(ctx, s.key(key))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("state bucket %s: reading %q: %w", s.bucket, key, err)
	}
	return e.Value(), true, nil
}

// Put stores the value durably.
func (s *KVState) Put(ctx context.Context, key string, value []byte) error {
	err := s.st.write(ctx, func(ctx context.Context) error {
		_, err := s.kv.Put(ctx, s.key(key), value)
		return err
	})
	if err != nil {
		return fmt.Errorf("state bucket %s: writing %q: %w", s.bucket, key, err)
	}
	return nil
}

// Delete removes the key; deleting a missing key is not an error. The
// deletion marker expires, so keys that are never reused leave nothing.
func (s *KVState) Delete(ctx context.Context, key string) error {
	err := s.st.write(ctx, func(ctx context.Context) error {
		return s.kv.Purge(ctx, s.key(key), jetstream.PurgeTTL(markerTTL))
	})
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("state bucket %s: deleting %q: %w", s.bucket, key, err)
	}
	return nil
}
