package durable

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/group"
	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
	"github.com/pulsar-sidecar/pulsar-sidecar/spool"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// Sentinel errors. SendAsync's errors wrap one of these (or
// context.DeadlineExceeded); match them with errors.Is. None of them means
// the message is durable; a retry with the same idempotency key is safe.
var (
	// ErrSpoolFull: no cluster took the message in time and the spool has
	// no room, because it reached spool.Options.MaxBytes or the disk is full
	// (ENOSPC). Nothing already spooled is harmed.
	ErrSpoolFull = errors.New("durable: no cluster took the message and the local spool is full")
	// ErrSpoolWrite: no cluster took the message in time and writing or
	// fsyncing the spool failed for another reason (an I/O error).
	ErrSpoolWrite = errors.New("durable: no cluster took the message and the local spool write failed")
	// ErrRejected: a cluster refused the message for good (too large, a
	// topic it does not allow, no permission): retrying, failing over or
	// spooling it would not help. It wraps the cluster's error, so
	// errors.As finds a *pulsar.Error with Result() pulsar.MessageTooBig, for
	// example. Also returned when the spool refuses a record as too large.
	ErrRejected = errors.New("durable: message refused")
	// ErrClosed: the Sender is closed (the sidecar is shutting down).
	ErrClosed = errors.New("durable: sender closed")
)

// Probe checks whether a cluster can take messages. It must honour ctx.
type Probe func(ctx context.Context) error

// Cluster is one Pulsar cluster the Sender can write to.
type Cluster struct {
	// Name is reported in receipts (Receipt.Cluster), metrics and trace
	// events. Defaults: "primary" and "dr".
	Name string
	// Sender writes to the cluster, typically a *produce.PulsarSender over
	// the cluster's own Pool and client. Required.
	Sender produce.Sender
	// Probe checks the cluster while its breaker is open or half-open, and
	// when it was idle for Options.IdleProbeInterval. nil:
	// SendProbe(Sender, Options.HealthTopic).
	Probe Probe
}

// Options configure a Sender. Zero values take the defaults named per
// field.
type Options struct {
	Primary Cluster
	// DR is the disaster-recovery cluster; nil for none.
	DR *Cluster

	// SpoolDir is the spool's directory (required), e.g. <dataDir>/spool.
	SpoolDir string
	// Spool tunes the spool (size limits, segment size...). Its Logger
	// defaults to Logger.
	Spool spool.Options

	// RequestTimeout is the deadline used when SendAsync's ctx has none
	// (default 10s). A ctx deadline always wins, so a request can shorten
	// or extend it.
	RequestTimeout time.Duration
	// AttemptTimeout bounds one send to a cluster (default 1s). A broker
	// that is down does not fail sends: the client holds them while it
	// reconnects. This is what turns a dead cluster into a retriable
	// failure, and so it bounds the failover time.
	AttemptTimeout time.Duration
	// SpoolMargin is kept free before the deadline for the spool append:
	// no cluster attempt starts or runs past deadline - SpoolMargin
	// (default 300ms).
	SpoolMargin time.Duration
	// RetryBase and RetryMax shape the backoff between attempts on the same
	// cluster: exponential from RetryBase, capped at RetryMax, with jitter
	// (defaults 25ms, 1s). A retry to another cluster goes at once.
	RetryBase, RetryMax time.Duration

	// Breaker tunes every cluster's circuit breaker.
	Breaker BreakerOptions
	// ProbeInterval is how often an open or half-open cluster is probed
	// (default 500ms); ProbeTimeout bounds one probe (default 1s).
	ProbeInterval, ProbeTimeout time.Duration
	// IdleProbeInterval: a closed cluster that saw no traffic for this long
	// is probed, so a dead disaster-recovery cluster shows in metrics and
	// Health before it is needed (default 10s; negative: never).
	IdleProbeInterval time.Duration
	// HealthTopic is where the default probes write a tiny message
	// (default persistent://public/default/psc-health).
	HealthTopic string

	// ReplayWindow is how many spooled messages are in flight at once
	// during replay (default 256).
	ReplayWindow int
	// RejectedRetry is how often spooled messages that a cluster refused
	// for good are offered again (default 1m).
	RejectedRetry time.Duration

	// Recorder receives retried, failed_over, spooled and replayed events
	// (default tracer.Nop).
	Recorder tracer.Recorder
	// Node names this sidecar instance in trace events.
	Node string
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// DefaultHealthTopic is where the default probes write.
const DefaultHealthTopic = "persistent://public/default/psc-health"

// minAttempt is the least time worth giving a cluster attempt.
const minAttempt = 20 * time.Millisecond

func (o Options) withDefaults() Options {
	if o.Primary.Name == "" {
		o.Primary.Name = "primary"
	}
	if o.DR != nil {
		dr := *o.DR
		if dr.Name == "" {
			dr.Name = "dr"
		}
		o.DR = &dr
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 10 * time.Second
	}
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = time.Second
	}
	if o.SpoolMargin <= 0 {
		o.SpoolMargin = 300 * time.Millisecond
	}
	if o.RetryBase <= 0 {
		o.RetryBase = 25 * time.Millisecond
	}
	if o.RetryMax < o.RetryBase {
		o.RetryMax = max(time.Second, o.RetryBase)
	}
	if o.ProbeInterval <= 0 {
		o.ProbeInterval = 500 * time.Millisecond
	}
	if o.ProbeTimeout <= 0 {
		o.ProbeTimeout = time.Second
	}
	if o.IdleProbeInterval == 0 {
		o.IdleProbeInterval = 10 * time.Second
	}
	if o.HealthTopic == "" {
		o.HealthTopic = DefaultHealthTopic
	}
	if o.ReplayWindow <= 0 {
		o.ReplayWindow = 256
	}
	if o.RejectedRetry <= 0 {
		o.RejectedRetry = time.Minute
	}
	if o.Recorder == nil {
		o.Recorder = tracer.Nop{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Spool.Logger == nil {
		o.Spool.Logger = o.Logger
	}
	return o
}

// Sender makes messages durable: on the primary cluster, else on the
// disaster-recovery cluster, else in the local spool, which a replayer
// empties into a healthy cluster. It implements produce.Sender. See the
// package documentation for the rules.
type Sender struct {
	opts     Options
	log      *slog.Logger
	rec      tracer.Recorder
	clusters []*cluster // primary first
	dr       *cluster   // nil without one
	spool    *spool.Spool
	met      *metricSet

	mu      sync.Mutex
	closed  bool
	closing atomic.Bool
	ops     sync.WaitGroup // messages not answered yet
	wg      sync.WaitGroup // probers
	bg      context.Context
	stopBG  context.CancelFunc

	replayStop context.CancelFunc
	replayDone chan struct{}

	closeOnce sync.Once
	closeErr  error

	notifyMu    sync.Mutex
	notify      chan struct{} // closed and replaced on every breaker transition
	transitions atomic.Uint64 // breaker transitions so far

	spoolFullAt atomic.Int64 // unix nanos of the last append refused for lack of room
}

var _ produce.Sender = (*Sender)(nil)

type cluster struct {
	name         string
	sender       produce.Sender
	probe        Probe
	br           *breaker
	probeRefused atomic.Bool // a refusal was logged once
}

// op is one message on its way. Its fields are touched by one step at a
// time (attempt, outcome, retry), each handing over to the next.
type op struct {
	m         *produce.Message
	done      func(produce.Receipt, error)
	ctx       context.Context // the caller's values, without its cancellation
	start     time.Time
	deadline  time.Time
	n         int      // attempts made
	failedOn  *cluster // cluster of the last failed attempt
	refusedBy *cluster // the DR cluster when it refused the message for good
	lastErr   error
}

// New opens the spool in opts.SpoolDir (recovering what a previous run
// left, see spool.Open), starts the probers and the replayer, and returns a
// Sender ready for SendAsync. Close it after the HTTP server stopped and
// before the clusters' pools are closed.
func New(opts Options) (*Sender, error) {
	if opts.Primary.Sender == nil {
		return nil, errors.New("durable: Options.Primary.Sender is required")
	}
	if opts.DR != nil && opts.DR.Sender == nil {
		return nil, errors.New("durable: Options.DR.Sender is required when DR is set")
	}
	if opts.SpoolDir == "" {
		return nil, errors.New("durable: Options.SpoolDir is required")
	}
	opts = opts.withDefaults()
	if opts.DR != nil && opts.DR.Name == opts.Primary.Name {
		return nil, fmt.Errorf("durable: the primary and DR clusters are both named %q", opts.Primary.Name)
	}
	sp, err := spool.Open(opts.SpoolDir, opts.Spool)
	if err != nil {
		return nil, fmt.Errorf("durable: %w", err)
	}
	s := &Sender{
		opts:       opts,
		log:        opts.Logger.With("component", "durable"),
		rec:        opts.Recorder,
		spool:      sp,
		notify:     make(chan struct{}),
		replayDone: make(chan struct{}),
	}
	s.met = newMetrics(opts.Registerer, sp.Stats, time.Now)
	s.bg, s.stopBG = context.WithCancel(context.Background())
	add := func(c Cluster) *cluster {
		cl := &cluster{name: c.Name, sender: c.Sender, probe: c.Probe}
		if cl.probe == nil {
			cl.probe = SendProbe(c.Sender, opts.HealthTopic)
		}
		cl.br = newBreaker(opts.Breaker, time.Now(), func(from, to State) { s.transition(cl, from, to) })
		s.met.initState(cl.name)
		s.clusters = append(s.clusters, cl)
		return cl
	}
	add(opts.Primary)
	if opts.DR != nil {
		s.dr = add(*opts.DR)
	}
	if rep := sp.Recovery(); len(rep.Corrupt) > 0 || rep.CheckpointProblem != "" {
		s.log.Error("spool recovered with damage: the valid records will be replayed, the bad bytes were set aside",
			"corrupt_tails", len(rep.Corrupt), "checkpoint_problem", rep.CheckpointProblem)
	}
	for _, c := range s.clusters {
		s.wg.Go(func() { s.probeLoop(c) })
	}
	var rctx context.Context
	rctx, s.replayStop = context.WithCancel(context.Background())
	go s.replayLoop(rctx)
	return s, nil
}

// transition reports a breaker's state change: metrics, logs, and a wake-up
// for whoever waits for a cluster (the replayer).
func (s *Sender) transition(c *cluster, from, to State) {
	s.met.setState(c.name, to)
	switch to {
	case Open:
		s.log.Warn("cluster unhealthy: circuit open", "cluster", c.name, "from", from.String())
	case HalfOpen:
		s.log.Info("cluster answering probes: trying it again", "cluster", c.name)
	case Closed:
		s.log.Info("cluster healthy again: circuit closed", "cluster", c.name)
	}
	s.transitions.Add(1)
	s.notifyMu.Lock()
	close(s.notify)
	s.notify = make(chan struct{})
	s.notifyMu.Unlock()
}

// changed returns a channel closed at the next breaker transition.
func (s *Sender) changed() <-chan struct{} {
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	return s.notify
}

// SendAsync implements produce.Sender. The first attempt is handed over on
// the caller's goroutine, so without faults messages keep their order per
// topic; retries, failover and the spool may reorder (see the package
// documentation). ctx's deadline (or Options.RequestTimeout) bounds the
// whole journey: cluster attempts stop SpoolMargin before it, and the spool
// append must finish by it. ctx's cancellation is ignored: once accepted,
// a message is made durable or answered with an error by the deadline.
func (s *Sender) SendAsync(ctx context.Context, m *produce.Message, done func(produce.Receipt, error)) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		done(produce.Receipt{}, ErrClosed)
		return
	}
	s.ops.Add(1)
	s.mu.Unlock()
	now := time.Now()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = now.Add(s.opts.RequestTimeout)
	}
	s.attempt(&op{m: m, done: done, ctx: context.WithoutCancel(ctx), start: now, deadline: deadline})
}

// attempt sends o to the best cluster that will take it, or spools it.
func (s *Sender) attempt(o *op) {
	budget := time.Until(o.deadline) - s.opts.SpoolMargin
	if s.closing.Load() || budget < minAttempt {
		s.toSpool(o)
		return
	}
	c, t, ok := s.pick(o.failedOn, o.refusedBy)
	if !ok {
		s.toSpool(o)
		return
	}
	if o.n > 0 {
		s.met.retry()
	}
	o.n++
	s.sendOnce(o.ctx, c, o.m, min(s.opts.AttemptTimeout, budget), func(rc produce.Receipt, err error) {
		s.attempted(o, c, t, rc, err)
	})
}

// pick chooses a cluster: the primary first, then the DR cluster, avoiding
// the one that just failed while another will take the message, and never
// the one that refused it.
func (s *Sender) pick(avoid, refused *cluster) (*cluster, ticket, bool) {
	for _, c := range s.clusters {
		if c == avoid || c == refused {
			continue
		}
		if t, ok := c.br.acquire(); ok {
			return c, t, true
		}
	}
	if avoid != nil && avoid != refused {
		if t, ok := avoid.br.acquire(); ok {
			return avoid, t, true
		}
	}
	return nil, ticket{}, false
}

// sendOnce sends m to c and calls cb exactly once: with the cluster's
// outcome, or with errAttemptTimeout when none came within timeout. A
// success that comes later is counted as a late ack: the message may then
// be stored twice, under the same uid. The hand-over gets a context that is
// cancelled when the attempt times out.
func (s *Sender) sendOnce(ctx context.Context, c *cluster, m *produce.Message, timeout time.Duration, cb func(produce.Receipt, error)) {
	// One timer and one cancelable context per attempt, and no context
	// callback registration: every message pays for this.
	a := &attemptCall{s: s, c: c, uid: m.UID, cb: cb}
	var actx context.Context
	actx, a.cancel = context.WithCancel(ctx)
	a.timer = time.AfterFunc(timeout, a.expire)
	c.sender.SendAsync(actx, m, a.outcome)
}

// attemptCall is one attempt of sendOnce: whichever of the outcome and the
// timer comes first answers.
type attemptCall struct {
	s      *Sender
	c      *cluster
	uid    string
	cb     func(produce.Receipt, error)
	cancel context.CancelFunc
	timer  *time.Timer
	once   atomic.Bool
}

func (a *attemptCall) expire() {
	if a.once.CompareAndSwap(false, true) {
		a.cancel()
		a.cb(produce.Receipt{}, errAttemptTimeout)
	}
}

func (a *attemptCall) outcome(rc produce.Receipt, err error) {
	if !a.once.CompareAndSwap(false, true) {
		if err == nil {
			a.s.met.lateAck(a.c.name)
			a.s.log.Debug("late acknowledgement after the attempt timed out", "cluster", a.c.name, "uid", a.uid)
		}
		return
	}
	a.timer.Stop()
	a.cancel()
	a.cb(rc, err)
}

// attempted handles an attempt's outcome. It may run on the client's
// goroutine, so it never blocks: retries and spool appends go elsewhere.
func (s *Sender) attempted(o *op, c *cluster, t ticket, rc produce.Receipt, err error) {
	now := time.Now()
	if err == nil {
		c.br.success(t, now)
		s.met.attempt(c.name, "ok")
		s.succeed(o, c, rc)
		return
	}
	if !Retriable(err) {
		c.br.release(t, now)
		s.met.attempt(c.name, "rejected")
		if c == s.dr && !intrinsic(err) {
			// The primary's setup is the reference: a topic or permission
			// missing on the DR cluster must not refuse a message the
			// primary will take when it is back. Keep it for the primary,
			// or the spool.
			s.log.Warn("message refused by the DR cluster: keeping it for the primary",
				"uid", o.m.UID, "topic", o.m.Topic, "err", err)
			o.failedOn, o.refusedBy, o.lastErr = c, c, err
			s.retry(o)
			return
		}
		s.log.Warn("message refused by the cluster", "cluster", c.name, "uid", o.m.UID, "topic", o.m.Topic, "err", err)
		s.finish(o, produce.Receipt{}, fmt.Errorf("%w by cluster %s: %w", ErrRejected, c.name, err))
		return
	}
	c.br.failure(t, now)
	result := "retriable"
	if errors.Is(err, errAttemptTimeout) {
		result = "timeout"
	}
	s.met.attempt(c.name, result)
	o.failedOn, o.lastErr = c, err
	s.retry(o)
}

// retry schedules o's next attempt: at once when another cluster will take
// it, after a backoff when only the failed one may, or straight to the
// spool when no cluster will or the deadline is too close.
func (s *Sender) retry(o *op) {
	if s.closing.Load() {
		s.toSpool(o)
		return
	}
	for _, c := range s.clusters {
		if c != o.failedOn && c != o.refusedBy && c.br.available() {
			s.recordRetried(o)
			go s.attempt(o)
			return
		}
	}
	d := s.backoff(o.n)
	if o.failedOn == o.refusedBy || !o.failedOn.br.available() || time.Until(o.deadline)-s.opts.SpoolMargin < d+minAttempt {
		s.toSpool(o)
		return
	}
	s.recordRetried(o)
	time.AfterFunc(d, func() { s.attempt(o) })
}

// backoff is the pause before attempt n+1 on the same cluster: exponential
// from RetryBase, capped at RetryMax, the upper half jittered ("equal
// jitter": never less than half the step, so retries do not bunch at 0).
func (s *Sender) backoff(n int) time.Duration {
	d := s.opts.RetryBase
	for i := 1; i < n && d < s.opts.RetryMax; i++ {
		d *= 2
	}
	d = min(d, s.opts.RetryMax)
	half := d / 2
	return half + rand.N(half+1)
}

func (s *Sender) recordRetried(o *op) {
	s.rec.Record(s.event(tracer.Retried, o.m, func(ev *tracer.Event) {
		ev.Cluster, ev.Attempt, ev.Error = o.failedOn.name, o.n, o.lastErr.Error()
	}))
}

// succeed answers o with a cluster's receipt.
func (s *Sender) succeed(o *op, c *cluster, rc produce.Receipt) {
	rc.Cluster = c.name
	if c == s.dr {
		rc.Status = produce.StatusFailover
		s.met.failover()
		s.rec.Record(s.event(tracer.FailedOver, o.m, func(ev *tracer.Event) {
			ev.Cluster, ev.MessageID, ev.Attempt, ev.Latency = c.name, rc.MessageID, o.n, time.Since(o.start)
			if o.lastErr != nil {
				ev.Error = o.lastErr.Error()
			}
		}))
	}
	s.finish(o, rc, nil)
}

// finish answers o. It is the last thing done for an op, so that Close,
// which waits for every op, also waits for the goroutines serving them.
func (s *Sender) finish(o *op, rc produce.Receipt, err error) {
	o.done(rc, err)
	s.ops.Done()
}

// toSpool appends o to the spool on a goroutine of its own: the fsync must
// not block the caller or the client, and concurrent appends share one
// fsync (group commit).
func (s *Sender) toSpool(o *op) {
	go s.spoolOp(o)
}

func (s *Sender) spoolOp(o *op) {
	ctx, cancel := context.WithDeadline(o.ctx, o.deadline)
	defer cancel()
	_, err := s.spool.Append(ctx, toRecord(o.m))
	if err == nil {
		s.met.spool("ok")
		s.rec.Record(s.event(tracer.Spooled, o.m, func(ev *tracer.Event) {
			ev.Attempt, ev.Latency = o.n, time.Since(o.start)
			if o.lastErr != nil {
				ev.Error = o.lastErr.Error()
			}
		}))
		s.finish(o, produce.Receipt{Status: produce.StatusSpooled}, nil)
		return
	}
	result, err := s.spoolError(err)
	s.met.spool(result)
	s.log.Warn("message not durable: spool append failed", "uid", o.m.UID, "topic", o.m.Topic,
		"result", result, "err", err, "last_cluster_err", o.lastErr)
	s.finish(o, produce.Receipt{}, err)
}

// spoolError maps a spool failure to a metric label and this package's
// errors.
func (s *Sender) spoolError(err error) (result string, mapped error) {
	switch {
	case errors.Is(err, spool.ErrFull), errors.Is(err, syscall.ENOSPC):
		s.spoolFullAt.Store(time.Now().UnixNano())
		return "full", fmt.Errorf("%w: %w", ErrSpoolFull, err)
	case errors.Is(err, spool.ErrClosed):
		return "closed", fmt.Errorf("%w: %w", ErrClosed, err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		// The append may have completed: a replay then delivers the
		// message once more, under the same uid.
		return "timeout", fmt.Errorf("durable: the spool append did not finish before the request deadline: %w", context.DeadlineExceeded)
	case errors.Is(err, spool.ErrTooLarge), errors.Is(err, spool.ErrInvalid):
		return "rejected", fmt.Errorf("%w by the spool: %w", ErrRejected, err)
	}
	return "error", fmt.Errorf("%w: %w", ErrSpoolWrite, err)
}

// event builds a trace event about m; fill sets the step's own fields.
func (s *Sender) event(typ tracer.Type, m *produce.Message, fill func(*tracer.Event)) tracer.Event {
	ev := tracer.Event{Type: typ, UID: m.UID, Topic: m.Topic, Key: m.Key, Tags: m.Tags, App: m.App,
		Node: s.opts.Node, Time: time.Now()}
	fill(&ev)
	return ev
}

// SpoolRecovery reports what opening the spool found: damaged tails set
// aside (moved into ".corrupt" files next to their segment) and records
// recovered.
func (s *Sender) SpoolRecovery() spool.Recovery { return s.spool.Recovery() }

// Close stops taking messages (SendAsync then answers ErrClosed), waits for
// the messages under way to be answered (those between attempts go to the
// spool at once), lets the replayer empty the spool into a healthy cluster
// while ctx allows, then stops it and closes the spool. What is not
// replayed stays safely in the spool for the next start. Close it before
// the clusters' pools. It is idempotent.
func (s *Sender) Close(ctx context.Context) error {
	s.closeOnce.Do(func() { s.closeErr = s.close(ctx) })
	return s.closeErr
}

func (s *Sender) close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.closing.Store(true)
	var errs []error
	if err := group.WaitContext(ctx, s.ops.Wait); err != nil {
		errs = append(errs, fmt.Errorf("durable: messages still under way at close: %w", err))
	}
	s.drain(ctx)
	s.replayStop()
	<-s.replayDone // in-flight replays end within AttemptTimeout
	s.stopBG()
	s.wg.Wait()
	if err := s.spool.Close(); err != nil {
		errs = append(errs, fmt.Errorf("durable: %w", err))
	}
	st := s.spool.Stats()
	s.log.Info("durable sender closed", "spooled_left", st.Depth)
	return errors.Join(errs...)
}

// drain waits while the replayer makes progress emptying the spool, until
// it is empty, no cluster is available, progress stops, or ctx ends.
func (s *Sender) drain(ctx context.Context) {
	const tick = 20 * time.Millisecond
	last, since := s.spool.Stats().Depth, time.Now()
	for last > 0 {
		available := false
		for _, c := range s.clusters {
			available = available || c.br.State() == Closed
		}
		if !available || time.Since(since) > 2*s.opts.AttemptTimeout {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(tick):
		}
		if d := s.spool.Stats().Depth; d < last {
			last, since = d, time.Now()
		}
	}
}
