package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
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
	// MaxAge removes records once they are older than this (0: records stay
	// until deleted). Changing it on an existing log applies at once.
	MaxAge time.Duration
	// Async acknowledges a write once JetStream holds it in memory, without
	// an fsync of its own: files are written within milliseconds and synced
	// every two minutes (JetStream's background sync), so a crash of the
	// process loses almost nothing but a power loss can lose those minutes.
	// For records that are no delivery guarantee (alert history). In a
	// cluster it does not apply (JetStream refuses it on replicated
	// streams): the log is written as the others are.
	Async bool
	// Replace lets a Message with Replace set remove every earlier record
	// on its subject as it lands: one record per subject for those
	// subjects, a full history for the others.
	Replace bool
}

// Log is a durable append-only log of records, numbered by a sequence that
// only grows. It lives in files under the state directory, fsynced as
// Options.SyncInterval says (or as LogConfig.Async says), and it never drops
// a record to make room: a write it cannot take fails instead. Only MaxAge
// removes records by itself.
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
		Replicas:    s.replicas,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew, // never drop a record to make room
		MaxMsgs:     -1,
		MaxBytes:    -1,
		MaxAge:      cfg.MaxAge,
		// Reads by subject (ReadBack, Last) go straight to the stream.
		AllowDirect: true,
	}
	if cfg.OnePerSubject {
		sc.MaxMsgsPerSubject = 1
	}
	if cfg.Async && s.replicas == 1 {
		// JetStream refuses it on a replicated stream, whose Raft log
		// already flushes asynchronously.
		sc.PersistMode = jetstream.AsyncPersistMode
	}
	sc.AllowRollup = cfg.Replace
	var st jetstream.Stream
	err := s.creating(ctx, func(ctx context.Context) (err error) {
		st, err = s.js.CreateOrUpdateStream(ctx, sc)
		return err
	})
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
	return l.record(m, err, fmt.Sprintf("sequence %d", seq))
}

// record is what a single read answered; at names what was asked for.
func (l *Log) record(m *jetstream.RawStreamMsg, err error, at string) (Record, error) {
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Record{}, fmt.Errorf("log %s, %s: %w", l.name, at, ErrNotFound)
	}
	if err != nil {
		return Record{}, fmt.Errorf("reading log %s at %s: %w", l.name, at, err)
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
	if err := l.readAll(ctx, "", fn); err != nil {
		return fmt.Errorf("reading log %s: %w", l.name, err)
	}
	return nil
}

// ReadSubject is ReadAll for the records on one subject (or a subject
// filter with wildcards): the server skips the others, using its index of
// where each subject's records lie.
func (l *Log) ReadSubject(ctx context.Context, subject string, fn func(Record) error) error {
	if err := l.readAll(ctx, subject, fn); err != nil {
		return fmt.Errorf("reading log %s, subject %s: %w", l.name, subject, err)
	}
	return nil
}

func (l *Log) readAll(ctx context.Context, subject string, fn func(Record) error) error {
	if subject != "" {
		return l.readSubject(ctx, subject, fn)
	}
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

// readSubject reads one subject's records, oldest first, one request
// each ("the next on this subject from here"): a consumer counts records
// when it starts and would wait for ever for one that leaves the log before
// it is delivered (MaxAge: alert history's retention, a replaced record);
// a request answers "none left" instead. A subject holds few records (one
// alert's history), so a request each costs little.
func (l *Log) readSubject(ctx context.Context, subject string, fn func(Record) error) error {
	for seq := uint64(1); ; {
		m, err := l.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(Record{Seq: m.Sequence, Subject: m.Subject, Data: m.Data}); err != nil {
			return err
		}
		seq = m.Sequence + 1
	}
}

// Message is one record to append.
type Message struct {
	Subject string
	Data    []byte
	// Replace removes the earlier records on Subject (a log with
	// LogConfig.Replace only).
	Replace bool
}

// AppendBatch writes the messages, in order, without waiting for each
// acknowledgement before sending the next, and returns how many were
// stored (the first n) once every answer is in. Like every write it is
// refused at once while the store cannot write. On a log without Async each
// record is still fsynced before its acknowledgement.
func (l *Log) AppendBatch(ctx context.Context, msgs []Message) (int, error) {
	stored := 0
	err := l.st.write(ctx, func(ctx context.Context) error {
		futures := make([]jetstream.PubAckFuture, 0, len(msgs))
		var sendErr error
		for _, m := range msgs {
			msg := &nats.Msg{Subject: m.Subject, Data: m.Data}
			if m.Replace {
				msg.Header = nats.Header{jetstream.MsgRollup: []string{jetstream.MsgRollupSubject}}
			}
			f, err := l.js.PublishMsgAsync(msg, jetstream.WithExpectStream(l.name))
			if err != nil {
				sendErr = err
				break
			}
			futures = append(futures, f)
		}
		// Acknowledgements come in order; the first failure ends what
		// counts as stored, though later ones may have landed too.
		for _, f := range futures {
			select {
			case <-f.Ok():
				stored++
				continue
			case err := <-f.Err():
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return sendErr
	})
	if err != nil {
		return stored, fmt.Errorf("appending %d record(s) to log %s (%d stored): %w", len(msgs), l.name, stored, err)
	}
	return stored, nil
}

// Last reads the newest record on subject (no wildcards).
func (l *Log) Last(ctx context.Context, subject string) (Record, error) {
	m, err := l.stream.GetLastMsgForSubject(ctx, subject)
	return l.record(m, err, "subject "+subject)
}

// backWindow is ReadBack's first window, in sequences; each next window
// is four times the last, up to backWindowMax.
const (
	backWindow    = 64
	backWindowMax = 1 << 20
)

// ReadBack calls fn for the records matching filter (a subject, wildcards
// allowed) whose sequence is below before (0: all), newest first, until fn
// returns false or an error, or the log's start is reached.
//
// JetStream reads forward only, so ReadBack reads windows of sequences
// backwards from the end, each window forward, growing the window as it
// goes. Each record read is one lookup that skips, with the server's index
// of subjects per file block, straight to the next record matching filter:
// a read of n records costs about n lookups however many records of other
// subjects lie between them, plus one per window.
func (l *Log) ReadBack(ctx context.Context, filter string, before uint64, fn func(Record) (bool, error)) error {
	st, err := l.State(ctx)
	if err != nil {
		return err
	}
	if st.Records == 0 {
		return nil
	}
	hi := st.Last
	if before > 0 && before-1 < hi {
		hi = before - 1
	}
	var window []Record
	for span := uint64(backWindow); hi >= st.First && hi > 0; span = min(span*4, backWindowMax) {
		lo := st.First
		if hi-st.First >= span {
			lo = hi - span + 1
		}
		window = window[:0]
		for seq := lo; seq <= hi; {
			m, err := l.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				break
			}
			if err != nil {
				return fmt.Errorf("reading log %s back from sequence %d: %w", l.name, hi, err)
			}
			if m.Sequence > hi {
				break
			}
			window = append(window, Record{Seq: m.Sequence, Subject: m.Subject, Data: m.Data})
			seq = m.Sequence + 1
		}
		for i := len(window) - 1; i >= 0; i-- {
			more, err := fn(window[i])
			if err != nil || !more {
				return err
			}
		}
		if lo == st.First {
			return nil
		}
		hi = lo - 1
	}
	return nil
}
