package store_test

import (
	"context"
	"testing"

	"github.com/nocbridge/nocbridge/internal/store"
)

// Memory keeps copies: a caller reusing its buffer, or changing what All
// returned, does not change what is kept.
func TestMemoryKeepsCopies(t *testing.T) {
	ctx := context.Background()
	m := store.NewMemory()
	buf := []byte("v1")
	if err := m.Put(ctx, "k", buf); err != nil {
		t.Fatal(err)
	}
	buf[1] = '9'
	all, _ := m.All(ctx)
	all["k"][0] = 'x'
	delete(all, "k")
	if again, _ := m.All(ctx); string(again["k"]) != "v1" {
		t.Fatalf("kept %q, want v1", again["k"])
	}
	if err := m.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if again, _ := m.All(ctx); len(again) != 0 {
		t.Fatalf("after Delete: %q", again)
	}
}
