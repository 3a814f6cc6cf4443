package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrNotFound is returned (wrapped) for a record that is not in a log:
// never written, deleted, purged or replaced. Test for it with errors.Is.
var ErrNotFound = errors.New("no such record")

// LogConfig describes a Log.
type LogConfig struct {
	// Name names the log; it must be valid for JetStream ([A-Za-z0-9_-]+).
	Name        string
	Description string
	// Subjects are the subjects the log takes records on; NATS wildcards
	// (* and >) are allowed.
	Subjects []string
	// OnePerSubject keeps only the newest record of each subject: appending
	// on a subject replaces the record it held.
	OnePerSubject bool
}

// Log is a durable append-only log of records, numbered by a sequence that
// only grows. It lives in files under the state directory, fsynced as
// Options.SyncInterval says, and it never drops a record to make room: a
// write it cannot take fails instead.
type Log struct {
	name   string
	st     *Store
	js     jetstream.JetStream
	stream jetstream.Stream
}

// Record is one record of a Log.
type Record struct {
	Seq     uint64
	Subject string
	Data    []byte
}

// LogState is what a Log holds: the sequences of its first and last records
// and how many records it has (deleted ones leave gaps).
type LogState struct {
	First, Last, Records uint64
}

// Log opens the log, creating it when it does not exist and updating its
// description and subjects when they changed.
func (s *Store) Log(ctx context.Context, cfg LogConfig) (*Log, error) {
	sc := jetstream.StreamConfig{
		Name:        cfg.Name,
		Description: cfg.Description,
		Subjects:    cfg.Subjects,
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew, // never drop a record to make room
		MaxMsgs:     -1,
		MaxBytes:    -1,
	}
	if cfg.OnePerSubject {
		sc.MaxMsgsPerSubject = 1
	}
	st, err := s.js.CreateOrUpdateStream(ctx, sc)
	if err != nil {
		return nil, fmt.Errorf("opening log %q in %s: %w", cfg.Name, s.dir, err)
	}
	return &Log{name: cfg.Name, st: s, js: s.js, stream: st}, nil
}

// Append writes a record on subject, one of the log's subjects, and returns
// its sequence once it is stored.
func (l *Log) Append(ctx context.Context, subject string, data []byte) (uint64, error) {
	var ack *jetstream.PubAck
	err := l.st.write(ctx, func(ctx context.Context) (err error) {
		ack, err = l.js.Publish(ctx, subject, data)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("appending to log %s: %w", l.name, err)
	}
	if ack.Stream != l.name {
		return 0, fmt.Errorf("appending to log %s: subject %q belongs to %s", l.name, subject, ack.Stream)
	}
	return ack.Sequence, nil
}

// Get reads the record at seq.
func (l *Log) Get(ctx context.Context, seq uint64) (Record, error) {
	m, err := l.stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Record{}, fmt.Errorf("log %s, sequence %d: %w", l.name, seq, ErrNotFound)
	}
	if err != nil {
		return Record{}, fmt.Errorf("reading log %s at sequence %d: %w", l.name, seq, err)
	}
	return Record{Seq: m.Sequence, Subject: m.Subject, Data: m.Data}, nil
}

// Delete removes the record at seq.
func (l *Log) Delete(ctx context.Context, seq uint64) error {
	err := l.st.write(ctx, func(ctx context.Context) error { return l.stream.DeleteMsg(ctx, seq) })
	if err == nil || errors.Is(err, ErrUnavailable) {
		return nil
	}
	// The server's answer for a missing record is not told apart from other
	// failures in a testable way: ask for the record.
	if _, gerr := l.Get(ctx, seq); errors.Is(gerr, ErrNotFound) {
		return gerr
	}
	return fmt.Errorf("deleting from log %s at sequence %d: %w", l.name, seq, err)
}

// PurgeBelow removes every record with a sequence below seq.
func (l *Log) PurgeBelow(ctx context.Context, seq uint64) error {
	if err := l.st.write(ctx, func(ctx context.Context) error {
		return l.stream.Purge(ctx, jetstream.WithPurgeSequence(seq))
	}); err != nil {
		return fmt.Errorf("trimming log %s below sequence %d: %w", l.name, seq, err)
	}
	return nil
}

// State reports the log's sequences and size.
func (l *Log) State(ctx context.Context) (LogState, error) {
	info, err := l.stream.Info(ctx)
	if err != nil {
		return LogState{}, fmt.Errorf("log %s: %w", l.name, err)
	}
	return LogState{First: info.State.FirstSeq, Last: info.State.LastSeq, Records: info.State.Msgs}, nil
}

// ReadAll calls fn for every record, oldest first, until it has caught up
// with the log's end or fn returns an error, which ReadAll then returns
// (wrapped).
func (l *Log) ReadAll(ctx context.Context, fn func(Record) error) error {
	if err := l.readAll(ctx, fn); err != nil {
		return fmt.Errorf("reading log %s: %w", l.name, err)
	}
	return nil
}

func (l *Log) readAll(ctx context.Context, fn func(Record) error) error {
	info, err := l.stream.Info(ctx)
	if err != nil {
		return err
	}
	if info.State.Msgs == 0 {
		return nil
	}
	cons, err := l.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return err
	}
	msgs, err := cons.Messages()
	if err != nil {
		return err
	}
	defer msgs.Stop()
	for {
		m, err := msgs.Next(jetstream.NextContext(ctx))
		if err != nil {
			return err
		}
		meta, err := m.Metadata()
		if err != nil {
			return err
		}
		if err := fn(Record{Seq: meta.Sequence.Stream, Subject: m.Subject(), Data: m.Data()}); err != nil {
			return err
		}
		if meta.NumPending == 0 {
			return nil
		}
	}
}
