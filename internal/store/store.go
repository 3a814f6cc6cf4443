// Package store runs the embedded NATS JetStream server that holds
// nocbridge's durable state (alert state, the outbox, destination state) in
// files under the state directory, and hands out durable logs (Log) and KV
// buckets, so that no other package needs to know NATS.
//
// Alone, the server opens no network listener: the process talks to it
// through an in-process connection. With a cluster (SPEC 9, cluster.go) it
// also listens for the other nodes' routes and JetStream is clustered; with
// a NATS URL the store uses an existing NATS server instead of embedding
// one. Callers see the same Store either way.
package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/nocbridge/nocbridge/internal/config"
)

// Options configure Open.
type Options struct {
	// Dir is the state directory; JetStream keeps its files under
	// Dir/jetstream and Dir/LOCK guards against a second process.
	Dir string
	// SyncInterval is how often JetStream fsyncs. 0 (the default) fsyncs
	// every write before acknowledging it: JetStream's own default (2
	// minutes) would lose acknowledged notifications on power loss.
	SyncInterval time.Duration
	Logger       *slog.Logger
	// Registerer takes the store's health metrics (nil: not registered).
	Registerer prometheus.Registerer
	// Cluster joins the embedded server to the other nodes' (nil: alone).
	Cluster *config.Cluster
	// URL (store.nats_url) uses an existing NATS JetStream server or
	// cluster instead of embedding one: Dir is then not used.
	URL string
	// Edge makes the embedded server a leaf node of its hub (edge.go);
	// Hub makes it listen for edges' leaf connections.
	Edge *config.Edge
	Hub  *config.Hub
}

// Store is an open state directory with its embedded server.
type Store struct {
	dir  string
	log  *slog.Logger
	srv  *server.Server
	nc   *nats.Conn
	js   jetstream.JetStream
	lock *os.File

	// cluster is the cluster: block (nil: alone); remote the redacted
	// store.nats_url ("": embedded); replicas of every stream and bucket.
	cluster  *config.Cluster
	remote   string
	replicas int
	edge     *config.Edge
	hub      *config.Hub

	// As opened, for restarting JetStream after a write error (health.go).
	maxStore     int64
	syncAlways   bool
	syncInterval time.Duration
	h            *health

	closeOnce sync.Once
	closeErr  error
}

// drainTimeout bounds how long Close waits for in-flight requests.
const drainTimeout = 5 * time.Second

// reconnectErrorReports: a failed reconnection of a route or leaf node is
// logged at the first attempt and every this many (one a second).
const reconnectErrorReports = 60

// asyncAckTimeout bounds the wait for one asynchronous write's answer.
const asyncAckTimeout = 30 * time.Second

// Open starts the embedded server on opts.Dir and waits, at most until ctx
// is done, for JetStream to recover its streams.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.URL != "" {
		return openRemote(ctx, opts)
	}
	if opts.Dir == "" {
		return nil, errors.New("store: state directory is empty")
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("state directory %s: %w", opts.Dir, err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("creating state directory: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}

	h, err := newHealth(opts.Registerer)
	if err != nil {
		_ = unlockDir(lock)
		return nil, err
	}
	// JetStream's own limit would be 75% of the space free at start: after a
	// start on a nearly full disk it would refuse writes for good, even once
	// space is freed. The filesystem is the limit instead.
	_, total, err := diskSpace(dir)
	if err != nil || total == 0 {
		total = 1 << 50
	}
	srvLog := &serverLogger{log: log}
	sopts := &server.Options{
		ServerName:        "nocbridge",
		DontListen:        true,
		NoSigs:            true,
		JetStream:         true,
		JetStreamMaxStore: int64(min(total, 1<<50)),
		StoreDir:          dir,
		SyncAlways:        opts.SyncInterval <= 0,
		SyncInterval:      opts.SyncInterval,
		// A peer or hub that stays down: its route or leaf connection is
		// retried every second; logged at the first failure and then once
		// a minute, not once a second for each of its connections.
		ReconnectErrorReports: reconnectErrorReports,
	}
	token, err := clusterOptions(sopts, opts.Cluster)
	if err == nil {
		err = edgeOptions(sopts, opts.Edge, opts.Hub)
	}
	var srv *server.Server
	if err == nil {
		srv, err = server.NewServer(sopts)
	}
	if err != nil {
		_ = unlockDir(lock)
		return nil, fmt.Errorf("configuring embedded NATS server in %s: %w", dir, err)
	}
	srv.SetLoggerV2(srvLog, false, false, false)

	// Start blocks while JetStream recovers its streams, which may take a
	// while on a large store: wait for it no longer than ctx allows.
	started := make(chan struct{})
	go func() {
		defer close(started)
		srv.Start()
	}()
	select {
	case <-started:
	case <-ctx.Done():
		// The lock is released only once the server has let go of the
		// files, so a quick restart cannot open them twice.
		go func() {
			<-started
			srv.Shutdown()
			srv.WaitForShutdown()
			_ = unlockDir(lock)
		}()
		return nil, fmt.Errorf("starting embedded NATS server in %s: %w", dir, ctx.Err())
	}
	if fatal := srvLog.fatal(); fatal != "" || !srv.ReadyForConnections(10*time.Second) || !srv.JetStreamEnabled() {
		srv.Shutdown()
		srv.WaitForShutdown()
		_ = unlockDir(lock)
		if fatal == "" {
			fatal = "server did not become ready"
		}
		return nil, fmt.Errorf("starting embedded NATS server in %s: %s", dir, fatal)
	}

	s := &Store{dir: dir, log: log, srv: srv, lock: lock, h: h, cluster: opts.Cluster, replicas: replicasFor(opts.Cluster != nil),
		edge: opts.Edge, hub: opts.Hub,
		maxStore: int64(min(total, 1<<50)), syncAlways: opts.SyncInterval <= 0, syncInterval: opts.SyncInterval}
	srvLog.setDiskError(s.diskError)
	s.nc, err = nats.Connect("", nats.InProcessServer(srv), nats.Name("nocbridge"), nats.Token(token),
		clientErrors(log.With("nats", "embedded"), nil))
	if err == nil {
		// An asynchronous write (Log.AppendBatch) whose answer never comes
		// (a stream that met a disk error) gives up its slot after this.
		s.js, err = jetstream.New(s.nc, jetstream.WithPublishAsyncTimeout(asyncAckTimeout))
	}
	if err == nil {
		err = s.awaitJetStream(ctx)
	}
	if err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("connecting to embedded NATS server in %s: %w", dir, err)
	}
	log.Debug("state store open", "dir", dir, "sync_always", opts.SyncInterval <= 0)
	return s, nil
}

// clientErrors logs the client's asynchronous errors (a slow consumer, a
// permission refused), their text scrubbed of the secrets.
func clientErrors(log *slog.Logger, secrets []string) nats.Option {
	return nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
		subj := ""
		if sub != nil {
			subj = sub.Subject
		}
		log.Warn("NATS client error", "subject", subj, "err", scrub(err, secrets))
	})
}

// Close drains the connection, shuts the server down and waits for it, then
// releases the directory lock. Safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.nc != nil {
			if err := s.drain(); err != nil {
				s.log.Warn("draining embedded NATS connection", "err", err)
			}
			s.nc.Close()
		}
		if s.srv == nil {
			return // remote: no server, no directory
		}
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
		if err := unlockDir(s.lock); err != nil {
			s.closeErr = fmt.Errorf("releasing lock on %s: %w", s.dir, err)
		}
	})
	return s.closeErr
}

func (s *Store) drain() error {
	closed := make(chan struct{})
	s.nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := s.nc.Drain(); err != nil {
		return err
	}
	select {
	case <-closed:
		return nil
	case <-time.After(drainTimeout):
		return fmt.Errorf("not drained after %v", drainTimeout)
	}
}

// Dir is the absolute state directory, or with store.nats_url "NATS at"
// the URL without credentials.
func (s *Store) Dir() string { return s.dir }

// markerTTL is how long a deletion marker outlives the key it deleted; it
// only matters to watchers, and expiring markers keeps buckets whose keys
// are never reused (alert instance ids) from growing forever.
const markerTTL = time.Hour

// kv opens the bucket, creating it (file storage, latest value only) when it
// does not exist. The name must be valid for JetStream ([A-Za-z0-9_-]+).
func (s *Store) kv(ctx context.Context, bucket string) (jetstream.KeyValue, error) {
	var kv jetstream.KeyValue
	err := s.creating(ctx, func(ctx context.Context) (err error) {
		kv, err = s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:         bucket,
			History:        1,
			Storage:        jetstream.FileStorage,
			Replicas:       s.replicas,
			LimitMarkerTTL: markerTTL,
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("opening KV bucket %q in %s: %w", bucket, s.dir, err)
	}
	return kv, nil
}

// StateStore opens a bucket as a notify.StateStore.
func (s *Store) StateStore(ctx context.Context, bucket string) (*KVState, error) {
	kv, err := s.kv(ctx, bucket)
	if err != nil {
		return nil, err
	}
	return &KVState{st: s, kv: kv, bucket: bucket}, nil
}

// lockDir takes an exclusive flock on dir/LOCK so that a second nocbridge
// on the same state directory fails instead of corrupting it. The kernel
// drops the lock when the process dies, so a SIGKILL leaves nothing stale.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("opening lock file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			owner := ""
			if b, rerr := os.ReadFile(path); rerr == nil && len(bytes.TrimSpace(b)) > 0 {
				owner = " (pid " + string(bytes.TrimSpace(b)) + ")"
			}
			return nil, fmt.Errorf("state directory %s is in use by another nocbridge process%s: %s is locked", dir, owner, path)
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	// The pid is informational only: the flock is what excludes.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

func unlockDir(f *os.File) error {
	if err := unix.Flock(int(f.Fd()), unix.LOCK_UN); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// serverLogger bridges the NATS server's logger to slog: warnings and errors
// keep their level, the server's chatty notices go to debug.
type serverLogger struct {
	log *slog.Logger

	mu        sync.Mutex
	lastFatal string
	onDisk    func(msg string) // a stream's file write failed
}

func (l *serverLogger) setDiskError(fn func(string)) {
	l.mu.Lock()
	l.onDisk = fn
	l.mu.Unlock()
}

func (l *serverLogger) Noticef(format string, v ...any) { l.emit(slog.LevelDebug, format, v) }
func (l *serverLogger) Warnf(format string, v ...any)   { l.emit(slog.LevelWarn, format, v) }
func (l *serverLogger) Errorf(format string, v ...any) {
	l.emit(slog.LevelError, format, v)
	// JetStream's words for a failed file write (a full disk, an I/O
	// error, a read-only remount): the store stops writing until it
	// recovers (health.go).
	msg := fmt.Sprintf(format, v...)
	if strings.Contains(strings.ToLower(msg), "critical write error") {
		l.mu.Lock()
		fn := l.onDisk
		l.mu.Unlock()
		if fn != nil {
			fn(msg)
		}
	}
}
func (l *serverLogger) Debugf(format string, v ...any) { l.emit(slog.LevelDebug, format, v) }
func (l *serverLogger) Tracef(string, ...any)          {}

func (l *serverLogger) emit(level slog.Level, format string, v []any) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, fmt.Sprintf(format, v...))
	}
}

// Fatalf is logged, not fatal: Open reports the failure to its caller
// instead of the server exiting the process.
func (l *serverLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.emit(slog.LevelError, "%s", []any{msg})
	l.mu.Lock()
	l.lastFatal = msg
	l.mu.Unlock()
}

func (l *serverLogger) fatal() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastFatal
}
