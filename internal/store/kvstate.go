package store

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// KVState is a KV bucket seen as a notify.StateStore: a small durable
// key/value space for one destination.
type KVState struct {
	kv     jetstream.KeyValue
	bucket string
}

// Keys are stored base64url-encoded so callers may use any string (JetStream
// keys allow only [-/_=.A-Za-z0-9]); the encoding is bijective, so distinct
// keys never collide.
func encodeKey(key string) string { return base64.RawURLEncoding.EncodeToString([]byte(key)) }

// Get returns the value and whether the key exists.
func (s *KVState) Get(ctx context.Context, key string) ([]byte, bool, error) {
	e, err := s.kv.Get(ctx, encodeKey(key))
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
	if _, err := s.kv.Put(ctx, encodeKey(key), value); err != nil {
		return fmt.Errorf("state bucket %s: writing %q: %w", s.bucket, key, err)
	}
	return nil
}

// Delete removes the key; deleting a missing key is not an error. The
// deletion marker expires, so keys that are never reused leave nothing.
func (s *KVState) Delete(ctx context.Context, key string) error {
	if err := s.kv.Purge(ctx, encodeKey(key), jetstream.PurgeTTL(markerTTL)); err != nil {
		return fmt.Errorf("state bucket %s: deleting %q: %w", s.bucket, key, err)
	}
	return nil
}
