package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// A full or failing disk (SPEC 6). JetStream answers a write it cannot make
// only by timing out, and a stream that met a write error refuses every
// later write even once space is back, until JetStream is restarted. So the
// store watches for write failures, refuses writes at once while it cannot
// write (callers keep what they could not store and try again when told),
// and restarts JetStream in-process, then probes, until a write lands.

// ErrUnavailable is returned (wrapped, with the reason) by every write while
// the store cannot write: the write was not attempted. Test with errors.Is.
var ErrUnavailable = errors.New("state store cannot write")

// LogLevel is the level to log a failed store write at: debug while the
// store cannot write (it logs the outage itself, once a minute, and what
// waits is counted), level otherwise.
func LogLevel(err error, level slog.Level) slog.Level {
	if errors.Is(err, ErrUnavailable) {
		return slog.LevelDebug
	}
	return level
}

// Health is the store's ability to write, as /readyz and the log show it.
type Health struct {
	OK bool `json:"ok"`
	// Reason says why not (empty when OK).
	Reason string `json:"reason,omitempty"`
	// Since is when writing stopped working (zero when OK).
	Since time.Time `json:"since,omitzero"`
	// Refused counts the writes refused since then.
	Refused uint64 `json:"refused,omitempty"`
	// Free and Total are the state filesystem's free (for this process)
	// and total bytes at the last check.
	Free  uint64 `json:"free_bytes"`
	Total uint64 `json:"total_bytes"`
}

// Low reports whether the state filesystem is under 5% or 256 MiB free.
func (h Health) Low() bool {
	return h.Total > 0 && (h.Free < lowFreeBytes || h.Free < h.Total/20)
}

const (
	lowFreeBytes = 256 << 20
	// minFreeToRecover: a restart of JetStream rebuilds stream indexes,
	// which needs a little room; below this, recovery is not tried.
	minFreeToRecover = 1 << 20
	// checkEvery is how often a healthy store looks at the free space;
	// recoverEvery how often a failed one tries to write again.
	checkEvery   = 30 * time.Second
	recoverEvery = 500 * time.Millisecond
	// A failed recovery is tried again once free space grew by
	// retryGrowth, or after retryAfter: restarting JetStream reads every
	// stream's state, too costly to repeat twice a second for nothing.
	retryGrowth = 1 << 20
	retryAfter  = 15 * time.Second
	// probeTimeout bounds one probe write; JetStream's own ack wait is 5s.
	probeTimeout = 3 * time.Second
	// unhealthyLogEvery spaces the "still cannot write" lines; lowLogEvery
	// the low-space warnings while space stays low.
	unhealthyLogEvery = time.Minute
	lowLogEvery       = time.Hour
	probeLog          = "NOCBRIDGE_HEALTH"
	probeSubject      = "nocbridge.health"
)

// health is the store's write-health state, guarded by mu.
type health struct {
	mu          sync.Mutex
	cur         Health
	needRestart bool // a stream met a write error: only a JetStream restart clears it
	lastLog     time.Time
	lastLowLog  time.Time
	// The last failed recovery: when, and the free space then.
	lastTry     time.Time
	lastTryFree uint64
	listeners   []func(Health)
	kick        chan struct{} // a write failed: the supervisor probes at once
	// epoch is cancelled when the store stops writing: writes under way
	// give up then. A new one starts at recovery.
	epoch    context.Context
	endEpoch context.CancelFunc

	healthy   prometheus.Gauge
	free      prometheus.Gauge
	refused   prometheus.Counter
	recovered prometheus.Counter
}

func newHealth(reg prometheus.Registerer) (*health, error) {
	h := &health{
		cur:  Health{OK: true},
		kick: make(chan struct{}, 1),
		healthy: prometheus.NewGauge(prometheus.GaugeOpts{Name: "nocbridge_store_healthy",
			Help: "1 while the state store can write; 0 while it cannot (full or failing disk): what it cannot store is held in memory."}),
		free: prometheus.NewGauge(prometheus.GaugeOpts{Name: "nocbridge_store_free_bytes",
			Help: "Free bytes on the state directory's filesystem, at the last check."}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "nocbridge_store_writes_refused_total",
			Help: "Writes refused because the state store could not write."}),
		recovered: prometheus.NewCounter(prometheus.CounterOpts{Name: "nocbridge_store_recoveries_total",
			Help: "Times the state store wrote again after failing, without a restart."}),
	}
	h.healthy.Set(1)
	h.epoch, h.endEpoch = context.WithCancel(context.Background())
	if reg != nil {
		for _, c := range []prometheus.Collector{h.healthy, h.free, h.refused, h.recovered} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("store metrics: %w", err)
			}
		}
	}
	return h, nil
}

// Health reports whether the store can write, and the state filesystem's
// space.
func (s *Store) Health() Health {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	return s.h.cur
}

// OnChange calls fn (on its own goroutine) each time the store stops or
// starts writing again. What could not be stored is tried again then.
func (s *Store) OnChange(fn func(Health)) {
	s.h.mu.Lock()
	s.h.listeners = append(s.h.listeners, fn)
	s.h.mu.Unlock()
}

// write runs a store write, refusing it at once while the store cannot
// write, and has a failed one checked. A write under way when the store
// fails is abandoned then: JetStream never answers a write to a stream that
// met a disk error, and the caller would wait out its whole timeout.
func (s *Store) write(ctx context.Context, op func(context.Context) error) error {
	s.h.mu.Lock()
	epoch := s.h.epoch
	s.h.mu.Unlock()
	if err := s.refuse(); err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(epoch, cancel)
	err := op(wctx)
	stop()
	cancel()
	if err == nil || errors.Is(ctx.Err(), context.Canceled) {
		return err
	}
	if errors.Is(err, jetstream.ErrMsgNotFound) || errors.Is(err, jetstream.ErrKeyNotFound) {
		return err
	}
	// The reason is the server's, logged as it happens; a timeout alone
	// may be a slow disk: a probe decides.
	if refused := s.refuse(); refused != nil {
		return fmt.Errorf("%w (%w)", refused, err)
	}
	select {
	case s.h.kick <- struct{}{}:
	default:
	}
	return err
}

func (s *Store) refuse() error {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	if s.h.cur.OK {
		return nil
	}
	s.h.cur.Refused++
	s.h.refused.Inc()
	return fmt.Errorf("%w in %s: %s", ErrUnavailable, s.dir, s.h.cur.Reason)
}

// failed marks the store unable to write. restart says a stream met a
// write error, which only a JetStream restart clears.
func (s *Store) failed(reason string, restart bool) {
	s.h.mu.Lock()
	s.h.needRestart = s.h.needRestart || restart
	if !s.h.cur.OK {
		s.h.mu.Unlock()
		return
	}
	now := time.Now()
	s.h.cur.OK, s.h.cur.Reason, s.h.cur.Since, s.h.cur.Refused = false, reason, now, 0
	if free, total, err := diskSpace(s.dir); err == nil {
		s.h.cur.Free, s.h.cur.Total = free, total
	}
	s.h.lastLog = now
	s.h.healthy.Set(0)
	s.h.endEpoch()
	cur, listeners := s.h.cur, s.h.listeners
	s.h.mu.Unlock()
	s.log.Error("state store cannot write: what cannot be stored is held in memory and stored once writing works again",
		"dir", s.dir, "reason", reason, "free", bytesText(cur.Free))
	for _, fn := range listeners {
		go fn(cur)
	}
	select {
	case s.h.kick <- struct{}{}:
	default:
	}
}

// diskError is the serverLogger's hook: the embedded server logs a stream's
// failed file write before the client's write times out.
func (s *Store) diskError(msg string) {
	reason := msg
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		reason = msg[i+2:] // "no space left on device", "input/output error"…
	}
	s.failed("disk write failed: "+reason, true)
}

// Run watches the store's health until ctx ends: while it cannot write it
// tries to recover as soon as space is freed and logs once a minute; otherwise it checks
// the free space every 30 seconds and warns when it runs low.
func (s *Store) Run(ctx context.Context) error {
	s.checkSpace()
	timer := time.NewTimer(checkEvery)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-s.h.kick:
		}
		s.checkSpace()
		if s.Health().OK {
			s.confirm(ctx)
		} else {
			s.tryRecover(ctx)
		}
		next := checkEvery
		if !s.Health().OK {
			next = recoverEvery
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(next)
	}
}

// confirm probes after a write failed while the store looked healthy: a
// timeout alone does not say whether the disk is the cause.
func (s *Store) confirm(ctx context.Context) {
	s.h.mu.Lock()
	restart := s.h.needRestart
	s.h.mu.Unlock()
	if restart {
		return // failed() already ran
	}
	if err := s.probe(ctx); err != nil && ctx.Err() == nil {
		if s.Clustered() && noStreamLeader(err) {
			// A JetStream election (a node died) or this node cut off from
			// the quorum: no stream leader answers, the disk is not in
			// question. Refusing every write here would also refuse the
			// leader lease's renewals and prolong a failover; a disk
			// error is still caught as the server logs it (diskError).
			s.log.Warn("state store: a write got no answer from its stream's leader (a JetStream election, or this node cut off from the others); not a disk failure", "err", err)
			return
		}
		s.failed("probe write failed: "+err.Error(), false)
	}
}

// noStreamLeader reports a write that no stream leader answered.
func noStreamLeader(err error) bool {
	return errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded)
}

// tryRecover restarts JetStream when a stream met a write error (or a probe
// still fails), then probes; a probe that lands ends the outage.
func (s *Store) tryRecover(ctx context.Context) {
	h := s.Health()
	s.h.mu.Lock()
	restart := s.h.needRestart
	tried := !s.h.lastTry.IsZero() && time.Since(s.h.lastTry) < retryAfter && h.Free < s.h.lastTryFree+retryGrowth
	if (h.Total > 0 && h.Free < minFreeToRecover) || tried {
		s.h.mu.Unlock()
		s.stillFailing(h, "waiting for free space")
		return
	}
	s.h.lastTry, s.h.lastTryFree = time.Now(), h.Free
	s.h.mu.Unlock()
	if !restart {
		if err := s.probe(ctx); err == nil {
			s.recovered()
			return
		}
	}
	if err := s.restartJetStream(); err != nil {
		s.stillFailing(h, "restarting JetStream: "+err.Error())
		return
	}
	s.h.mu.Lock()
	s.h.needRestart = false
	s.h.mu.Unlock()
	if err := s.probe(ctx); err != nil {
		s.stillFailing(h, "probe write: "+err.Error())
		return
	}
	s.recovered()
}

func (s *Store) stillFailing(h Health, attempt string) {
	s.h.mu.Lock()
	due := time.Since(s.h.lastLog) >= unhealthyLogEvery
	if due {
		s.h.lastLog = time.Now()
	}
	s.h.mu.Unlock()
	if due {
		s.log.Error("state store still cannot write; writing again as soon as space is freed", "dir", s.dir, "reason", h.Reason,
			"for", time.Since(h.Since).Round(time.Second).String(), "writes_refused", h.Refused,
			"free", bytesText(h.Free), "last_attempt", attempt)
	}
}

func (s *Store) recovered() {
	s.h.mu.Lock()
	if s.h.cur.OK || s.h.needRestart {
		s.h.mu.Unlock()
		return // a write error came in meanwhile: the next round retries
	}
	was := s.h.cur
	s.h.cur.OK, s.h.cur.Reason, s.h.cur.Since, s.h.cur.Refused = true, "", time.Time{}, 0
	s.h.lastTry, s.h.lastTryFree = time.Time{}, 0
	s.h.healthy.Set(1)
	s.h.epoch, s.h.endEpoch = context.WithCancel(context.Background())
	s.h.recovered.Inc()
	cur, listeners := s.h.cur, s.h.listeners
	s.h.mu.Unlock()
	s.log.Info("state store writes again; what was held in memory is being stored and sent",
		"dir", s.dir, "was", was.Reason, "for", time.Since(was.Since).Round(time.Millisecond).String(),
		"writes_refused", was.Refused, "free", bytesText(cur.Free))
	for _, fn := range listeners {
		go fn(cur)
	}
}

// probe writes one small record through the same path as every write.
func (s *Store) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	if _, err := s.js.Publish(ctx, probeSubject, []byte(time.Now().UTC().Format(time.RFC3339Nano))); err != nil {
		return err
	}
	return nil
}

// restartJetStream shuts JetStream down and enables it again with the same
// settings: the streams are recovered from their files, and one that met a
// write error is writable again. The connection and the handles callers
// hold stay valid: they name streams, which come back under the same names.
func (s *Store) restartJetStream() error {
	if s.srv == nil {
		return fmt.Errorf("JetStream is the server's at %s, not this process's: it cannot be restarted from here", s.remote)
	}
	cfg := s.srv.JetStreamConfig()
	if err := s.srv.ShutdownJetStream(); err != nil {
		return err
	}
	next := &server.JetStreamConfig{StoreDir: s.dir, MaxStore: s.maxStore, MaxMemory: -1,
		SyncAlways: s.syncAlways, SyncInterval: s.syncInterval, CompressOK: true, Strict: true}
	if cfg != nil {
		next.MaxMemory = cfg.MaxMemory
	}
	if next.MaxMemory <= 0 {
		next.MaxMemory = 64 << 20 // file storage only: memory is for the server's own use
	}
	if err := s.srv.EnableJetStream(next); err != nil {
		return err
	}
	return s.ensureProbeLog()
}

// ensureProbeLog creates the one-record log the probe writes to.
func (s *Store) ensureProbeLog() error {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	_, err := s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: probeLog, Description: "nocbridge: the store's write probe (one record)",
		Subjects: []string{probeSubject}, Storage: jetstream.FileStorage, MaxMsgsPerSubject: 1,
		Replicas: s.replicas,
	})
	if err != nil {
		return fmt.Errorf("creating the probe log: %w", err)
	}
	return nil
}

// checkSpace reads the state filesystem's free space, and warns when it is
// low: on the way down, then once an hour while it stays low.
func (s *Store) checkSpace() {
	if s.srv == nil {
		return // remote: the files are the NATS server's
	}
	free, total, err := diskSpace(s.dir)
	if err != nil {
		s.log.Debug("reading the state filesystem's free space", "dir", s.dir, "err", err)
		return
	}
	s.h.free.Set(float64(free))
	s.h.mu.Lock()
	wasLow := s.h.cur.Low()
	s.h.cur.Free, s.h.cur.Total = free, total
	low := s.h.cur.Low()
	warn := low && (!wasLow || time.Since(s.h.lastLowLog) >= lowLogEvery)
	if warn {
		s.h.lastLowLog = time.Now()
	}
	s.h.mu.Unlock()
	switch {
	case warn:
		s.log.Warn("state filesystem is low on space (under 5% or 256 MiB free): free some before it fills",
			"dir", s.dir, "free", bytesText(free), "total", bytesText(total))
	case wasLow && !low:
		s.log.Info("state filesystem has room again", "dir", s.dir, "free", bytesText(free), "total", bytesText(total))
	}
}

// diskSpace is the free (for an unprivileged writer) and total bytes of
// the filesystem holding dir.
func diskSpace(dir string) (free, total uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	return st.Bavail * uint64(st.Bsize), st.Blocks * uint64(st.Bsize), nil
}

// bytesText renders a size for the log: "212.4 MiB".
func bytesText(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
