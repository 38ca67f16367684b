package delay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/wire"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// forwarder moves the messages of one level topic to their real topics
// when they are due.
//
// It consumes the level topic on a Failover subscription: every replica
// attaches, the broker makes one consumer active and gives the messages to
// it alone; when it goes away the next one takes over from the
// subscription's cursor. The loop takes the head message, waits on a timer
// until it is due (never before), checks the cancellation marks, and hands
// it to the publisher; the level message is acknowledged only when the
// broker has acknowledged the forwarded one. A small receiver queue and at
// most MaxInFlight unacknowledged forwards bound its memory whatever the
// backlog.
//
// Delivery is at least once: a forward whose level-message ack is lost (a
// crash within the client's ack grouping window, a Failover switch while a
// forward is in flight) is forwarded again, with the same uid; consumers
// drop the duplicate by uid.
type forwarder struct {
	lv      Level
	topic   string
	cfg     *LevelsConfig
	client  pulsar.Client
	pub     DuePublisher
	cancels *cancels // nil: no cancellation
	rec     tracer.Recorder
	clock   Clock
	log     *slog.Logger
	node    string
	// lateness observes due time to forward acknowledgement (metrics.go).
	lateness prometheus.Observer

	consumer pulsar.Consumer
	sem      chan struct{}  // one token per unacknowledged forward
	inflight sync.WaitGroup // forwards handed over and not finished
	quit     context.CancelFunc
	done     chan struct{}

	forwarded, cancelled, corrupt, retries atomic.Uint64
	waiting                                atomic.Int64 // Unix ms due time of the message being waited on; 0 none
}

// LevelStats describes one level's forwarder.
type LevelStats struct {
	Level string
	Topic string
	// Forwarded, Cancelled and Corrupt count level messages acknowledged
	// since start: forwarded to their topic, dropped because cancelled,
	// dropped because unreadable. Retries counts failed forward attempts.
	Forwarded, Cancelled, Corrupt, Retries uint64
	// Waiting is the due time of the message the forwarder waits for; zero
	// when it waits for a message to arrive (or stands by under Failover).
	Waiting time.Time
}

func (f *forwarder) stats() LevelStats {
	s := LevelStats{
		Level: f.lv.Name, Topic: f.topic,
		Forwarded: f.forwarded.Load(), Cancelled: f.cancelled.Load(), Corrupt: f.corrupt.Load(), Retries: f.retries.Load(),
	}
	if ms := f.waiting.Load(); ms != 0 {
		s.Waiting = time.UnixMilli(ms)
	}
	return s
}

// start subscribes and runs the loop until close.
func (f *forwarder) start(ctx context.Context) error {
	c, err := f.client.Subscribe(pulsar.ConsumerOptions{
		Topic:                       f.topic,
		SubscriptionName:            f.cfg.Subscription,
		Type:                        pulsar.Failover,
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
		ReceiverQueueSize:           f.cfg.ReceiverQueueSize,
		// The node name: the broker's stats then say which replica
		// forwards a level, and the Failover election (priority, then
		// consumer name) is stable: the lowest node name is active, and a
		// replica joining with a higher name takes nothing over. A
		// switch with a message held is what forwards it twice.
		Name: f.node,
	})
	if err != nil {
		return fmt.Errorf("delay: subscribe to level %s (%s): %w", f.lv.Name, f.topic, err)
	}
	f.consumer = c
	f.sem = make(chan struct{}, f.cfg.MaxInFlight)
	f.done = make(chan struct{})
	ctx, f.quit = context.WithCancel(context.WithoutCancel(ctx))
	go f.run(ctx)
	return nil
}

// close stops taking messages, waits for forwards in flight (each bounded
// by the publisher's send timeout; failed ones are not retried any more and
// stay unacknowledged for the next forwarder), then closes the consumer,
// which flushes pending acks.
func (f *forwarder) close() {
	if f.quit == nil {
		return
	}
	f.quit()
	<-f.done
	f.inflight.Wait()
	f.consumer.Close()
}

func (f *forwarder) run(ctx context.Context) {
	defer close(f.done)
	var backoff time.Duration
	for {
		msg, err := f.consumer.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			backoff = nextBackoff(backoff)
			f.log.Warn("delay: level receive failed", "level", f.lv.Name, "err", err, "retry_in", backoff)
			if !sleep(ctx, backoff) {
				return
			}
			continue
		}
		backoff = 0
		h, err := decodeHeld(msg, f.lv)
		if err != nil {
			// Nowhere to deliver it; keeping it would block the level.
			f.log.Error("delay: dropping unreadable level message", "level", f.lv.Name,
				"message_id", wire.FormatMessageID(msg.ID()), "uid", h.uid, "err", err)
			f.corrupt.Add(1)
			f.ack(msg)
			continue
		}
		f.waiting.Store(h.due.UnixMilli())
		ok := f.waitUntil(ctx, h.due)
		f.waiting.Store(0)
		if !ok {
			return
		}
		select {
		case f.sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		f.inflight.Add(1)
		f.forward(ctx, h)
	}
}

// waitUntil blocks until the clock reaches due; false when ctx ended first.
func (f *forwarder) waitUntil(ctx context.Context, due time.Time) bool {
	for {
		now := f.clock.Now()
		if !now.Before(due) {
			return true
		}
		select {
		case <-f.clock.After(due.Sub(now)):
		case <-ctx.Done():
			return false
		}
	}
}

// forward checks the cancellation marks and hands h to the publisher; the
// rest happens when the broker answers. It holds one inflight count and
// one semaphore token, which finish gives back.
func (f *forwarder) forward(ctx context.Context, h held) {
	if f.cancels != nil {
		cancelled, ok := f.checkCancelled(ctx, h)
		if !ok {
			f.finish()
			return
		}
		if cancelled {
			f.ack(h.msg)
			f.cancelled.Add(1)
			f.forget(ctx, h.uid)
			f.rec.Record(tracer.Event{Type: tracer.Cancelled, UID: h.uid, Topic: h.target, Key: h.msg.Key(), Tags: h.tags,
				App: h.app, Node: f.node, Time: f.clock.Now(),
				Properties: map[string]string{"mode": string(ModeLevel), "level": f.lv.Name, "stage": "dropped"}})
			f.finish()
			return
		}
	}
	pm := h.forwardMessage()
	start := f.clock.Now()
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.cfg.ForwardTimeout)
	f.pub.PublishDue(hctx, h.target, pm, func(d Delivery, err error) {
		cancel()
		if err != nil {
			go f.retry(ctx, h, pm, start, err)
			return
		}
		f.forwardedOK(ctx, h, d, start)
	})
}

// checkCancelled asks Redis until it answers; ok is false when ctx ended
// first. A message is never forwarded without the answer.
func (f *forwarder) checkCancelled(ctx context.Context, h held) (cancelled, ok bool) {
	var backoff time.Duration
	for {
		c, err := f.cancels.cancelled(ctx, h.uid, h.target, h.msg.Key(), h.accepted)
		if err == nil {
			return c, true
		}
		if ctx.Err() != nil {
			return false, false
		}
		backoff = nextBackoff(backoff)
		f.log.Warn("delay: cannot read cancel marks; level waits", "level", f.lv.Name, "uid", h.uid, "err", err, "retry_in", backoff)
		if !sleep(ctx, backoff) {
			return false, false
		}
	}
}

// retry publishes h again until the broker takes it or the forwarder
// closes (then the message stays unacknowledged and comes back).
func (f *forwarder) retry(ctx context.Context, h held, pm *pulsar.ProducerMessage, start time.Time, err error) {
	var backoff time.Duration
	for {
		f.retries.Add(1)
		backoff = nextBackoff(backoff)
		f.log.Warn("delay: forward failed; retrying", "level", f.lv.Name, "uid", h.uid, "topic", h.target, "err", err, "retry_in", backoff)
		if !sleep(ctx, backoff) {
			f.finish()
			return
		}
		sctx, cancel := context.WithTimeout(ctx, f.cfg.ForwardTimeout)
		var d Delivery
		d, err = publishDue(sctx, f.pub, h.target, pm)
		cancel()
		if err == nil {
			f.forwardedOK(ctx, h, d, start)
			return
		}
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			f.finish()
			return
		}
	}
}

func (f *forwarder) forwardedOK(ctx context.Context, h held, d Delivery, start time.Time) {
	f.ack(h.msg)
	f.forwarded.Add(1)
	now := f.clock.Now()
	observeLateness(f.lateness, h.due, now)
	f.rec.Record(tracer.Event{Type: tracer.Fired, UID: h.uid, MessageID: d.MessageID, Topic: h.target,
		Key: h.msg.Key(), Tags: h.tags, App: h.app, Node: f.node, Time: now, Latency: now.Sub(start),
		Properties: firedProps(map[string]string{"mode": string(ModeLevel), "level": f.lv.Name, "due": formatDue(h.due),
			"late": now.Sub(h.due).String()}, d)})
	f.forget(ctx, h.uid)
	f.finish()
}

// forget deletes the level record of a message forwarded or dropped, off
// the caller's goroutine (it may be the publisher's callback); close waits
// for it. A failure only leaves the record to expire.
func (f *forwarder) forget(ctx context.Context, uid string) {
	if f.cancels == nil {
		return
	}
	f.inflight.Go(func() {
		if err := f.cancels.forgetRecord(context.WithoutCancel(ctx), uid); err != nil {
			f.log.Debug("delay: level record not deleted; it expires", "level", f.lv.Name, "uid", uid, "err", err)
		}
	})
}

func (f *forwarder) ack(msg pulsar.Message) {
	if err := f.consumer.AckID(msg.ID()); err != nil {
		// Not acknowledged: it comes back and is forwarded again (same uid).
		f.log.Warn("delay: level ack failed", "level", f.lv.Name, "message_id", wire.FormatMessageID(msg.ID()), "err", err)
	}
}

func (f *forwarder) finish() {
	<-f.sem
	f.inflight.Done()
}

// nextBackoff doubles from 100 ms up to 5 s. Retries wait in real time:
// they pace calls to a failing dependency, they decide nothing.
func nextBackoff(d time.Duration) time.Duration {
	switch {
	case d <= 0:
		return 100 * time.Millisecond
	case d >= 5*time.Second/2:
		return 5 * time.Second
	}
	return 2 * d
}

// sleep waits d of real time; false when ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
