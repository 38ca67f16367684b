package delay

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// ForwardFunc delivers a due message to its topic and returns once the
// broker has acknowledged it. An error leaves the message claimed; it is
// tried again when the claim's lease ends. It may be called concurrently.
type ForwardFunc func(ctx context.Context, m Scheduled) error

// Clock is the time source of a Scheduler's runner.
type Clock interface {
	Now() time.Time
	// After sends on the channel once d has passed.
	After(d time.Duration) <-chan time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// SchedulerConfig configures a Scheduler. The zero value is usable.
type SchedulerConfig struct {
	// Wheel configures the in-memory wheel.
	Wheel WheelConfig
	// Horizon is how far ahead the wheel holds messages; later ones stay in
	// Redis only and are loaded as the horizon moves. Default one hour.
	Horizon time.Duration
	// Sweep is how often the scheduler also asks Redis for due messages that
	// no wheel took: scheduled by another replica inside the horizon, or
	// whose claim expired. Default 5 s; negative turns it off.
	Sweep time.Duration
	// Batch is the number of claims per round trip; default 256.
	Batch int
	// Workers is the number of concurrent forwards; default 16.
	Workers int
	// Clock drives the runner; default the system clock.
	Clock  Clock
	Logger *slog.Logger
}

// Scheduler keeps a Wheel filled from an Index and forwards messages when
// they are due: on expiry it claims them in Redis (so that across replicas
// each is forwarded by one), calls Forward, then acks.
//
// Use Start and Close in production. Tests may instead call Load once and
// then Step with any time they like.
type Scheduler struct {
	index   *Index
	forward ForwardFunc
	wheel   *Wheel
	cfg     SchedulerConfig
	log     *slog.Logger

	mu        sync.Mutex
	loadingTo int64 // Unix seconds: the wheel holds (or is loading) everything due up to here
	nextSweep time.Time
	expired   []Expired

	stepMu sync.Mutex // one Step at a time

	closeOnce sync.Once
	quit      context.CancelFunc
	done      chan struct{}
}

// NewScheduler returns a scheduler over index; it starts nothing.
func NewScheduler(index *Index, forward ForwardFunc, cfg SchedulerConfig) (*Scheduler, error) {
	if cfg.Horizon <= 0 {
		cfg.Horizon = time.Hour
	}
	if cfg.Sweep == 0 {
		cfg.Sweep = 5 * time.Second
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 256
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 16
	}
	if cfg.Clock == nil {
		cfg.Clock = systemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	w, err := NewWheel(cfg.Wheel, cfg.Clock.Now())
	if err != nil {
		return nil, err
	}
	return &Scheduler{index: index, forward: forward, wheel: w, cfg: cfg, log: cfg.Logger}, nil
}

// Wheel is the scheduler's wheel, for metrics and tests.
func (s *Scheduler) Wheel() *Wheel { return s.wheel }

// Load fills the wheel with every message due up to now plus the horizon,
// including overdue ones, which fire on the next Step.
func (s *Scheduler) Load(ctx context.Context) error {
	to := s.cfg.Clock.Now().Add(s.cfg.Horizon)
	s.mu.Lock()
	s.loadingTo = to.Unix()
	s.mu.Unlock()
	n, err := s.index.LoadRange(ctx, time.Unix(0, 0).Add(-time.Nanosecond), to, s.wheel.Add)
	if err != nil {
		return err
	}
	s.log.Info("delay: wheel loaded", "messages", n, "until", to)
	return nil
}

// Start loads the wheel and starts the runner, which steps at every tick.
func (s *Scheduler) Start(ctx context.Context) error {
	if err := s.Load(ctx); err != nil {
		return err
	}
	ctx, s.quit = context.WithCancel(context.WithoutCancel(ctx))
	s.done = make(chan struct{})
	go s.run(ctx)
	return nil
}

// Close stops the runner and waits for forwards in progress. Idempotent.
func (s *Scheduler) Close() error {
	s.closeOnce.Do(func() {
		if s.quit != nil {
			s.quit()
			<-s.done
		}
	})
	return nil
}

func (s *Scheduler) run(ctx context.Context) {
	defer close(s.done)
	tick := time.Duration(s.wheel.tick)
	for {
		now := s.cfg.Clock.Now()
		next := now.Truncate(tick).Add(tick)
		select {
		case <-ctx.Done():
			return
		case <-s.cfg.Clock.After(next.Sub(now)):
		}
		if err := s.Step(ctx, s.cfg.Clock.Now()); err != nil && ctx.Err() == nil {
			s.log.Warn("delay: step", "err", err)
		}
	}
}

// Schedule stores m in the index and, when it is due within the horizon,
// in the wheel.
func (s *Scheduler) Schedule(ctx context.Context, m Message) (uint64, error) {
	seq, err := s.index.Schedule(ctx, m)
	if err != nil {
		return seq, err
	}
	s.addIfLoaded(seq, time.Unix(dueSeconds(m.Due), 0))
	return seq, nil
}

// addIfLoaded puts a timer in the wheel unless a later load will. A timer
// may end up there twice; the claim makes that harmless.
func (s *Scheduler) addIfLoaded(seq uint64, due time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if due.Unix() <= s.loadingTo {
		s.wheel.Add(seq, due)
	}
}

// Cancel removes a scheduled message from the index and the wheel; see
// Index.Cancel for the errors.
func (s *Scheduler) Cancel(ctx context.Context, uid string) error {
	m, err := s.index.Get(ctx, uid)
	if err != nil {
		return err
	}
	err = s.index.Cancel(ctx, uid)
	if err == nil || errors.Is(err, ErrInFlight) {
		s.wheel.Cancel(m.Seq, m.Due)
	}
	return err
}

// Reschedule moves a scheduled message to a new due time.
func (s *Scheduler) Reschedule(ctx context.Context, uid string, due time.Time) error {
	m, err := s.index.Get(ctx, uid)
	if err != nil {
		return err
	}
	if err := s.index.Reschedule(ctx, uid, due); err != nil {
		return err
	}
	s.wheel.Cancel(m.Seq, m.Due)
	s.addIfLoaded(m.Seq, time.Unix(dueSeconds(due), 0))
	return nil
}

// Step does one tick's work at now: it extends the horizon, takes what the
// wheel and (when it is time) the sweep find due, claims it and forwards
// what it won. It returns when those forwards have finished.
func (s *Scheduler) Step(ctx context.Context, now time.Time) error {
	s.stepMu.Lock()
	defer s.stepMu.Unlock()
	var errs []error
	if err := s.extend(ctx, now); err != nil {
		errs = append(errs, err)
	}
	s.expired = s.wheel.Advance(now, s.expired[:0])
	seqs := make([]uint64, 0, len(s.expired))
	for _, e := range s.expired {
		seqs = append(seqs, e.ID)
	}
	if s.cfg.Sweep > 0 && !now.Before(s.nextSweep) {
		s.nextSweep = now.Add(s.cfg.Sweep)
		due, err := s.index.Due(ctx, now, 10*s.cfg.Batch)
		if err != nil {
			errs = append(errs, err)
		}
		seqs = append(seqs, due...)
	}
	if err := s.fire(ctx, seqs); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// extend loads the messages that came within the horizon since the last
// step.
func (s *Scheduler) extend(ctx context.Context, now time.Time) error {
	to := now.Add(s.cfg.Horizon).Unix()
	s.mu.Lock()
	from := s.loadingTo + 1
	if to < from {
		s.mu.Unlock()
		return nil
	}
	s.loadingTo = to // Schedule adds from here on; the load below finds the rest
	s.mu.Unlock()
	_, err := s.index.LoadRange(ctx, time.Unix(from, 0), time.Unix(to, 0), s.wheel.Add)
	return err
}

// fire claims seqs in batches and forwards the claimed messages with up to
// Workers at once.
func (s *Scheduler) fire(ctx context.Context, seqs []uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	var (
		wg   sync.WaitGroup
		sem  = make(chan struct{}, s.cfg.Workers)
		errs []error
	)
	for len(seqs) > 0 {
		batch := seqs[:min(len(seqs), s.cfg.Batch)]
		seqs = seqs[len(batch):]
		claims, err := s.index.Claim(ctx, batch)
		if err != nil {
			// Not claimed: the sweep or the next load finds them again.
			errs = append(errs, err)
			continue
		}
		for _, c := range claims {
			switch c.Status {
			case NotDue:
				s.addIfLoaded(c.Seq, c.Due)
			case Claimed:
				sem <- struct{}{}
				wg.Go(func() {
					defer func() { <-sem }()
					s.forwardOne(ctx, c.Message)
				})
			}
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (s *Scheduler) forwardOne(ctx context.Context, m Scheduled) {
	if err := s.forward(ctx, m); err != nil {
		s.log.Warn("delay: forward failed; retried when the lease ends",
			"uid", m.UID, "topic", m.Topic, "claims", m.Claims, "lease_until", m.LeaseUntil, "err", err)
		s.addIfLoaded(m.Seq, m.LeaseUntil)
		return
	}
	if err := s.index.ackSeq(ctx, m.indexID(), m.Seq); err != nil && !errors.Is(err, ErrNotFound) {
		// The message was delivered; if the ack is lost it is delivered
		// again after the lease, and consumers drop the duplicate by uid.
		s.log.Warn("delay: ack after forward", "uid", m.UID, "err", err)
	}
}
