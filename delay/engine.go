package delay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/group"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/wire"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// Mode is how a message is held back.
type Mode string

// The three modes of delayed delivery.
const (
	// ModeLevel: the message waits in a level topic; chosen by delayLevel.
	ModeLevel Mode = "level"
	// ModeWheel: the message waits in the Redis index and the timing wheel;
	// any delay, one-second precision, cancel and reschedule.
	ModeWheel Mode = "wheel"
	// ModeNative: the message goes to its topic with Pulsar's deliverAt.
	// Only Shared and Key_Shared subscriptions honour it; Exclusive and
	// Failover subscriptions receive it at once. It cannot be cancelled.
	ModeNative Mode = "native"
)

// StatusScheduled is the status of a message the engine holds back; it is
// produce.StatusScheduled.
const StatusScheduled = "scheduled"

// Errors of the engine (besides the index's ErrNotFound, ErrInvalid...).
var (
	// ErrModeUnavailable: the request needs a mode this engine cannot
	// offer (wheel or cancel without Redis, levels disabled).
	ErrModeUnavailable = errors.New("delay: delay mode not available")
	// ErrClosed: the engine is closed.
	ErrClosed = errors.New("delay: engine closed")
	// ErrLevelFixed: a level message cannot be rescheduled; cancel it and
	// schedule it again.
	ErrLevelFixed = errors.New("delay: a level message cannot be rescheduled")
)

// TopicMode chooses the mode of deliverAfter and deliverAt for the topics
// that Pattern matches.
type TopicMode struct {
	// Pattern is a path.Match pattern on the full topic name
	// ("persistent://bill/pay/*", "persistent://bill/*/*"), or on
	// "tenant/namespace/topic" when it has no "://".
	Pattern string
	Mode    Mode // ModeWheel or ModeNative
}

// Config configures an Engine. The zero value is usable.
type Config struct {
	// Mode is the mode of deliverAfter and deliverAt: ModeWheel (the
	// default when Redis is given) or ModeNative (the default without).
	Mode Mode
	// TopicModes override Mode per topic; the first match wins.
	TopicModes []TopicMode
	// Levels configures delayLevel.
	Levels LevelsConfig
	// Index and Scheduler configure the wheel mode. Their Prefix is also
	// the prefix of the level cancel marks.
	Index     IndexConfig
	Scheduler SchedulerConfig
	// WheelForwardTimeout bounds one forward of a due wheel message
	// (hand-over and broker ack); default 30 s. A forward that fails is
	// retried when its claim's lease ends.
	WheelForwardTimeout time.Duration
	// Node names this sidecar in trace events and is the consumer name
	// of its level forwarders (the lowest one forwards).
	Node string
	// Clock is the time of the engine (accept times, level waits, the
	// wheel's runner, event times); default the system clock. The wheel's
	// index asks Redis for the time unless Index.Now is set.
	Clock  Clock
	Logger *slog.Logger
}

// EngineOptions are an Engine's collaborators and configuration. The
// caller owns Client, Publisher and Redis and closes them after the
// engine.
type EngineOptions struct {
	// Client subscribes the level forwarders; required unless levels are
	// disabled.
	Client pulsar.Client
	// Publisher sends to level topics and native delays, and forwards due
	// messages when DuePublisher is nil; required. The sidecar passes its
	// *produce.Pool.
	Publisher Publisher
	// DuePublisher forwards due messages (wheel and level) to their real
	// topics; nil means Publisher. The sidecar passes its durable sender,
	// so a message due while the primary is down fails over or is spooled.
	DuePublisher DuePublisher
	// Redis holds the wheel index and the level cancel marks; nil means no
	// wheel mode and no cancel.
	Redis redis.UniversalClient
	// Recorder receives scheduled, fired and cancelled events; tracer.Nop
	// when nil.
	Recorder tracer.Recorder
	// Registerer, when set, gets the engine's metrics
	// (psc_delay_forward_lateness_seconds, psc_delay_wheel_fallbacks_total).
	Registerer prometheus.Registerer
	// PrimaryDown, when set, reports that the primary cluster is known to
	// be unavailable (its circuit breaker is open). Level and native
	// messages are published to the primary, so while it reports true they
	// are scheduled on the timing wheel instead (Redis only), due at the
	// same time rounded up to the second; when due they go through the due
	// publisher like any wheel message (DR cluster or spool). Without it,
	// or without Redis, such a produce waits for the broker and fails.
	PrimaryDown func() bool
	Config      Config
}

// Request asks for one message to be delivered later. Exactly one of
// DeliverAfter, DeliverAt and Level is set. The fields are those of a
// produce request (produce.Message) one for one.
type Request struct {
	UID   string // required; the uid the message keeps when delivered
	App   string
	Topic string // required; full name, persistent://tenant/namespace/topic
	Key   string
	Tags  []string
	// Properties are published as given, with psc-uid, psc-app and
	// psc-tags set from UID, App and Tags: either the user's properties or
	// proxy's PulsarProperties() will do.
	Properties map[string]string
	Payload    []byte
	EventTime  time.Time

	DeliverAfter time.Duration // from AcceptedAt
	DeliverAt    time.Time
	Level        string // a configured level; due is AcceptedAt plus the level

	// AcceptedAt is when the sidecar accepted the message: the base of
	// DeliverAfter and Level. Zero means now.
	AcceptedAt time.Time
	// IndexID: see Message.IndexID (the wheel only).
	IndexID string
}

// Result is the outcome of Schedule.
type Result struct {
	UID    string
	Mode   Mode
	Status string // StatusScheduled
	// MessageID is the broker's id of the stored message: the level
	// message (ModeLevel) or the message itself (ModeNative); nil for
	// ModeWheel, where Redis holds the message until it is due.
	MessageID pulsar.MessageID
	// Due is when the message becomes visible: never earlier. The wheel
	// rounds it up to the second.
	Due   time.Time
	Level string // ModeLevel only
}

// Engine is the sidecar's delayed delivery: it decides per request between
// levels, the wheel and Pulsar's native delay, runs the level forwarders
// and the wheel's scheduler, and serves cancel, list, inspect and
// reschedule. Safe for concurrent use.
//
// NewEngine builds it, Start attaches the forwarders and starts the wheel,
// Close stops them (idempotent). Schedule works before Start: a message
// waits until a forwarder or a scheduler runs, here or on another replica.
type Engine struct {
	cfg     Config
	pub     Publisher
	due     DuePublisher
	client  pulsar.Client
	rec     tracer.Recorder
	log     *slog.Logger
	clock   Clock
	index   *Index     // nil without Redis
	wheel   *Scheduler // nil without Redis
	cancels *cancels   // nil without Redis or levels
	metrics *metrics

	primaryDown func() bool // nil: never

	levels   []Level
	byName   map[string]Level
	byDelay  map[time.Duration]Level
	levelCfg LevelsConfig
	fwds     []*forwarder

	mu      sync.Mutex
	started bool
	closed  bool
	bg      group.Group // ScheduleAsync's wheel schedules and level records; refuses work once Close waits

	// attaching forwarders in the background (Start)
	attachQuit context.CancelFunc
	attachWG   sync.WaitGroup
	attachErr  atomic.Pointer[error] // the last failed attach; nil once all are attached
	unattached atomic.Int32          // forwarders not subscribed yet
}

// NewEngine checks the configuration and builds an engine; it starts
// nothing.
func NewEngine(o EngineOptions) (*Engine, error) {
	cfg := o.Config
	if o.Publisher == nil {
		return nil, fmt.Errorf("%w: a publisher is required", ErrConfig)
	}
	if cfg.Clock == nil {
		cfg.Clock = systemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.WheelForwardTimeout <= 0 {
		cfg.WheelForwardTimeout = 30 * time.Second
	}
	if cfg.Mode == "" {
		cfg.Mode = ModeNative
		if o.Redis != nil {
			cfg.Mode = ModeWheel
		}
	}
	for _, m := range append([]TopicMode{{Pattern: "*", Mode: cfg.Mode}}, cfg.TopicModes...) {
		if err := checkTimeMode(m.Mode, o.Redis != nil); err != nil {
			return nil, err
		}
		if _, err := path.Match(m.Pattern, ""); err != nil {
			return nil, fmt.Errorf("%w: topic mode pattern %q: %w", ErrConfig, m.Pattern, err)
		}
	}
	lcfg, levels, err := cfg.Levels.withDefaults()
	if err != nil {
		return nil, err
	}
	if len(levels) > 0 && o.Client == nil {
		return nil, fmt.Errorf("%w: a pulsar client is required for delay levels", ErrConfig)
	}
	e := &Engine{
		cfg: cfg, pub: o.Publisher, due: o.DuePublisher, client: o.Client, rec: o.Recorder, log: cfg.Logger, clock: cfg.Clock,
		levels: levels, levelCfg: lcfg, metrics: newMetrics(), primaryDown: o.PrimaryDown,
		byName: make(map[string]Level, len(levels)), byDelay: make(map[time.Duration]Level, len(levels)),
	}
	if e.rec == nil {
		e.rec = tracer.Nop{}
	}
	if e.due == nil {
		e.due = publisherDue{o.Publisher}
	}
	if o.Registerer != nil {
		for _, c := range e.metrics.collectors() {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("delay: register metrics: %w", err)
			}
		}
	}
	if o.Redis != nil {
		e.index = NewIndex(o.Redis, cfg.Index)
		scfg := cfg.Scheduler
		if scfg.Clock == nil {
			scfg.Clock = cfg.Clock
		}
		if scfg.Logger == nil {
			scfg.Logger = cfg.Logger
		}
		if e.wheel, err = NewScheduler(e.index, e.forwardWheel, scfg); err != nil {
			return nil, err
		}
		if len(levels) > 0 {
			e.cancels = &cancels{rdb: o.Redis, prefix: e.index.prefix, timeout: e.index.timeout,
				ttl: levels[len(levels)-1].Delay + lcfg.CancelMargin}
		}
	}
	for _, lv := range levels {
		e.byName[lv.Name], e.byDelay[lv.Delay] = lv, lv
		e.fwds = append(e.fwds, &forwarder{
			lv: lv, topic: levelTopic(lcfg.Topic, lv), cfg: &e.levelCfg, client: o.Client, pub: e.due,
			cancels: e.cancels, rec: e.rec, clock: cfg.Clock, log: cfg.Logger, node: cfg.Node,
			lateness: e.metrics.level,
		})
	}
	return e, nil
}

func checkTimeMode(m Mode, haveRedis bool) error {
	switch m {
	case ModeNative:
		return nil
	case ModeWheel:
		if !haveRedis {
			return fmt.Errorf("%w: the wheel mode needs Redis", ErrConfig)
		}
		return nil
	}
	return fmt.Errorf("%w: mode %q for deliverAfter/deliverAt: want %q or %q", ErrConfig, m, ModeWheel, ModeNative)
}

// Start starts the wheel (loading what is due within its horizon from
// Redis) and attaches a forwarder to every level topic in the background:
// each subscribes, and when that fails (the broker is down or slow) tries
// again after a backoff growing from 1 s to 30 s, logged, until it is
// attached or the engine closes. So the engine starts while the broker is
// unreachable (issue 12); level messages wait in their topics until their
// forwarder attaches, and Ready says which are missing. An error (Redis,
// for the wheel) leaves nothing running.
func (e *Engine) Start(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	if e.started {
		return errors.New("delay: engine already started")
	}
	if e.wheel != nil {
		if err := e.wheel.Start(ctx); err != nil {
			return err
		}
	}
	actx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e.attachQuit = cancel
	e.unattached.Store(int32(len(e.fwds)))
	for _, f := range e.fwds {
		e.attachWG.Go(func() { e.attach(actx, f) })
	}
	e.started = true
	e.log.Info("delay: engine started", "levels", len(e.fwds), "mode", e.cfg.Mode, "wheel", e.wheel != nil)
	return nil
}

// attach subscribes f, retrying until it works or ctx ends.
func (e *Engine) attach(ctx context.Context, f *forwarder) {
	var backoff time.Duration
	for {
		err := f.start(ctx)
		if err == nil {
			if backoff > 0 {
				e.log.Info("delay: level forwarder attached", "level", f.lv.Name, "topic", f.topic)
			}
			if e.unattached.Add(-1) == 0 {
				e.attachErr.Store(nil)
			}
			return
		}
		if ctx.Err() != nil {
			return
		}
		e.attachErr.Store(&err)
		backoff = attachBackoff(backoff)
		e.log.Warn("delay: level forwarder not attached; retrying", "level", f.lv.Name, "err", err, "retry_in", backoff)
		if !sleep(ctx, backoff) {
			return
		}
	}
}

// attachBackoff doubles from 1 s up to 30 s: each try may already have
// waited the client's operation timeout.
func attachBackoff(d time.Duration) time.Duration {
	switch {
	case d <= 0:
		return time.Second
	case d >= 15*time.Second:
		return 30 * time.Second
	}
	return 2 * d
}

// Ready is nil when every level forwarder is attached; otherwise it says
// how many wait for the broker and the last error. The engine still
// schedules and the wheel still forwards meanwhile: this is a degraded
// state, not a failed one.
func (e *Engine) Ready(context.Context) error {
	e.mu.Lock()
	started, closed := e.started, e.closed
	e.mu.Unlock()
	switch {
	case closed:
		return ErrClosed
	case !started:
		return errors.New("delay: not started")
	}
	n := e.unattached.Load()
	if n == 0 {
		return nil
	}
	msg := fmt.Sprintf("waiting for broker: %d of %d level forwarders not attached", n, len(e.fwds))
	if p := e.attachErr.Load(); p != nil {
		msg += ": " + (*p).Error()
	}
	return errors.New(msg)
}

// Close stops the forwarders (and their attaching) and the wheel, waiting
// for forwards in flight, and for schedules handed to ScheduleAsync.
// Idempotent. Close the publishers and the client after it.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	started := e.started
	e.mu.Unlock()
	_ = e.bg.Wait(context.Background())
	if !started {
		return nil
	}
	e.attachQuit()
	e.attachWG.Wait() // a subscribe under way finishes first (the client's operation timeout)
	var wg sync.WaitGroup
	for _, f := range e.fwds {
		wg.Go(f.close) // a no-op for those not attached
	}
	if e.wheel != nil {
		wg.Go(func() { _ = e.wheel.Close() })
	}
	wg.Wait()
	return nil
}

// HasLevel reports whether name is a configured level (by name, or by a
// name of the same delay: "60s" for "1m").
func (e *Engine) HasLevel(name string) bool {
	_, ok := e.level(name)
	return ok
}

func (e *Engine) level(name string) (Level, bool) {
	if lv, ok := e.byName[name]; ok {
		return lv, true
	}
	if d, err := time.ParseDuration(name); err == nil {
		lv, ok := e.byDelay[d]
		return lv, ok
	}
	return Level{}, false
}

// Levels lists the configured levels, shortest first.
func (e *Engine) Levels() []Level { return append([]Level(nil), e.levels...) }

// LevelTopic is the topic of a configured level, "" for an unknown one.
func (e *Engine) LevelTopic(name string) string {
	lv, ok := e.level(name)
	if !ok {
		return ""
	}
	return levelTopic(e.levelCfg.Topic, lv)
}

// LevelStats describes each level's forwarder, shortest level first.
func (e *Engine) LevelStats() []LevelStats {
	out := make([]LevelStats, len(e.fwds))
	for i, f := range e.fwds {
		out[i] = f.stats()
	}
	return out
}

// ModeFor is the mode of deliverAfter and deliverAt on topic.
func (e *Engine) ModeFor(topic string) Mode {
	short := strings.TrimPrefix(topic, "persistent://")
	for _, m := range e.cfg.TopicModes {
		name := topic
		if !strings.Contains(m.Pattern, "://") {
			name = short
		}
		if ok, _ := path.Match(m.Pattern, name); ok {
			return m.Mode
		}
	}
	return e.cfg.Mode
}

// plan is a validated request with its mode and due time.
type plan struct {
	mode  Mode
	due   time.Time
	level Level
	// fallbackFrom is the mode asked for when the primary was down and the
	// message went to the wheel instead (PrimaryDown).
	fallbackFrom Mode
}

func (e *Engine) plan(req *Request) (plan, error) {
	if req.UID == "" || req.Topic == "" {
		return plan{}, fmt.Errorf("%w: uid and topic are required", ErrInvalid)
	}
	n := 0
	if req.DeliverAfter != 0 {
		n++
	}
	if !req.DeliverAt.IsZero() {
		n++
	}
	if req.Level != "" {
		n++
	}
	switch {
	case n == 0:
		return plan{}, fmt.Errorf("%w: one of deliverAfter, deliverAt and delayLevel is required", ErrInvalid)
	case n > 1:
		return plan{}, fmt.Errorf("%w: only one of deliverAfter, deliverAt and delayLevel may be given", ErrInvalid)
	case req.DeliverAfter < 0:
		return plan{}, fmt.Errorf("%w: negative deliverAfter %s", ErrInvalid, req.DeliverAfter)
	}
	accepted := req.AcceptedAt
	if accepted.IsZero() {
		accepted = e.clock.Now()
	}
	if req.Level != "" {
		lv, ok := e.level(req.Level)
		if !ok {
			if len(e.levels) == 0 {
				return plan{}, fmt.Errorf("%w: delay levels are disabled", ErrModeUnavailable)
			}
			return plan{}, fmt.Errorf("%w: %q", ErrUnknownLevel, req.Level)
		}
		return plan{mode: ModeLevel, due: ceilMilli(accepted.Add(lv.Delay)), level: lv}, nil
	}
	due := req.DeliverAt
	if due.IsZero() {
		due = accepted.Add(req.DeliverAfter)
	}
	p := plan{mode: e.ModeFor(req.Topic), due: ceilMilli(due)} // Pulsar keeps milliseconds
	if p.mode == ModeWheel {
		p.due = time.Unix(dueSeconds(due), 0)
	}
	return p, nil
}

// Schedule holds req back until its due time and returns once it is
// durable: in the level topic, in Pulsar (native) or in Redis (wheel).
// Scheduling a uid that the wheel already holds returns the existing
// message's result (a retried request). Errors: ErrInvalid,
// ErrUnknownLevel, ErrModeUnavailable, ErrClosed, or the broker's or
// Redis's error (then nothing, or possibly the message, was stored; a
// retry with the same uid is safe for the wheel, and delivers a duplicate
// uid for levels and native, which consumers drop).
func (e *Engine) Schedule(ctx context.Context, req Request) (Result, error) {
	type out struct {
		r   Result
		err error
	}
	ch := make(chan out, 1)
	e.ScheduleAsync(ctx, req, func(r Result, err error) { ch <- out{r, err} })
	select {
	case o := <-ch:
		return o.r, o.err
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// ScheduleAsync is Schedule with the outcome passed to done, exactly once,
// on any goroutine (possibly the caller's); done must not block. Level and
// native messages are handed to the publisher before ScheduleAsync
// returns, so messages handed over by one goroutine keep their order. This
// is the shape of produce.Scheduler.ScheduleAsync.
func (e *Engine) ScheduleAsync(ctx context.Context, req Request, done func(Result, error)) {
	p, err := e.plan(&req)
	if err != nil {
		done(Result{UID: req.UID}, err)
		return
	}
	if p.mode != ModeWheel && e.wheel != nil && e.primaryDown != nil && e.primaryDown() {
		e.metrics.fallbacks.WithLabelValues(string(p.mode)).Inc()
		p = plan{mode: ModeWheel, due: time.Unix(dueSeconds(p.due), 0), level: p.level, fallbackFrom: p.mode}
	}
	switch p.mode {
	case ModeLevel, ModeNative:
		topic := req.Topic
		var pm *pulsar.ProducerMessage
		if p.mode == ModeLevel {
			topic, pm = levelTopic(e.levelCfg.Topic, p.level), levelMessage(&req, p.level, p.due)
		} else {
			pm = &pulsar.ProducerMessage{Payload: req.Payload, Key: req.Key, EventTime: req.EventTime, DeliverAt: p.due,
				Properties: pulsarProperties(req.Properties, req.UID, req.App, req.Tags, 0)}
		}
		start := e.clock.Now()
		finish := func(id pulsar.MessageID, err error) {
			if err != nil {
				done(Result{UID: req.UID}, err)
				return
			}
			r := Result{UID: req.UID, Mode: p.mode, Status: StatusScheduled, MessageID: id, Due: p.due, Level: p.level.Name}
			e.recordScheduled(&req, r, start, "")
			done(r, nil)
		}
		if p.mode == ModeLevel && e.cancels != nil {
			var ok bool
			if finish, ok = e.withLevelRecord(ctx, &req, p, finish); !ok {
				done(Result{UID: req.UID}, ErrClosed)
				return
			}
		}
		e.pub.SendAsync(ctx, topic, pm, finish)
	case ModeWheel:
		if !e.bg.Go(func() {
			r, err := e.scheduleWheel(ctx, &req, p)
			done(r, err)
		}) {
			done(Result{UID: req.UID}, ErrClosed)
		}
	}
}

// withLevelRecord writes the level record of req (levelrecord.go) while
// the level message is published, and returns the publish callback that
// calls finish once both are done: the answer then comes after the record
// exists, so a cancel right after it finds the message. The record is
// written concurrently, not before the hand-over, so the hand-over stays
// on the caller's goroutine (order) and the answer waits for one round
// trip, not two. If Redis does not answer, the message is scheduled anyway
// (it is durable in its level topic and is forwarded when due) but cannot
// be found or cancelled by uid; cancel by key still covers it. Failing the
// produce instead would make the caller retry, and without an idempotency
// key that is a second message under another uid.
func (e *Engine) withLevelRecord(ctx context.Context, req *Request, p plan, finish func(pulsar.MessageID, error)) (func(pulsar.MessageID, error), bool) {
	var (
		left   atomic.Int32
		id     pulsar.MessageID
		pubErr error
	)
	left.Store(2)
	join := func() {
		if left.Add(-1) == 0 {
			finish(id, pubErr)
		}
	}
	rec := levelRecord{Topic: req.Topic, Key: req.Key, Tags: req.Tags, App: req.App, Level: p.level.Name,
		Due: p.due.UnixMilli(), Size: len(req.Payload)}
	if !e.bg.Go(func() { // Close waits for the record: it uses Redis
		if err := e.cancels.putRecord(context.WithoutCancel(ctx), req.UID, rec, p.level.Delay+e.levelCfg.CancelMargin); err != nil {
			e.log.Warn("delay: level message scheduled without its record: it cannot be found or cancelled by uid, only by key",
				"uid", req.UID, "topic", req.Topic, "level", p.level.Name, "err", err)
		}
		join()
	}) {
		return nil, false
	}
	return func(mid pulsar.MessageID, err error) {
		id, pubErr = mid, err
		join()
	}, true
}

func (e *Engine) scheduleWheel(ctx context.Context, req *Request, p plan) (Result, error) {
	start := e.clock.Now()
	m := Message{UID: req.UID, Topic: req.Topic, Key: req.Key, Tags: req.Tags, Properties: req.Properties,
		Payload: req.Payload, EventTime: req.EventTime, Due: p.due, App: req.App, IndexID: req.IndexID}
	_, err := e.wheel.Schedule(ctx, m)
	if errors.Is(err, ErrExists) {
		s, gerr := e.index.Get(ctx, m.indexID())
		if gerr != nil {
			return Result{UID: req.UID}, gerr
		}
		return Result{UID: req.UID, Mode: ModeWheel, Status: StatusScheduled, Due: s.Due, Level: p.level.Name}, nil
	}
	if err != nil {
		return Result{UID: req.UID}, err
	}
	r := Result{UID: req.UID, Mode: ModeWheel, Status: StatusScheduled, Due: p.due, Level: p.level.Name}
	e.recordScheduled(req, r, start, p.fallbackFrom)
	return r, nil
}

// recordScheduled traces r; fallbackFrom is the mode asked for when the
// primary was down and the wheel took the message instead.
func (e *Engine) recordScheduled(req *Request, r Result, start time.Time, fallbackFrom Mode) {
	now := e.clock.Now()
	props := map[string]string{"mode": string(r.Mode), "deliverAt": r.Due.UTC().Format(time.RFC3339Nano)}
	if r.Level != "" {
		props["level"] = r.Level
	}
	if fallbackFrom != "" {
		props["fallbackFrom"] = string(fallbackFrom)
		props["fallbackReason"] = "primary cluster unavailable"
	}
	e.rec.Record(tracer.Event{Type: tracer.Scheduled, UID: req.UID, MessageID: wire.FormatMessageID(r.MessageID),
		Topic: req.Topic, Key: req.Key, Tags: req.Tags, App: req.App, Node: e.cfg.Node, Time: now,
		Latency: now.Sub(start), Properties: props})
}

// forwardWheel is the wheel scheduler's ForwardFunc: publish the due
// message to its topic with its uid, key, tags, properties and event time.
func (e *Engine) forwardWheel(ctx context.Context, m Scheduled) error {
	p := pulsarProperties(m.Properties, m.UID, m.App, m.Tags, 1)
	p[PropDelayDue] = formatDue(m.Due)
	pm := &pulsar.ProducerMessage{Payload: m.Payload, Key: m.Key, EventTime: m.EventTime, Properties: p}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.WheelForwardTimeout)
	defer cancel()
	start := e.clock.Now()
	d, err := publishDue(ctx, e.due, m.Topic, pm)
	if err != nil {
		return err
	}
	now := e.clock.Now()
	observeLateness(e.metrics.wheel, m.Due, now)
	e.rec.Record(tracer.Event{Type: tracer.Fired, UID: m.UID, MessageID: d.MessageID, Topic: m.Topic,
		Key: m.Key, Tags: m.Tags, App: m.App, Node: e.cfg.Node, Time: now, Latency: now.Sub(start), Attempt: m.Claims,
		Properties: firedProps(map[string]string{"mode": string(ModeWheel), "due": formatDue(m.Due), "late": now.Sub(m.Due).String()}, d)})
	return nil
}

// Cancellation is what Cancel did.
type Cancellation struct {
	UID string
	// Mode is the mode of the message that was cancelled: ModeWheel (it
	// was removed from the index and the wheel) or ModeLevel (a cancel mark
	// stops its forwarder, and its record is gone).
	Mode Mode
	// InFlight: the message may be being forwarded right now and may still
	// be delivered once: a wheel message a replica had claimed, or a level
	// message whose due time has come (its forwarder may be past the mark
	// check).
	InFlight bool
	// Message is the cancelled message (for a level message, what its
	// record holds: no payload or properties).
	Message *Scheduled
}

// levelSkew is how far ahead of its due time a level message may already
// be past its forwarder's mark check: clock skew between replicas (NTP
// keeps it to milliseconds).
const levelSkew = time.Second

// Cancel cancels the delayed message with this uid: a wheel message is
// removed from the index and the wheel; a level message gets a cancel mark
// that stops its forwarder, and its record is deleted. Native messages
// cannot be cancelled. ErrNotFound: neither the wheel nor the level
// records hold the uid (delivered, cancelled, native, or never scheduled);
// nothing is written then. ErrModeUnavailable: no Redis.
func (e *Engine) Cancel(ctx context.Context, uid string) (Cancellation, error) {
	if e.index == nil {
		return Cancellation{UID: uid}, fmt.Errorf("%w: cancel needs Redis", ErrModeUnavailable)
	}
	m, err := e.index.Get(ctx, uid)
	switch {
	case err == nil:
		err = e.wheel.Cancel(ctx, uid)
		if err == nil || errors.Is(err, ErrInFlight) {
			m.Mode = ModeWheel
			c := Cancellation{UID: uid, Mode: ModeWheel, InFlight: err != nil, Message: &m}
			e.recordCancelled(uid, m.Topic, m.Key, m.Tags, m.App, ModeWheel, "")
			return c, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return Cancellation{UID: uid}, err
		}
	case !errors.Is(err, ErrNotFound):
		return Cancellation{UID: uid}, err
	}
	if e.cancels == nil {
		return Cancellation{UID: uid}, ErrNotFound
	}
	r, err := e.cancels.getRecord(ctx, uid)
	if err != nil {
		return Cancellation{UID: uid}, err
	}
	now := e.clock.Now()
	if err := e.cancels.cancelRecord(ctx, uid, now); err != nil {
		return Cancellation{UID: uid}, err
	}
	lm := r.scheduled(uid)
	e.recordCancelled(uid, r.Topic, r.Key, r.Tags, r.App, ModeLevel, "requested")
	return Cancellation{UID: uid, Mode: ModeLevel, InFlight: !now.Add(levelSkew).Before(lm.Due), Message: &lm}, nil
}

// CancelByKey cancels every delayed message for topic with key: wheel
// messages are removed (their uids are returned), and with levels a cancel
// mark stops every level message for topic with key accepted up to now
// (those are not listed: see Cancellation).
func (e *Engine) CancelByKey(ctx context.Context, topic, key string) ([]string, error) {
	if e.index == nil {
		return nil, fmt.Errorf("%w: cancel needs Redis", ErrModeUnavailable)
	}
	if topic == "" || key == "" {
		return nil, fmt.Errorf("%w: topic and key are required", ErrInvalid)
	}
	if e.cancels != nil {
		// First the mark: a level message accepted after it is not
		// covered, whatever happens next.
		if err := e.cancels.cancelKey(ctx, topic, key, e.clock.Now()); err != nil {
			return nil, err
		}
	}
	uids, err := e.index.CancelKey(ctx, topic, key)
	if err != nil {
		return nil, err
	}
	for _, uid := range uids {
		e.recordCancelled(uid, topic, key, nil, "", ModeWheel, "")
	}
	return uids, nil
}

func (e *Engine) recordCancelled(uid, topic, key string, tags []string, app string, mode Mode, stage string) {
	props := map[string]string{"mode": string(mode)}
	if stage != "" {
		props["stage"] = stage
	}
	e.rec.Record(tracer.Event{Type: tracer.Cancelled, UID: uid, Topic: topic, Key: key, Tags: tags, App: app,
		Node: e.cfg.Node, Time: e.clock.Now(), Properties: props})
}

// Get returns the delayed message with this uid: a wheel message, or what
// the record of a waiting level message holds (topic, key, tags, app,
// level, due time, payload size; the payload stays in the level topic).
// ErrNotFound otherwise: native messages live in Pulsar and are not
// indexed, and delivered or cancelled ones are gone.
func (e *Engine) Get(ctx context.Context, uid string) (Scheduled, error) {
	if e.index == nil {
		return Scheduled{}, ErrNotFound
	}
	s, err := e.index.Get(ctx, uid)
	if err == nil {
		s.Mode = ModeWheel
		return s, nil
	}
	if !errors.Is(err, ErrNotFound) || e.cancels == nil {
		return s, err
	}
	r, err := e.cancels.getRecord(ctx, uid)
	if err != nil {
		return Scheduled{}, err
	}
	return r.scheduled(uid), nil
}

// List returns wheel messages (see Index.List).
func (e *Engine) List(ctx context.Context, q Query) ([]Scheduled, error) {
	if e.index == nil {
		return nil, nil
	}
	return e.index.List(ctx, q)
}

// Reschedule moves a wheel message to a new due time (see
// Index.Reschedule: ErrNotFound, ErrInFlight). Level and native messages
// cannot be moved; cancel them and schedule again.
func (e *Engine) Reschedule(ctx context.Context, uid string, due time.Time) error {
	return e.RescheduleBy(ctx, uid, due, "")
}

// RescheduleBy is Reschedule naming who asked (the console's operator):
// its scheduled trace event carries rescheduledBy and the previous due
// time (previousDeliverAt).
func (e *Engine) RescheduleBy(ctx context.Context, uid string, due time.Time, by string) error {
	if e.index == nil {
		return ErrNotFound
	}
	m, err := e.index.Get(ctx, uid)
	if errors.Is(err, ErrNotFound) && e.cancels != nil {
		if _, lerr := e.cancels.getRecord(ctx, uid); lerr == nil {
			return ErrLevelFixed
		}
	}
	if err != nil {
		return err
	}
	if err := e.wheel.Reschedule(ctx, uid, due); err != nil {
		return err
	}
	props := map[string]string{"mode": string(ModeWheel),
		"deliverAt": time.Unix(dueSeconds(due), 0).UTC().Format(time.RFC3339Nano), "rescheduled": "true"}
	if by != "" {
		props["rescheduledBy"] = by
		props["previousDeliverAt"] = m.Due.UTC().Format(time.RFC3339Nano)
	}
	e.rec.Record(tracer.Event{Type: tracer.Scheduled, UID: uid, Topic: m.Topic, Key: m.Key, Tags: m.Tags, App: m.App,
		Node: e.cfg.Node, Time: e.clock.Now(), Properties: props})
	return nil
}
