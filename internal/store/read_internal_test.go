package store

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A record counted when a read began can leave the log before the read's
// consumer delivers it (history's MaxAge, a replaced record): the read ends
// instead of waiting for it for ever. CI once hung 10 minutes on this.
func TestReadEndsWhenItsRecordLeaves(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, Options{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l, err := s.Log(ctx, LogConfig{Name: "GONE", Subjects: []string{"g.>"}})
	if err != nil {
		t.Fatal(err)
	}
	seq, err := l.Append(ctx, "g.a", []byte("soon gone"))
	if err != nil {
		t.Fatal(err)
	}
	cons, err := l.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"g.a"}})
	if err != nil {
		t.Fatal(err)
	}
	// Gone after the consumer was made, before anything was asked of it.
	if err := l.Delete(ctx, seq); err != nil {
		t.Fatal(err)
	}
	msgs, err := cons.Messages()
	if err != nil {
		t.Fatal(err)
	}
	defer msgs.Stop()
	start := time.Now()
	m, err := nextRecord(ctx, cons, msgs)
	if err != nil || m != nil {
		t.Fatalf("nextRecord = %v, %v; want nothing left, no error", m, err)
	}
	if d := time.Since(start); d > 3*readIdle {
		t.Fatalf("the read ended after %v", d)
	}
}
