package store

import (
	"context"
	"log/slog"
	"testing"
)

// A Bucket stores keys as they are, so the alert state written by earlier
// releases (raw keys in bucket "alerts") is found again; a StateStore
// encodes them, so any string works.
func TestBucketKeysAreStoredVerbatim(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, Options{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b, err := s.Bucket(ctx, "alerts")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "a_0123.x", []byte("v")); err != nil {
		t.Fatal(err)
	}
	st, err := s.StateStore(ctx, "dest_x")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, "a key/with:colons", []byte("w")); err != nil {
		t.Fatal(err)
	}
	for bucket, key := range map[string]string{"alerts": "a_0123.x", "dest_x": encodeKey("a key/with:colons")} {
		raw, err := s.kv(ctx, bucket)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := raw.Get(ctx, key); err != nil {
			t.Errorf("bucket %s: key %q as JetStream holds it: %v", bucket, key, err)
		}
	}
}
