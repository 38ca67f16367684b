package minipulsar

import (
	"fmt"
	"math/bits"
	"sort"
	"strconv"
	"time"

	pb "github.com/pulsar-sidecar/pulsar-sidecar/minipulsar/internal/wirepb"
)

// MessageID identifies one stored message the way Pulsar does.
type MessageID struct {
	Ledger     uint64
	Entry      uint64
	BatchIndex int32 // -1 when the entry is not a batch
	Partition  int32 // -1 when the topic is not a partition
}

// String is "ledger:entry:partition:batchIndex", as pulsaradmin prints ids.
func (id MessageID) String() string {
	return strconv.FormatUint(id.Ledger, 10) + ":" + strconv.FormatUint(id.Entry, 10) + ":" +
		strconv.Itoa(int(id.Partition)) + ":" + strconv.Itoa(int(id.BatchIndex))
}

// Message is one stored message, decompressed and split out of its batch.
type Message struct {
	ID           MessageID
	Topic        string // the partition's name for a partitioned topic
	Key          string
	OrderingKey  []byte
	Properties   map[string]string
	Payload      []byte
	EventTime    time.Time // zero when the producer set none
	PublishTime  time.Time
	DeliverAt    time.Time // zero unless delayed
	ProducerName string
	SequenceID   uint64
}

// Topics lists every stored topic, each partition of a partitioned topic
// included (partitioned topics themselves are not listed), sorted.
func (s *Server) Topics() []string {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	out := make([]string, 0, len(s.topics))
	for name := range s.topics {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// physicalTopics resolves a name to the stored topics behind it: the topic
// itself, or every partition of a partitioned topic, in partition order.
func (s *Server) physicalTopics(name string) ([]*topic, error) {
	tn, err := parseTopic(name)
	if err != nil {
		return nil, err
	}
	if n := s.partitionsOf(tn); n > 0 {
		ts := make([]*topic, 0, n)
		for i := 0; i < n; i++ {
			t, err := s.getTopic(tn.partition(i), false)
			if err != nil {
				return nil, err
			}
			ts = append(ts, t)
		}
		return ts, nil
	}
	t, err := s.getTopic(tn, false)
	if err != nil {
		return nil, err
	}
	return []*topic{t}, nil
}

// Messages returns every message stored on a topic (every partition, in
// partition order, for a partitioned topic), acknowledged or not, with
// batches split and payloads decompressed. The chunks of a chunked message
// are joined into one message, with the id of its last chunk, as the client
// reports it; a chunked message missing chunks is left out.
func (s *Server) Messages(topicName string) ([]Message, error) {
	ts, err := s.physicalTopics(topicName)
	if err != nil {
		return nil, err
	}
	var out []Message
	for _, t := range ts {
		type stored struct {
			id   uint64
			data []byte
		}
		t.mu.Lock()
		snap := make([]stored, 0, len(t.entries))
		for id := t.first; id < t.visible; id++ {
			if e := t.entryAt(id); e != nil && !e.void() {
				data, ok := t.entryBytes(id, e)
				if !ok {
					t.mu.Unlock()
					return nil, fmt.Errorf("minipulsar: %s entry %d cannot be read back from the data directory", t.full, id)
				}
				snap = append(snap, stored{id: id, data: data})
			}
		}
		t.mu.Unlock()
		chunks := map[string][][]byte{} // uuid -> chunk bodies so far
		for _, st := range snap {
			d, err := decodeStoredEntry(st.data)
			if err == nil && d.md.GetNumChunksFromMsg() > 1 {
				d, err = joinChunk(chunks, d)
				if d == nil && err == nil {
					continue // more chunks to come
				}
			}
			if err != nil {
				return nil, fmt.Errorf("minipulsar: %s entry %d: %w", t.full, st.id, err)
			}
			out = append(out, t.messagesOf(st.id, d)...)
		}
	}
	return out, nil
}

// joinChunk adds a chunk to those gathered so far; with the last one it
// returns the whole message, decompressed. A chunk out of order starts over,
// as the client drops an incomplete chunked message.
func joinChunk(chunks map[string][][]byte, d *decodedEntry) (*decodedEntry, error) {
	md := d.md
	uuid, id, n := md.GetUuid(), int(md.GetChunkId()), int(md.GetNumChunksFromMsg())
	if id != len(chunks[uuid]) {
		delete(chunks, uuid)
		if id != 0 {
			return nil, nil
		}
	}
	chunks[uuid] = append(chunks[uuid], d.body)
	if id < n-1 {
		return nil, nil
	}
	var whole []byte
	for _, c := range chunks[uuid] {
		whole = append(whole, c...)
	}
	delete(chunks, uuid)
	body, err := decompress(md.GetCompression(), whole, md.GetUncompressedSize())
	if err != nil {
		return nil, err
	}
	return &decodedEntry{md: md, body: body, storedBody: len(whole)}, nil
}

// messagesOf turns one decoded entry into its messages.
func (t *topic) messagesOf(id uint64, d *decodedEntry) []Message {
	md := d.md
	base := Message{
		ID:           MessageID{Ledger: t.ledger, Entry: id, BatchIndex: -1, Partition: int32(t.part)},
		Topic:        t.full,
		PublishTime:  time.UnixMilli(int64(md.GetPublishTime())),
		ProducerName: md.GetProducerName(),
		SequenceID:   md.GetSequenceId(),
	}
	if at := md.GetDeliverAtTime(); at > 0 {
		base.DeliverAt = time.UnixMilli(at)
	}
	if !d.batch {
		m := base
		m.Key = md.GetPartitionKey()
		m.OrderingKey = md.GetOrderingKey()
		m.Properties = properties(md.GetProperties())
		m.Payload = d.body
		if et := md.GetEventTime(); et > 0 {
			m.EventTime = time.UnixMilli(int64(et))
		}
		return []Message{m}
	}
	out := make([]Message, len(d.msgs))
	for i, bm := range d.msgs {
		m := base
		m.ID.BatchIndex = int32(i)
		m.Key = bm.meta.GetPartitionKey()
		m.OrderingKey = bm.meta.GetOrderingKey()
		m.Properties = properties(bm.meta.GetProperties())
		m.Payload = bm.payload
		if et := bm.meta.GetEventTime(); et > 0 {
			m.EventTime = time.UnixMilli(int64(et))
		}
		if bm.meta.SequenceId != nil {
			m.SequenceID = bm.meta.GetSequenceId()
		} else {
			m.SequenceID = md.GetSequenceId() + uint64(i)
		}
		out[i] = m
	}
	return out
}

func properties(kvs []*pb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[kv.GetKey()] = kv.GetValue()
	}
	return m
}

// subscriptionsOf finds a subscription on each of ts; ErrSubNotFound when
// none of them has it.
func subscriptionsOf(ts []*topic, sub string) ([]*subscription, error) {
	var subs []*subscription
	for _, t := range ts {
		t.mu.Lock()
		if sb := t.subs[sub]; sb != nil {
			subs = append(subs, sb)
		}
		t.mu.Unlock()
	}
	if len(subs) == 0 {
		return nil, fmt.Errorf("%w: %s on %s", ErrSubNotFound, sub, ts[0].name.String())
	}
	return subs, nil
}

// Backlog is the number of messages (not entries) of a subscription not
// acknowledged yet, summed over partitions for a partitioned topic; messages
// held back by delayed delivery count.
func (s *Server) Backlog(topicName, sub string) (int64, error) {
	ts, err := s.physicalTopics(topicName)
	if err != nil {
		return 0, err
	}
	subs, err := subscriptionsOf(ts, sub)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, sb := range subs {
		sb.t.mu.Lock()
		msgs, _ := sb.backlog()
		sb.t.mu.Unlock()
		n += msgs
	}
	return n, nil
}

// Unacked lists the messages of a subscription dispatched to a consumer and
// not acknowledged yet, in id order; the messages of a partially
// acknowledged batch that are still unacknowledged are listed one by one.
func (s *Server) Unacked(topicName, sub string) ([]MessageID, error) {
	ts, err := s.physicalTopics(topicName)
	if err != nil {
		return nil, err
	}
	subs, err := subscriptionsOf(ts, sub)
	if err != nil {
		return nil, err
	}
	var out []MessageID
	for _, sb := range subs {
		t := sb.t
		t.mu.Lock()
		ids := make([]uint64, 0, len(sb.pending))
		for id := range sb.pending {
			ids = append(ids, id)
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		for _, id := range ids {
			e := t.entryAt(id)
			if e == nil {
				continue
			}
			mid := MessageID{Ledger: t.ledger, Entry: id, BatchIndex: -1, Partition: int32(t.part)}
			if e.numMsgs <= 1 && sb.partial[id] == nil {
				out = append(out, mid)
				continue
			}
			set := sb.partial[id]
			if set == nil {
				set = fullAckSet(e.numMsgs)
			}
			for i := int32(0); i < e.numMsgs; i++ {
				if int(i/64) < len(set) && set[i/64]&(1<<(i%64)) != 0 {
					mid.BatchIndex = i
					out = append(out, mid)
				}
			}
		}
		t.mu.Unlock()
	}
	return out, nil
}

// Subscriptions lists a topic's subscriptions (for a partitioned topic, those
// of any partition), sorted.
func (s *Server) Subscriptions(topicName string) ([]string, error) {
	ts, err := s.physicalTopics(topicName)
	if err != nil {
		return nil, err
	}
	return subscriptionNames(ts), nil
}

func subscriptionNames(ts []*topic) []string {
	seen := map[string]struct{}{}
	out := []string{}
	for _, t := range ts {
		t.mu.Lock()
		for name := range t.subs {
			if _, ok := seen[name]; !ok {
				seen[name] = struct{}{}
				out = append(out, name)
			}
		}
		t.mu.Unlock()
	}
	sort.Strings(out)
	return out
}

// unackedInEntry counts the messages of entry id a subscription has not
// acknowledged; caller holds t.mu.
func (sub *subscription) unackedInEntry(id uint64, e *entry) int64 {
	if ps, ok := sub.partial[id]; ok {
		n := 0
		for _, w := range ps {
			n += bits.OnesCount64(uint64(w))
		}
		return int64(n)
	}
	return int64(e.numMsgs)
}

// Fsyncs is how many segment fsyncs the store has run since the broker
// opened its data directory: 0 for an in-memory broker. Benchmarks divide
// it by the messages sent to show how many share one fsync.
func (s *Server) Fsyncs() uint64 {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	if fs, ok := s.store.(*fileStore); ok {
		return fs.fsyncs.Load()
	}
	return 0
}
