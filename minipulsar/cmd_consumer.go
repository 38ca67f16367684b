package minipulsar

import (
	"errors"
	"math"
	"sort"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/pulsar-sidecar/pulsar-sidecar/minipulsar/internal/wirepb"
)

// consumer is a consumer registered on a connection. Its counters are
// guarded by the topic's mutex.
type consumer struct {
	c         *conn
	id        uint64
	name      string
	sub       *subscription
	priority  int32
	ranges    []*pb.IntRange
	nameIndex int // the consumer's name index on its subscription's hash ring
	// endNotified is set once REACHED_END_OF_TOPIC was sent.
	endNotified bool
	since       time.Time
	metadata    map[string]string // the consumer's metadata properties, shown in stats

	permits int64
	unacked int
	msgOut  uint64
	// flowed is set by the first FLOW: the client has registered the
	// consumer by then, so ACTIVE_CONSUMER_CHANGE notices wait for it
	// (sent earlier, the client logs "consumer not found" and drops them).
	flowed bool
}

// Marker ids the client uses for "earliest" and "latest" start positions.
const (
	earliestLedger = math.MaxUint64
	latestLedger   = math.MaxInt64
)

func (c *conn) handleSubscribe(m *pb.CommandSubscribe) {
	reqID := m.GetRequestId()
	name, err := parseTopic(m.GetTopic())
	if err != nil {
		c.sendError(reqID, pb.ServerError_InvalidTopicName, err.Error())
		return
	}
	c.mu.Lock()
	if old, ok := c.consumers[m.GetConsumerId()]; ok {
		c.mu.Unlock()
		if old.sub.t.full == name.String() && old.sub.name == m.GetSubscription() {
			c.sendSuccess(reqID)
			return
		}
		c.sendError(reqID, pb.ServerError_ConsumerBusy, "consumer id already in use on this connection")
		return
	}
	c.mu.Unlock()
	if err := c.s.checkNamespace(name); err != nil {
		c.sendError(reqID, pb.ServerError_TopicNotFound, err.Error())
		return
	}
	create := m.GetForceTopicCreation() && !c.s.opts.DisableAutoTopicCreation
	t, err := c.s.getTopic(name, create)
	if err != nil {
		code := pb.ServerError_TopicNotFound
		if errors.Is(err, ErrNotPartitioned) {
			code = pb.ServerError_NotAllowedError
		}
		c.sendError(reqID, code, err.Error())
		return
	}
	if sch := m.GetSchema(); sch != nil {
		if err := c.s.schemas.checkConsumer(t.name, fromProto(sch, c.s.clock.Now()), t.idle()); err != nil {
			c.sendError(reqID, pb.ServerError_IncompatibleSchema, err.Error())
			return
		}
	}
	cons := &consumer{
		c:        c,
		id:       m.GetConsumerId(),
		name:     m.GetConsumerName(),
		priority: m.GetPriorityLevel(),
		since:    time.Now(),
		metadata: keyValues(m.GetMetadata()),
	}
	if ksm := m.GetKeySharedMeta(); ksm != nil && ksm.GetKeySharedMode() == pb.KeySharedMode_STICKY {
		cons.ranges = ksm.GetHashRanges()
	}
	code, msg := t.addConsumer(cons, m)
	if code != nil {
		c.sendError(reqID, *code, msg)
		return
	}
	c.mu.Lock()
	c.consumers[cons.id] = cons
	c.mu.Unlock()
	c.sendSuccess(reqID)
	t.mu.Lock()
	changes := cons.sub.activeChanges(nil)
	ends := cons.sub.endOfTopicLocked()
	t.mu.Unlock()
	sendActiveChanges(changes)
	sendEndOfTopic(ends)
}

// addConsumer attaches a consumer to its subscription, creating the
// subscription at the requested position.
func (t *topic) addConsumer(cons *consumer, m *pb.CommandSubscribe) (*pb.ServerError, string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.deleted {
		return pb.ServerError_TopicNotFound.Enum(), errTopicNotFound
	}
	sub := t.subs[m.GetSubscription()]
	if sub == nil {
		sub = newSubscription(t, m.GetSubscription(), m.GetDurable(), m.GetSubType())
		sub.resetCursorQuiet(t.startPosition(m))
		t.subs[sub.name] = sub
		sub.persist()
	} else if len(sub.consumers) > 0 {
		if sub.typ != m.GetSubType() {
			return pb.ServerError_ConsumerBusy.Enum(), errSubTypeMismatch + ": " + sub.typ.String()
		}
		if sub.typ == pb.CommandSubscribe_Exclusive {
			return pb.ServerError_ConsumerBusy.Enum(), errConsumerBusy
		}
	} else {
		sub.typ = m.GetSubType()
	}
	sub.keepWhenEmpty = false
	cons.sub = sub
	sub.consumers = append(sub.consumers, cons)
	if len(cons.ranges) == 0 {
		sub.ring.add(cons)
	}
	sub.startDispatcher()
	return nil, ""
}

// startPosition is where a new subscription's cursor starts.
func (t *topic) startPosition(m *pb.CommandSubscribe) uint64 {
	if sec := m.GetStartMessageRollbackDurationSec(); sec > 0 {
		return t.firstAtOrAfter(t.s.clock.Now().Add(-time.Duration(sec) * time.Second).UnixMilli())
	}
	if !m.GetDurable() && m.GetStartMessageId() != nil {
		mid := m.GetStartMessageId()
		switch {
		case mid.GetLedgerId() == earliestLedger:
			return t.first
		case mid.GetLedgerId() == latestLedger:
			return t.next
		case mid.GetLedgerId() < t.ledger:
			return t.first
		case mid.GetLedgerId() > t.ledger:
			return t.next
		default:
			return mid.GetEntryId()
		}
	}
	if m.GetInitialPosition() == pb.CommandSubscribe_Earliest {
		return t.first
	}
	return t.next
}

// firstAtOrAfter is the first entry published at or after ms.
func (t *topic) firstAtOrAfter(ms int64) uint64 {
	i := sort.Search(len(t.entries), func(i int) bool { return t.entries[i].publishTime >= ms })
	return t.first + uint64(i)
}

// ensureSubscription creates a durable Shared subscription at the earliest
// position unless it exists.
func (t *topic) ensureSubscription(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.subs[name]; ok || t.deleted {
		return
	}
	sub := newSubscription(t, name, true, pb.CommandSubscribe_Shared)
	sub.resetCursorQuiet(t.first)
	t.subs[name] = sub
	sub.persist()
}

func (sub *subscription) resetCursorQuiet(id uint64) {
	sub.ackedUpTo, sub.readPos = id, id
}

type activeChange struct {
	c      *consumer
	active bool
}

// activeChanges elects the active consumer of an Exclusive or Failover
// subscription and lists the ACTIVE_CONSUMER_CHANGE notices to send; caller
// holds t.mu. A consumer that loses the active role gives its pending
// entries back.
func (sub *subscription) activeChanges(out []activeChange) []activeChange {
	if sub.typ != pb.CommandSubscribe_Failover && sub.typ != pb.CommandSubscribe_Exclusive {
		sub.active = nil
		return out
	}
	var next *consumer
	if len(sub.consumers) > 0 {
		sorted := append([]*consumer(nil), sub.consumers...)
		sort.SliceStable(sorted, func(i, j int) bool {
			if sorted[i].priority != sorted[j].priority {
				return sorted[i].priority < sorted[j].priority
			}
			return sorted[i].name < sorted[j].name
		})
		idx := 0
		if sub.t.part >= 0 {
			idx = sub.t.part % len(sorted)
		}
		next = sorted[idx]
	}
	if next == sub.active {
		return out
	}
	if old := sub.active; old != nil {
		sub.releasePending(old)
	}
	sub.active = next
	sub.notify()
	if sub.typ == pb.CommandSubscribe_Failover {
		for _, c := range sub.consumers {
			if c.flowed {
				out = append(out, activeChange{c: c, active: c == next})
			}
		}
	}
	return out
}

func sendActiveChanges(changes []activeChange) {
	for _, ch := range changes {
		ch.c.c.send(&pb.BaseCommand{Type: pb.BaseCommand_ACTIVE_CONSUMER_CHANGE.Enum(), ActiveConsumerChange: &pb.CommandActiveConsumerChange{
			ConsumerId: proto.Uint64(ch.c.id),
			IsActive:   proto.Bool(ch.active),
		}}, nil)
	}
}

// removeConsumer detaches a consumer; its unacknowledged entries go back for
// redelivery. A non-durable subscription disappears with its last consumer.
func (t *topic) removeConsumer(cons *consumer) {
	t.mu.Lock()
	changes := t.removeConsumerLocked(cons)
	t.mu.Unlock()
	sendActiveChanges(changes)
}

func (t *topic) removeConsumerLocked(cons *consumer) []activeChange {
	sub := cons.sub
	idx := -1
	for i, c := range sub.consumers {
		if c == cons {
			idx = i
			break
		}
	}
	if idx < 0 {
		return nil
	}
	sub.consumers = append(sub.consumers[:idx], sub.consumers[idx+1:]...)
	if len(cons.ranges) == 0 {
		sub.ring.remove(cons)
	}
	sub.releasePending(cons)
	if sub.active == cons {
		sub.active = nil
	}
	changes := sub.activeChanges(nil)
	if len(sub.consumers) == 0 {
		sub.stopDispatcher()
		if !sub.durable && !sub.keepWhenEmpty {
			sub.stopTimers()
			if t.subs[sub.name] == sub {
				delete(t.subs, sub.name)
			}
		}
	} else {
		sub.notify()
	}
	return changes
}

// closeByBroker tells the client its consumer is closed; it re-subscribes.
func (cons *consumer) closeByBroker() {
	cons.sub.t.removeConsumer(cons)
	cons.sendClose()
}

// sendClose unregisters a detached consumer from its connection and sends
// CLOSE_CONSUMER.
func (cons *consumer) sendClose() {
	cons.c.mu.Lock()
	if cons.c.consumers[cons.id] == cons {
		delete(cons.c.consumers, cons.id)
	}
	cons.c.mu.Unlock()
	cons.c.send(&pb.BaseCommand{Type: pb.BaseCommand_CLOSE_CONSUMER.Enum(), CloseConsumer: &pb.CommandCloseConsumer{
		ConsumerId: proto.Uint64(cons.id),
		RequestId:  proto.Uint64(0),
	}}, nil)
}

func (c *conn) consumer(id uint64) *consumer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.consumers[id]
}

func (c *conn) handleFlow(m *pb.CommandFlow) {
	cons := c.consumer(m.GetConsumerId())
	if cons == nil {
		return
	}
	t := cons.sub.t
	t.mu.Lock()
	cons.permits += int64(m.GetMessagePermits())
	var changes []activeChange
	if !cons.flowed {
		cons.flowed = true
		if cons.sub.typ == pb.CommandSubscribe_Failover {
			changes = append(changes, activeChange{c: cons, active: cons == cons.sub.active})
		}
	}
	cons.sub.notify()
	t.mu.Unlock()
	sendActiveChanges(changes)
}

func (c *conn) handleAck(m *pb.CommandAck) {
	cons := c.consumer(m.GetConsumerId())
	if cons != nil && m.ValidationError != nil {
		c.s.log.Warn("client reports a corrupt message", "remote", c.remote, "error", m.GetValidationError().String())
	}
	var errCode *pb.ServerError
	var errMsg string
	if cons == nil {
		errCode, errMsg = pb.ServerError_ConsumerNotFound.Enum(), errConsumerNotFound
	} else {
		t := cons.sub.t
		t.mu.Lock()
		sub := cons.sub
		for _, mid := range m.GetMessageId() {
			if mid.GetLedgerId() != t.ledger {
				continue
			}
			if m.GetAckType() == pb.CommandAck_Cumulative {
				sub.ackCumulative(mid.GetEntryId(), mid.GetAckSet())
			} else {
				sub.ackIndividual(mid.GetEntryId(), mid.GetAckSet())
			}
		}
		sub.persist()
		sub.notify()
		ends := sub.endOfTopicLocked()
		t.mu.Unlock()
		sendEndOfTopic(ends)
	}
	if m.RequestId != nil {
		c.send(&pb.BaseCommand{Type: pb.BaseCommand_ACK_RESPONSE.Enum(), AckResponse: &pb.CommandAckResponse{
			ConsumerId: proto.Uint64(m.GetConsumerId()),
			RequestId:  proto.Uint64(m.GetRequestId()),
			Error:      errCode,
			Message:    optString(errMsg),
		}}, nil)
	}
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (c *conn) handleRedeliver(m *pb.CommandRedeliverUnacknowledgedMessages) {
	cons := c.consumer(m.GetConsumerId())
	if cons == nil {
		return
	}
	t := cons.sub.t
	t.mu.Lock()
	var ids []uint64
	for _, mid := range m.GetMessageIds() {
		if mid.GetLedgerId() == t.ledger {
			ids = append(ids, mid.GetEntryId())
		}
	}
	if len(m.GetMessageIds()) > 0 && len(ids) == 0 {
		t.mu.Unlock()
		return
	}
	cons.sub.redeliver(cons, ids)
	t.mu.Unlock()
}

func (c *conn) handleSeek(m *pb.CommandSeek) {
	cons := c.consumer(m.GetConsumerId())
	if cons == nil {
		c.sendError(m.GetRequestId(), pb.ServerError_ConsumerNotFound, errConsumerNotFound)
		return
	}
	sub := cons.sub
	t := sub.t
	sub.sendMu.Lock()
	defer sub.sendMu.Unlock()
	t.mu.Lock()
	var pos uint64
	switch {
	case m.MessagePublishTime != nil:
		pos = t.firstAtOrAfter(int64(m.GetMessagePublishTime()))
	case m.GetMessageId() != nil:
		mid := m.GetMessageId()
		switch {
		case mid.GetLedgerId() == earliestLedger || mid.GetLedgerId() < t.ledger:
			pos = t.first
		case mid.GetLedgerId() == latestLedger || mid.GetLedgerId() > t.ledger:
			pos = t.next
		default:
			pos = mid.GetEntryId()
		}
	default:
		t.mu.Unlock()
		c.sendError(m.GetRequestId(), pb.ServerError_NotAllowedError, "seek needs a message id or a publish time")
		return
	}
	// As Pulsar does, every consumer of the subscription is disconnected
	// (detached here, under the same lock as the reset, so nothing from the
	// old position is dispatched after it) and reconnects to the new
	// position. A non-durable subscription outlives the moment it has no
	// consumer, as Pulsar keeps a reset cursor.
	sub.keepWhenEmpty = true
	consumers := append([]*consumer(nil), sub.consumers...)
	for _, cs := range consumers {
		t.removeConsumerLocked(cs)
	}
	sub.resetCursor(pos)
	t.mu.Unlock()
	c.sendSuccess(m.GetRequestId())
	for _, cs := range consumers {
		cs.sendClose()
	}
}

func (c *conn) handleUnsubscribe(m *pb.CommandUnsubscribe) {
	cons := c.consumer(m.GetConsumerId())
	if cons == nil {
		c.sendError(m.GetRequestId(), pb.ServerError_ConsumerNotFound, errConsumerNotFound)
		return
	}
	sub := cons.sub
	t := sub.t
	t.mu.Lock()
	if len(sub.consumers) > 1 && !m.GetForce() {
		t.mu.Unlock()
		c.sendError(m.GetRequestId(), pb.ServerError_ConsumerBusy, errHasConsumers)
		return
	}
	others := make([]*consumer, 0, len(sub.consumers))
	for _, cs := range sub.consumers {
		if cs != cons {
			others = append(others, cs)
		}
	}
	t.mu.Unlock()
	for _, cs := range others {
		cs.closeByBroker()
	}
	t.removeConsumer(cons)
	c.mu.Lock()
	delete(c.consumers, cons.id)
	c.mu.Unlock()
	t.deleteSubscription(sub)
	c.sendSuccess(m.GetRequestId())
}

// deleteSubscription removes a subscription and its cursor.
func (t *topic) deleteSubscription(sub *subscription) {
	t.mu.Lock()
	defer t.mu.Unlock()
	sub.stopTimers()
	sub.stopDispatcher()
	if t.subs[sub.name] == sub {
		delete(t.subs, sub.name)
		if sub.durable {
			t.s.store.deleteCursor(t.full, sub.name)
		}
	}
}

func (c *conn) handleCloseConsumer(m *pb.CommandCloseConsumer) {
	c.mu.Lock()
	cons, ok := c.consumers[m.GetConsumerId()]
	delete(c.consumers, m.GetConsumerId())
	c.mu.Unlock()
	if ok {
		cons.sub.t.removeConsumer(cons)
	}
	c.sendSuccess(m.GetRequestId())
}

func (c *conn) handleGetLastMessageID(m *pb.CommandGetLastMessageId) {
	cons := c.consumer(m.GetConsumerId())
	if cons == nil {
		c.sendError(m.GetRequestId(), pb.ServerError_ConsumerNotFound, errConsumerNotFound)
		return
	}
	t := cons.sub.t
	t.mu.Lock()
	last, md := t.lastMessageID(), &pb.MessageIdData{
		LedgerId: proto.Uint64(t.ledger),
		EntryId:  proto.Uint64(cons.sub.ackedUpTo - 1), // wraps to 2^64-1 when nothing is acknowledged
	}
	t.mu.Unlock()
	c.send(&pb.BaseCommand{Type: pb.BaseCommand_GET_LAST_MESSAGE_ID_RESPONSE.Enum(), GetLastMessageIdResponse: &pb.CommandGetLastMessageIdResponse{
		RequestId:                  proto.Uint64(m.GetRequestId()),
		LastMessageId:              last,
		ConsumerMarkDeletePosition: md,
	}}, nil)
}

// lastMessageID is the id of the last stored message; caller holds t.mu.
// An empty topic answers entry id 2^64-1 (-1).
func (t *topic) lastMessageID() *pb.MessageIdData {
	mid := &pb.MessageIdData{
		LedgerId:   proto.Uint64(t.ledger),
		EntryId:    proto.Uint64(^uint64(0)),
		BatchIndex: proto.Int32(-1),
		Partition:  proto.Int32(int32(t.part)),
	}
	if id, ok := t.lastID(); ok {
		mid.EntryId = proto.Uint64(id)
		if e := t.entryAt(id); e.batched() {
			mid.BatchIndex = proto.Int32(e.numMsgs - 1)
		}
	}
	return mid
}

func (c *conn) handleConsumerStats(m *pb.CommandConsumerStats) {
	cons := c.consumer(m.GetConsumerId())
	if cons == nil {
		c.send(&pb.BaseCommand{Type: pb.BaseCommand_CONSUMER_STATS_RESPONSE.Enum(), ConsumerStatsResponse: &pb.CommandConsumerStatsResponse{
			RequestId:    proto.Uint64(m.GetRequestId()),
			ErrorCode:    pb.ServerError_ConsumerNotFound.Enum(),
			ErrorMessage: proto.String(errConsumerNotFound),
		}}, nil)
		return
	}
	t := cons.sub.t
	t.mu.Lock()
	backlog, _ := cons.sub.backlog()
	resp := &pb.CommandConsumerStatsResponse{
		RequestId:        proto.Uint64(m.GetRequestId()),
		ConsumerName:     proto.String(cons.name),
		AvailablePermits: proto.Uint64(uint64(max(cons.permits, 0))),
		UnackedMessages:  proto.Uint64(uint64(max(cons.unacked, 0))),
		Address:          proto.String(c.remote),
		ConnectedSince:   proto.String(cons.since.UTC().Format(time.RFC3339)),
		Type:             proto.String(cons.sub.typ.String()),
		MsgBacklog:       proto.Uint64(uint64(backlog)),
	}
	t.mu.Unlock()
	c.send(&pb.BaseCommand{Type: pb.BaseCommand_CONSUMER_STATS_RESPONSE.Enum(), ConsumerStatsResponse: resp}, nil)
}
