package store_test

import (
	"context"
	"testing"
	"time"
)

// A lease bucket's writes are compare-and-set and its values expire:
// what internal/cluster/lease relies on.
func TestLeaseBucket(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir())
	defer s.Close()
	const ttl = time.Second
	kv, err := s.LeaseBucket(ctx, "lease_test", ttl)
	if err != nil {
		t.Fatal(err)
	}
	if kv.TTL() != ttl {
		t.Errorf("TTL() = %v, want %v", kv.TTL(), ttl)
	}
	if _, err := s.LeaseBucket(ctx, "lease_zero", 0); err == nil {
		t.Error("a lease bucket without a TTL was opened")
	}

	rev1, created, err := kv.Create(ctx, "leader", []byte("a"))
	if err != nil || !created || rev1 == 0 {
		t.Fatalf("Create on an empty key = %d, %v, %v", rev1, created, err)
	}
	if rev, created, err := kv.Create(ctx, "leader", []byte("b")); err != nil || created {
		t.Errorf("Create on a held key = %d, %v, %v; want not created, no error", rev, created, err)
	}
	if _, err := kv.Update(ctx, "leader", []byte("b"), rev1+100); err == nil {
		t.Error("Update at a wrong revision succeeded")
	}
	rev2, err := kv.Update(ctx, "leader", []byte("a2"), rev1)
	if err != nil || rev2 <= rev1 {
		t.Fatalf("Update at the held revision = %d, %v", rev2, err)
	}
	value, rev, written, found, err := kv.Get(ctx, "leader")
	if err != nil || !found || string(value) != "a2" || rev != rev2 || time.Since(written) > time.Minute {
		t.Errorf("Get = %q, %d, %v, %v, %v; want a2 at %d, written just now", value, rev, written, found, err, rev2)
	}
	if err := kv.Delete(ctx, "leader", rev1); err == nil {
		t.Error("Delete at a stale revision succeeded")
	}
	if err := kv.Delete(ctx, "leader", rev2); err != nil {
		t.Fatalf("Delete at the held revision: %v", err)
	}
	if _, _, _, found, err := kv.Get(ctx, "leader"); err != nil || found {
		t.Errorf("Get after Delete: found %v, %v", found, err)
	}
	createdAt := time.Now()
	rev3, created, err := kv.Create(ctx, "leader", []byte("c"))
	if err != nil || !created || rev3 <= rev2 {
		t.Fatalf("Create after Delete = %d, %v, %v; want a revision above %d", rev3, created, err, rev2)
	}

	// Not renewed, the value expires after the TTL (JetStream removes it a
	// little late) and the key can be created again.
	deadline := createdAt.Add(ttl + 3*time.Second)
	for {
		_, _, _, found, err := kv.Get(ctx, "leader")
		if err != nil {
			t.Fatal(err)
		}
		if !found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the value is still there %v after its write, TTL %v", time.Since(createdAt), ttl)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if rev4, created, err := kv.Create(ctx, "leader", []byte("d")); err != nil || !created || rev4 <= rev3 {
		t.Errorf("Create after expiry = %d, %v, %v; want a revision above %d", rev4, created, err, rev3)
	}
}
