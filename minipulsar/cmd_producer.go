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
	c        *conn
	id       uint64
	name     string
	t        *topic
	mode     pb.ProducerAccessMode
	epoch    uint64 // the client's reconnect count for this producer
	since    time.Time
	reqID    uint64            // the PRODUCER request, answered again when a waiting producer gets the topic
	metadata map[string]string // the producer's metadata properties, shown in stats
	schema   []byte            // schema version given to the producer; nil without a schema

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
			c.sendProducerSuccess(reqID, p, true)
			return
		}
		c.sendError(reqID, pb.ServerError_ProducerBusy, "producer id already in use on this connection")
		return
	}
	c.mu.Unlock()
	if err := c.s.checkNamespace(name); err != nil {
		c.sendError(reqID, pb.ServerError_TopicNotFound, err.Error())
		return
	}
	t, err := c.s.getTopic(name, !c.s.opts.DisableAutoTopicCreation)
	if err != nil {
		code := pb.ServerError_TopicNotFound
		if errors.Is(err, ErrNotPartitioned) {
			code = pb.ServerError_NotAllowedError
		}
		c.sendError(reqID, code, err.Error())
		return
	}
	p := &producer{c: c, id: m.GetProducerId(), t: t, mode: m.GetProducerAccessMode(), epoch: m.GetEpoch(),
		since: time.Now(), reqID: reqID, metadata: keyValues(m.GetMetadata())}
	if m.GetUserProvidedProducerName() && m.GetProducerName() != "" {
		p.name = m.GetProducerName()
	} else if m.GetProducerName() != "" {
		p.name = m.GetProducerName() // a reconnecting producer keeps its broker-given name
	} else {
		p.name = "minipulsar-" + strconv.FormatUint(c.s.producerSeq.Add(1), 10)
	}
	if sch := m.GetSchema(); sch != nil {
		v, err := c.s.schemas.add(t.name, fromProto(sch, c.s.clock.Now()))
		if err != nil {
			c.sendError(reqID, pb.ServerError_IncompatibleSchema, err.Error())
			return
		}
		p.schema = v
	}
	if t.isTerminated() {
		c.sendError(reqID, pb.ServerError_TopicTerminatedError, errTopicTerminated)
		return
	}
	// Registered on the connection first, so a CLOSE_PRODUCER or a lost
	// connection also withdraws a producer waiting for exclusive access.
	c.mu.Lock()
	c.producers[p.id] = p
	c.mu.Unlock()
	res := t.addProducer(p)
	if res.code != nil {
		c.forgetProducer(p)
		c.sendError(reqID, *res.code, res.msg)
		return
	}
	for _, old := range res.fenced {
		old.closeByBroker()
	}
	for _, w := range res.failedWaiters {
		w.c.forgetProducer(w)
		w.c.sendError(w.reqID, pb.ServerError_ProducerFenced, errFencedOut)
	}
	if res.waiting {
		// As Pulsar does: an immediate PRODUCER_SUCCESS with
		// producer_ready=false, then the ready one when the topic is ours.
		c.sendProducerSuccess(reqID, p, false)
		return
	}
	if sub := m.GetInitialSubscriptionName(); sub != "" {
		// A dead-letter producer asks for the subscription that will read
		// the topic, so nothing sent before a consumer arrives is missed.
		t.ensureSubscription(sub)
	}
	c.sendProducerSuccess(reqID, p, true)
}

// forgetProducer unregisters p from its connection.
func (c *conn) forgetProducer(p *producer) {
	c.mu.Lock()
	if c.producers[p.id] == p {
		delete(c.producers, p.id)
	}
	c.mu.Unlock()
}

func keyValues(kvs []*pb.KeyValue) map[string]string {
	if len(kvs) == 0 {
		return nil
	}
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[kv.GetKey()] = kv.GetValue()
	}
	return m
}

// sendProducerSuccess answers a PRODUCER; a schema version goes back only
// to a producer that sent a schema (a version given to one that did not
// makes the client panic).
func (c *conn) sendProducerSuccess(reqID uint64, p *producer, ready bool) {
	resp := &pb.CommandProducerSuccess{
		RequestId:      proto.Uint64(reqID),
		ProducerName:   proto.String(p.name),
		LastSequenceId: proto.Int64(p.t.lastSequence(p.name)),
		ProducerReady:  proto.Bool(ready),
	}
	if p.schema != nil {
		resp.SchemaVersion = p.schema
	}
	c.send(&pb.BaseCommand{Type: pb.BaseCommand_PRODUCER_SUCCESS.Enum(), ProducerSuccess: resp}, nil)
}

// addResult is what registering a producer did.
type addResult struct {
	fenced        []*producer // closed by an ExclusiveWithFencing producer
	failedWaiters []*producer // WaitForExclusive producers failed by one
	waiting       bool        // p waits for exclusive access
	code          *pb.ServerError
	msg           string
}

// addProducer applies Pulsar's access modes (AbstractTopic's
// incrementTopicEpochIfNeeded), then name uniqueness:
//   - Shared is refused with ProducerBusy while an exclusive producer holds
//     the topic or one waits for it;
//   - Exclusive is refused with ProducerFenced while another exclusive
//     producer holds or waits for the topic, or any shared producer is on it;
//   - ExclusiveWithFencing closes every producer on the topic and fails
//     every waiting one, then takes the topic;
//   - WaitForExclusive waits in line while any producer is on the topic and
//     gets it when the exclusive producer leaves.
func (t *topic) addProducer(p *producer) addResult {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.deleted {
		return addResult{code: pb.ServerError_TopicNotFound.Enum(), msg: errTopicNotFound}
	}
	// A reconnecting producer (same name, higher epoch) succeeds its old
	// registration, whose connection may not have been noticed dead yet:
	// as in Pulsar, it takes the old one's place rather than being refused.
	var res addResult
	if old, dup := t.names[p.name]; dup && p.epoch > old.epoch {
		res.fenced = append(res.fenced, old)
		t.detachProducerLocked(old)
	}
	switch p.mode {
	case pb.ProducerAccessMode_Shared:
		if t.exclusive != nil || len(t.waiting) > 0 {
			return addResult{code: pb.ServerError_ProducerBusy.Enum(), msg: errExclusiveHeld + t.exclusiveName()}
		}
	case pb.ProducerAccessMode_Exclusive:
		if t.exclusive != nil || len(t.waiting) > 0 {
			return addResult{code: pb.ServerError_ProducerFenced.Enum(), msg: errExclusiveHeld + t.exclusiveName()}
		}
		if len(t.producers) > 0 {
			return addResult{code: pb.ServerError_ProducerFenced.Enum(), msg: errSharedHeld}
		}
	case pb.ProducerAccessMode_ExclusiveWithFencing:
		res.failedWaiters = append(res.failedWaiters, t.waiting...)
		t.waiting = nil
		for q := range t.producers {
			res.fenced = append(res.fenced, q)
			t.detachProducerLocked(q)
		}
	case pb.ProducerAccessMode_WaitForExclusive:
		if t.exclusive != nil || len(t.producers) > 0 {
			t.waiting = append(t.waiting, p)
			res.waiting = true
			return res
		}
	default:
		return addResult{code: pb.ServerError_NotAllowedError.Enum(), msg: fmt.Sprintf("invalid producer access mode %d", p.mode)}
	}
	if old, dup := t.names[p.name]; dup && old != p {
		return addResult{code: pb.ServerError_ProducerBusy.Enum(), msg: errProducerBusy + ": " + p.name}
	}
	t.attachLocked(p)
	return res
}

func (t *topic) attachLocked(p *producer) {
	t.producers[p] = struct{}{}
	t.names[p.name] = p
	if p.mode != pb.ProducerAccessMode_Shared {
		t.exclusive = p
	}
}

func (t *topic) exclusiveName() string {
	if t.exclusive != nil {
		return t.exclusive.name
	}
	if len(t.waiting) > 0 {
		return t.waiting[0].name
	}
	return ""
}

// detachProducerLocked removes p from the topic or from the line of
// waiting producers.
func (t *topic) detachProducerLocked(p *producer) {
	for i, w := range t.waiting {
		if w == p {
			t.waiting = append(t.waiting[:i], t.waiting[i+1:]...)
			return
		}
	}
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

// promoteLocked gives the topic to the first waiting producer once no
// producer holds it; the caller tells that producer's client.
func (t *topic) promoteLocked() *producer {
	// Pulsar promotes a waiting producer when the exclusive one leaves;
	// minipulsar also does when the last shared producer leaves (Pulsar
	// leaves the waiter queued then until another producer comes and goes).
	if t.exclusive == nil && len(t.producers) == 0 && len(t.waiting) > 0 && !t.deleted {
		next := t.waiting[0]
		t.waiting = t.waiting[1:]
		if old, dup := t.names[next.name]; dup && old != next {
			return nil
		}
		t.attachLocked(next)
		return next
	}
	return nil
}

func (t *topic) removeProducer(p *producer) {
	t.mu.Lock()
	t.detachProducerLocked(p)
	promoted := t.promoteLocked()
	t.mu.Unlock()
	if promoted != nil {
		promoted.c.sendProducerSuccess(promoted.reqID, promoted, true)
	}
}

// closeByBroker tells the client its producer is closed; the client looks
// the topic up again and re-registers.
func (p *producer) closeByBroker() {
	p.t.removeProducer(p)
	p.c.forgetProducer(p)
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
	if p.t.isTerminated() {
		// One of the two SEND_ERRORs the client survives.
		c.sendSendError(m, pb.ServerError_TopicTerminatedError, errTopicTerminated)
		return nil
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
		t.mu.Lock()
		if err != nil {
			if e := t.entryAt(id); e != nil {
				t.uncache(e)
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
		// Durable: readable by lookups of the last message id and the admin
		// API, as Pulsar's last confirmed entry moves before the receipt.
		if id+1 > t.visible {
			t.visible = id + 1
		}
		t.mu.Unlock()
		// As Pulsar does, the receipt is written before the entry is
		// dispatched: done queues it on the producer's connection before
		// the dispatchers may take the entry, so a consumer on the same
		// connection never sees a message before its receipt.
		done(id, false, err)
		t.mu.Lock()
		if id+1 > t.dispatchable {
			t.dispatchable = id + 1
		}
		t.evictLocked()
		t.notifyAll()
		t.mu.Unlock()
	})
}
