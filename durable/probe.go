package durable

import (
	"context"
	"time"

	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
)

// probeLoop probes c whenever its breaker wants it, until Close.
func (s *Sender) probeLoop(c *cluster) {
	t := time.NewTicker(s.opts.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-s.bg.Done():
			return
		case <-t.C:
		}
		if !c.br.wantProbe(time.Now(), s.opts.IdleProbeInterval) {
			continue
		}
		ctx, cancel := context.WithTimeout(s.bg, s.opts.ProbeTimeout)
		err := c.probe(ctx)
		cancel()
		if s.bg.Err() != nil {
			return
		}
		// A refusal for good (say, no permission on the health topic) is
		// an answer: the cluster is up. It must not keep a breaker open
		// forever; it is logged so the health topic gets fixed.
		ok := err == nil || !Retriable(err)
		if err != nil && ok && !c.probeRefused.Swap(true) {
			s.log.Warn("health probe refused: counting the cluster as up; check Options.HealthTopic and its permissions",
				"cluster", c.name, "topic", s.opts.HealthTopic, "err", err)
		}
		c.br.probe(ok, time.Now())
		s.met.probe(c.name, ok)
		if !ok {
			s.log.Debug("probe failed", "cluster", c.name, "err", err)
		}
	}
}

// SendProbe returns a probe that sends one tiny message to topic through
// sender and waits for the broker's acknowledgement: it proves the whole
// write path (lookup, producer, storage) of the cluster behind sender,
// through the same client and pool as real traffic. The message carries
// the usual psc-* properties with app "psc-health".
func SendProbe(sender produce.Sender, topic string) Probe {
	return func(ctx context.Context) error {
		m := &produce.Message{UID: produce.NewUID(), App: "psc-health", Topic: topic,
			Payload: []byte("psc health probe"), AcceptedAt: time.Now()}
		ch := make(chan error, 1)
		sender.SendAsync(ctx, m, func(_ produce.Receipt, err error) { ch <- err })
		select {
		case err := <-ch:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
