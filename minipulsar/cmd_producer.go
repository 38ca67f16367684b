package minipulsar

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/pulsar-sidecar/pulsar-sidecar/minipulsar/internal/wirepb"
)

// producer is a producer registered on a connection.
type producer struct {
	c     *conn
	id    uint64
	name  string
	t     *topic
	mode  pb.ProducerAccessMode
	epoch uint64 // the client's reconnect count for this producer
	since time.Time

	msgIn, bytesIn uint64 // guarded by t.mu
}

func (c *conn) handleProducer(m *pb.CommandProducer) {
	reqID := m.GetRequestId()
	name, err := parseTopic(m.GetTopic())
	if err != nil {
		c.sendError(reqID, pb.ServerError_InvalidTopicName, err.Error())
		return
	}
	c.mu.Lock()
	if p, ok := c.producers[m.GetProducerId()]; ok {
		c.mu.Unlock()
		if p.t.full == name.String() {
			// A retried registration of a producer that already exists.
			c.sendProducerSuccess(reqID, p, false)
			return
		}
		c.sendError(reqID, pb.ServerError_ProducerBusy, "producer id already in use on this connection")
		return
	}
	c.mu.Unlock()
	t, err := c.s.getTopic(name, !c.s.opts.DisableAutoTopicCreation)
	if err != nil {
		code := pb.ServerError_TopicNotFound
		if errors.Is(err, ErrNotPartitioned) {
			code = pb.ServerError_NotAllowedError
		}
		c.sendError(reqID, code, err.Error())
		return
	}
	p := &producer{c: c, id: m.GetProducerId(), t: t, mode: m.GetProducerAccessMode(), epoch: m.GetEpoch(), since: time.Now()}
	if m.GetUserProvidedProducerName() && m.GetProducerName() != "" {
		p.name = m.GetProducerName()
	} else if m.GetProducerName() != "" {
		p.name = m.GetProducerName() // a reconnecting producer keeps its broker-given name
	} else {
		p.name = "minipulsar-" + strconv.FormatUint(c.s.producerSeq.Add(1), 10)
	}
	fenced, code, msg := t.addProducer(p)
	if code != nil {
		c.sendError(reqID, *code, msg)
		return
	}
	for _, old := range fenced {
		old.closeByBroker()
	}
	if sub := m.GetInitialSubscriptionName(); sub != "" {
		// A dead-letter producer asks for the subscription that will read
		// the topic, so nothing sent before a consumer arrives is missed.
		t.ensureSubscription(sub)
	}
	c.mu.Lock()
	c.producers[p.id] = p
	c.mu.Unlock()
	c.sendProducerSuccess(reqID, p, m.GetSchema() != nil)
}

// sendProducerSuccess answers a PRODUCER; a schema version goes back only
// to a producer that sent a schema (a version given to one that did not
// makes the client panic).
func (c *conn) sendProducerSuccess(reqID uint64, p *producer, withSchema bool) {
	resp := &pb.CommandProducerSuccess{
		RequestId:      proto.Uint64(reqID),
		ProducerName:   proto.String(p.name),
		LastSequenceId: proto.Int64(p.t.lastSequence(p.name)),
		ProducerReady:  proto.Bool(true),
	}
	if withSchema {
		resp.SchemaVersion = schemaVersionZero
	}
	c.send(&pb.BaseCommand{Type: pb.BaseCommand_PRODUCER_SUCCESS.Enum(), ProducerSuccess: resp}, nil)
}

// addProducer applies access modes and name uniqueness. It returns the
// producers fenced out by an ExclusiveWithFencing producer.
func (t *topic) addProducer(p *producer) ([]*producer, *pb.ServerError, string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.deleted {
		return nil, pb.ServerError_TopicNotFound.Enum(), errTopicNotFound
	}
	if p.mode == pb.ProducerAccessMode_WaitForExclusive {
		return nil, pb.ServerError_NotAllowedError.Enum(), errWaitExclusive
	}
	var fenced []*producer
	if p.mode == pb.ProducerAccessMode_ExclusiveWithFencing {
		for q := range t.producers {
			fenced = append(fenced, q)
			t.detachProducerLocked(q)
		}
	}
	if old, dup := t.names[p.name]; dup {
		if p.epoch <= old.epoch {
			return nil, pb.ServerError_ProducerBusy.Enum(), errProducerBusy + ": " + p.name
		}
		// As Pulsar does, a reconnecting producer (same name, higher epoch)
		// succeeds its old registration, whose connection may not have been
		// noticed dead yet.
		fenced = append(fenced, old)
		t.detachProducerLocked(old)
	}
	if t.exclusive != nil {
		return nil, pb.ServerError_ProducerFenced.Enum(), errProducerFenced + ": " + t.exclusive.name
	}
	if p.mode != pb.ProducerAccessMode_Shared && len(t.producers) > 0 {
		return nil, pb.ServerError_ProducerFenced.Enum(), fmt.Sprintf("topic %s has %d producers: exclusive access refused", t.full, len(t.producers))
	}
	t.producers[p] = struct{}{}
	t.names[p.name] = p
	if p.mode != pb.ProducerAccessMode_Shared {
		t.exclusive = p
	}
	return fenced, nil, ""
}

func (t *topic) detachProducerLocked(p *producer) {
	if _, ok := t.producers[p]; !ok {
		return
	}
	delete(t.producers, p)
	if t.names[p.name] == p {
		delete(t.names, p.name)
	}
	if t.exclusive == p {
		t.exclusive = nil
	}
}

func (t *topic) removeProducer(p *producer) {
	t.mu.Lock()
	t.detachProducerLocked(p)
	t.mu.Unlock()
}

// closeByBroker tells the client its producer is closed; the client looks
// the topic up again and re-registers.
func (p *producer) closeByBroker() {
	p.t.removeProducer(p)
	p.c.mu.Lock()
	if p.c.producers[p.id] == p {
		delete(p.c.producers, p.id)
	}
	p.c.mu.Unlock()
	p.c.send(&pb.BaseCommand{Type: pb.BaseCommand_CLOSE_PRODUCER.Enum(), CloseProducer: &pb.CommandCloseProducer{
		ProducerId: proto.Uint64(p.id),
		RequestId:  proto.Uint64(0),
	}}, nil)
}

func (t *topic) lastSequence(name string) int64 {
	if !t.s.dedupEnabled(t.name) {
		return -1
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if v, ok := t.lastSeq[name]; ok {
		return v
	}
	return -1
}

func (c *conn) handleCloseProducer(m *pb.CommandCloseProducer) {
	c.mu.Lock()
	p, ok := c.producers[m.GetProducerId()]
	delete(c.producers, m.GetProducerId())
	c.mu.Unlock()
	if ok {
		p.t.removeProducer(p)
	}
	c.sendSuccess(m.GetRequestId())
}

func (c *conn) handleSend(m *pb.CommandSend, f frame) error {
	c.mu.Lock()
	p, ok := c.producers[m.GetProducerId()]
	c.mu.Unlock()
	if !ok {
		// As Pulsar does: a SEND can cross a broker-initiated CLOSE_PRODUCER
		// on the wire; closing the connection makes the client reconnect and
		// re-send, where a SEND_ERROR would unregister its new producer.
		return fmt.Errorf("%s: producer id %d", errProducerNotFound, m.GetProducerId())
	}
	if f.metadata == nil {
		return errors.New("SEND without a message payload")
	}
	if n := m.GetNumMessages(); n > 0 && n != max(f.metadata.GetNumMessagesInBatch(), 1) {
		return fmt.Errorf("%s: SEND says %d, metadata %d", errTooManyMessages, n, f.metadata.GetNumMessagesInBatch())
	}
	switch act, d := c.s.faults.nextSend(); act {
	case faultFail:
		// A failed write to storage: the client closes the connection,
		// reconnects and re-sends, so the application sees a delay, or a
		// send timeout when failures outlast its SendTimeout.
		c.sendSendError(m, pb.ServerError_PersistenceError, errInjected)
		return nil
	case faultDelay:
		time.Sleep(d)
	}
	seq, highest := m.GetSequenceId(), m.GetHighestSequenceId()
	if highest < seq {
		highest = seq
	}
	pid := m.GetProducerId()
	p.t.publish(p, seq, highest, f, func(id uint64, dup bool, err error) {
		if err != nil {
			// The client closes the connection on this and re-sends.
			c.sendSendError(m, pb.ServerError_PersistenceError, err.Error())
			return
		}
		mid := &pb.MessageIdData{LedgerId: proto.Uint64(p.t.ledger), EntryId: proto.Uint64(id)}
		if dup {
			mid = &pb.MessageIdData{LedgerId: proto.Uint64(^uint64(0)), EntryId: proto.Uint64(^uint64(0))}
		}
		c.send(&pb.BaseCommand{Type: pb.BaseCommand_SEND_RECEIPT.Enum(), SendReceipt: &pb.CommandSendReceipt{
			ProducerId:        proto.Uint64(pid),
			SequenceId:        proto.Uint64(seq),
			MessageId:         mid,
			HighestSequenceId: proto.Uint64(highest),
		}}, nil)
	})
	return nil
}

func (c *conn) sendSendError(m *pb.CommandSend, code pb.ServerError, msg string) {
	c.send(&pb.BaseCommand{Type: pb.BaseCommand_SEND_ERROR.Enum(), SendError: &pb.CommandSendError{
		ProducerId: proto.Uint64(m.GetProducerId()),
		SequenceId: proto.Uint64(m.GetSequenceId()),
		Error:      code.Enum(),
		Message:    proto.String(msg),
	}}, nil)
}

// publish stores an entry and calls done (in publish order) once it is
// durable. dup reports a duplicate dropped by deduplication.
func (t *topic) publish(p *producer, seq, highest uint64, f frame, done func(id uint64, dup bool, err error)) {
	dedup := t.s.dedupEnabled(t.name)
	// appendMu keeps entry ids and the store's append order the same, so
	// receipts and visibility follow id order whatever the store.
	t.appendMu.Lock()
	defer t.appendMu.Unlock()
	t.mu.Lock()
	if dedup {
		if last, ok := t.lastSeq[p.name]; ok && int64(highest) <= last {
			t.mu.Unlock()
			done(0, true, nil)
			return
		}
	}
	if last, ok := t.lastSeq[p.name]; !ok || int64(highest) > last {
		t.lastSeq[p.name] = int64(highest)
	}
	id := t.next
	t.next++
	e := t.addEntry(f.payload, f.metadata)
	t.msgIn += uint64(e.numMsgs)
	t.bytesIn += uint64(len(f.payload))
	p.msgIn += uint64(e.numMsgs)
	p.bytesIn += uint64(len(f.payload))
	lastSeq := t.lastSeq[p.name]
	t.mu.Unlock()

	t.s.store.appendEntry(t.full, id, f.payload, p.name, lastSeq, func(err error) {
		// As Pulsar does, the receipt is written before the entry can be
		// dispatched: done queues it on the producer's connection before
		// the entry becomes visible to the dispatchers, so a consumer on
		// the same connection never sees a message before its receipt.
		if err == nil {
			done(id, false, nil)
		}
		t.mu.Lock()
		if err != nil {
			if e := t.entryAt(id); e != nil {
				*e = entry{} // never dispatched; the client re-sends
				delete(t.delays, id)
			}
			// The re-send must not be taken for a duplicate.
			if v, ok := t.persisted[p.name]; ok {
				t.lastSeq[p.name] = v
			} else {
				delete(t.lastSeq, p.name)
			}
		} else if v, ok := t.persisted[p.name]; !ok || int64(highest) > v {
			t.persisted[p.name] = int64(highest)
		}
		if id+1 > t.visible {
			t.visible = id + 1
		}
		t.notifyAll()
		t.mu.Unlock()
		if err != nil {
			done(id, false, err)
		}
	})
}
