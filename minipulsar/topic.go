package minipulsar

import (
	"errors"
	"fmt"
	"maps"
	"runtime/debug"
	"sort"
	"strings"
	"sync"

	pb "github.com/pulsar-sidecar/pulsar-sidecar/minipulsar/internal/wirepb"
)

// Topic errors.
var (
	ErrTopicNotFound  = errors.New("minipulsar: topic not found")
	ErrTopicExists    = errors.New("minipulsar: topic already exists")
	ErrTopicInUse     = errors.New("minipulsar: topic has connected producers or consumers")
	ErrSubNotFound    = errors.New("minipulsar: subscription not found")
	ErrNotPartitioned = errors.New("minipulsar: topic is not partitioned")
)

// entry is one stored ledger entry: a single message or a batch, kept as the
// bytes received from the producer (from the 0x0e01 magic on). Its fields
// beyond data are what dispatch needs without decoding metadata again.
//
// It is 48 bytes: the few delayed entries keep their delivery time in
// topic.delays rather than in every entry. With a data directory, data is
// dropped once no reader needs it soon and read back from the segment files
// on demand (entrycache.go); everything else stays.
type entry struct {
	data        []byte // nil when evicted (entryEvicted) or void
	publishTime int64  // ms since epoch
	size        uint32 // len(data) as stored
	numMsgs     int32
	keyHash     uint16 // Key_Shared sticky-key hash, 1..65535 (keyshared.go)
	rangeHash   uint16 // hash matched against sticky ranges, 1..65535 (keyshared.go)
	flags       uint16
}

const (
	entryBatched uint16 = 1 << iota // metadata carries num_messages_in_batch
	entryDelayed                    // topic.delays holds its delivery time
	entryEvicted                    // data is in the store only (entrycache.go)
)

// void tells an entry whose append failed (never dispatched) from a stored
// one, whether its bytes are in memory or evicted.
func (e *entry) void() bool { return e.data == nil && e.flags&entryEvicted == 0 }

// batched tells whether the entry is a batch (even of one message).
func (e *entry) batched() bool { return e.flags&entryBatched != 0 }

// topic is one non-partitioned topic or one partition.
type topic struct {
	s      *Server
	name   topicName
	full   string
	ledger uint64
	part   int // partition index, -1 when not a partition

	mu      sync.Mutex
	entries []entry
	first   uint64 // entry id of entries[0]
	// cachedFrom: entries below it have their bytes in the store only
	// (entrycache.go).
	cachedFrom uint64
	next       uint64 // id the next entry gets
	visible    uint64 // entries below this id are durable (the last message id)
	// dispatchable trails visible by the moment between an entry's
	// durability and its send receipt being queued: entries below it may
	// be dispatched.
	dispatchable uint64
	producers    map[*producer]struct{}
	names        map[string]*producer // producer name -> producer
	exclusive    *producer
	waiting      []*producer // WaitForExclusive producers in line, oldest first
	subs         map[string]*subscription
	delays       map[uint64]int64 // entry id -> deliver_at_time (ms) of delayed entries
	lastSeq      map[string]int64 // producer name -> highest sequence id accepted
	persisted    map[string]int64 // producer name -> highest sequence id durable
	appendMu     sync.Mutex       // orders id assignment with the store's append queue
	deleted      bool
	terminated   bool // takes no more messages (terminate.go)

	msgIn, bytesIn uint64
}

func (t *topic) lastID() (uint64, bool) {
	if t.visible == 0 || t.visible <= t.first {
		return 0, false
	}
	return t.visible - 1, true
}

// entryAt returns the entry with id, or nil.
func (t *topic) entryAt(id uint64) *entry {
	if id < t.first || id >= t.next {
		return nil
	}
	return &t.entries[id-t.first]
}

// loadState prepares broker state: from the data directory on first start.
func (s *Server) loadState() (err error) {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	if s.topics != nil {
		// Start after Close: the file store released its files and
		// goroutines in closeState's sync; take them back.
		if r, ok := s.store.(interface{ reopen() error }); ok {
			return r.reopen()
		}
		return nil
	}
	defer func() {
		if err != nil { // leave nothing half loaded: a later Start loads again
			if s.store != nil {
				_ = s.store.sync()
			}
			s.topics, s.store = nil, nil
		}
	}()
	s.topics = map[string]*topic{}
	s.partitioned = map[string]int{}
	if s.dedupNS == nil {
		s.dedupNS = map[string]bool{}
	}
	s.nextLedger = 1
	if s.opts.DataDir == "" {
		s.store = memStore{}
		s.initNamespacesLocked()
		return nil
	}
	st, snap, err := openFileStore(s.opts.DataDir, s.log)
	if err != nil {
		return err
	}
	s.store = st
	s.nextLedger = snap.nextLedger
	for name, n := range snap.partitioned {
		s.partitioned[name] = n
	}
	var loaded uint64 // bytes of the stored entries
	for _, pt := range snap.topics {
		name, err := parseTopic(pt.name)
		if err != nil {
			return fmt.Errorf("minipulsar: stored topic %q: %w", pt.name, err)
		}
		t := s.newTopic(name, pt.ledger)
		// The store loaded each entry's metadata, not its bytes
		// (fileStoreConfig.metaOnly): they are read back when needed, so
		// nothing of a large data directory stays in memory.
		t.first, t.entries = pt.first, pt.metas
		maps.Copy(t.delays, pt.delays)
		t.next = t.first + uint64(len(t.entries))
		t.visible, t.dispatchable, t.cachedFrom = t.next, t.next, t.next
		for _, e := range t.entries {
			t.msgIn += uint64(e.numMsgs)
			t.bytesIn += uint64(e.size)
		}
		loaded += t.bytesIn
		for subName, cur := range pt.cursors {
			sub := newSubscription(t, subName, true, pb.CommandSubscribe_SubType(cur.Type))
			sub.restore(cur)
			t.subs[subName] = sub
		}
		for name, seq := range pt.lastSeq {
			t.lastSeq[name] = seq
			t.persisted[name] = seq
		}
		s.topics[t.full] = t
	}
	s.initNamespacesLocked()
	// Loading read every segment whole and kept none of it. Past one
	// segment's worth, give the buffers back to the system now rather than
	// over the scavenger's minutes, so that a large data directory does not
	// leave the process large; below it, a forced collection is not worth
	// its start-up time.
	if loaded > uint64(defaultFileStoreConfig.segmentSize) {
		debug.FreeOSMemory()
	}
	return nil
}

func (s *Server) closeState() error {
	s.stateMu.Lock()
	topics := make([]*topic, 0, len(s.topics))
	for _, t := range s.topics {
		topics = append(topics, t)
	}
	s.stateMu.Unlock()
	for _, t := range topics {
		t.mu.Lock()
		for _, sub := range t.subs {
			sub.stopTimers()
			if sub.durable {
				t.s.store.putCursor(t.full, sub.name, sub.state())
			}
		}
		t.mu.Unlock()
	}
	return s.store.sync()
}

// addEntry appends an entry with the next id; caller holds t.mu.
func (t *topic) addEntry(data []byte, md *pb.MessageMetadata) *entry {
	e, at := newEntry(data, md)
	id := t.first + uint64(len(t.entries))
	if at > 0 {
		t.delays[id] = at
	}
	t.entries = append(t.entries, e)
	t.s.cacheBytes.Add(int64(e.size))
	return &t.entries[len(t.entries)-1]
}

// newEntry makes the entry of data, whose metadata is md, and returns its
// delivery time (0 when it is not delayed), which the topic keeps apart.
func newEntry(data []byte, md *pb.MessageMetadata) (entry, int64) {
	n := md.GetNumMessagesInBatch()
	keyHash, rangeHash := stickyHashes(stickyKey(md))
	e := entry{data: data, publishTime: int64(md.GetPublishTime()), size: uint32(len(data)), numMsgs: max(n, 1), keyHash: keyHash, rangeHash: rangeHash}
	if md.NumMessagesInBatch != nil {
		e.flags |= entryBatched
	}
	at := md.GetDeliverAtTime()
	if at > 0 {
		e.flags |= entryDelayed
	}
	return e, at
}

// deliverAt is an entry's delivery time in ms, 0 when it is not delayed;
// caller holds t.mu.
func (t *topic) deliverAt(id uint64, e *entry) int64 {
	if e.flags&entryDelayed == 0 {
		return 0
	}
	return t.delays[id]
}

func (s *Server) newTopic(name topicName, ledger uint64) *topic {
	_, part := name.base()
	return &topic{
		s:         s,
		name:      name,
		full:      name.String(),
		ledger:    ledger,
		part:      part,
		producers: map[*producer]struct{}{},
		names:     map[string]*producer{},
		subs:      map[string]*subscription{},
		lastSeq:   map[string]int64{},
		persisted: map[string]int64{},
		delays:    map[uint64]int64{},
	}
}

// partitionsOf is the partition count of a partitioned topic, else 0.
func (s *Server) partitionsOf(name topicName) int {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	return s.partitioned[name.String()]
}

// getTopic returns the topic (a partition or a non-partitioned topic),
// creating it when create is true.
func (s *Server) getTopic(name topicName, create bool) (*topic, error) {
	full := name.String()
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	if t, ok := s.topics[full]; ok {
		return t, nil
	}
	if !create {
		return nil, fmt.Errorf("%w: %s", ErrTopicNotFound, full)
	}
	if _, ok := s.partitioned[full]; ok {
		return nil, fmt.Errorf("%w: %s", ErrNotPartitioned, full)
	}
	if err := s.checkNamespaceLocked(name); err != nil {
		return nil, err
	}
	return s.createTopicLocked(name)
}

func (s *Server) createTopicLocked(name topicName) (*topic, error) {
	ledger := s.nextLedger
	s.nextLedger++
	t := s.newTopic(name, ledger)
	if err := s.store.putTopic(t.full, ledger, s.nextLedger); err != nil {
		return nil, err
	}
	s.topics[t.full] = t
	return t, nil
}

// CreateTopic creates a non-partitioned topic.
func (s *Server) CreateTopic(name string) error {
	n, err := parseTopic(name)
	if err != nil {
		return err
	}
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	if _, ok := s.topics[n.String()]; ok {
		return fmt.Errorf("%w: %s", ErrTopicExists, n)
	}
	if _, ok := s.partitioned[n.String()]; ok {
		return fmt.Errorf("%w: %s", ErrTopicExists, n)
	}
	if err := s.checkNamespaceLocked(n); err != nil {
		return err
	}
	_, err = s.createTopicLocked(n)
	return err
}

// CreatePartitionedTopic creates a partitioned topic with n partitions.
func (s *Server) CreatePartitionedTopic(name string, n int) error {
	tn, err := parseTopic(name)
	if err != nil {
		return err
	}
	if n <= 0 {
		return fmt.Errorf("minipulsar: partitions must be positive, got %d", n)
	}
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	full := tn.String()
	if _, ok := s.partitioned[full]; ok {
		return fmt.Errorf("%w: %s", ErrTopicExists, full)
	}
	if _, ok := s.topics[full]; ok {
		return fmt.Errorf("%w: %s", ErrTopicExists, full)
	}
	if err := s.checkNamespaceLocked(tn); err != nil {
		return err
	}
	if err := s.store.putPartitioned(full, n); err != nil {
		return err
	}
	s.partitioned[full] = n
	for i := 0; i < n; i++ {
		if _, ok := s.topics[tn.partition(i).String()]; !ok {
			if _, err := s.createTopicLocked(tn.partition(i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// UpdatePartitionedTopic raises the partition count of a partitioned topic.
func (s *Server) UpdatePartitionedTopic(name string, n int) error {
	tn, err := parseTopic(name)
	if err != nil {
		return err
	}
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	full := tn.String()
	old, ok := s.partitioned[full]
	if !ok {
		return fmt.Errorf("%w: %s", ErrTopicNotFound, full)
	}
	if n <= old {
		return fmt.Errorf("%w: %s has %d partitions; the count can only grow (asked %d)", ErrTopicExists, full, old, n)
	}
	if err := s.store.putPartitioned(full, n); err != nil {
		return err
	}
	s.partitioned[full] = n
	for i := old; i < n; i++ {
		if _, ok := s.topics[tn.partition(i).String()]; !ok {
			if _, err := s.createTopicLocked(tn.partition(i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// DeleteTopic deletes a non-partitioned topic or a partitioned topic with
// its partitions. Without force it fails while clients are attached; with
// force they are disconnected.
func (s *Server) DeleteTopic(name string, force bool) error {
	tn, err := parseTopic(name)
	if err != nil {
		return err
	}
	full := tn.String()
	s.stateMu.Lock()
	var victims []*topic
	n, isPart := s.partitioned[full]
	if isPart {
		for i := 0; i < n; i++ {
			if t, ok := s.topics[tn.partition(i).String()]; ok {
				victims = append(victims, t)
			}
		}
	} else if t, ok := s.topics[full]; ok {
		victims = append(victims, t)
	} else {
		s.stateMu.Unlock()
		return fmt.Errorf("%w: %s", ErrTopicNotFound, full)
	}
	if !force {
		for _, t := range victims {
			if t.inUse() {
				s.stateMu.Unlock()
				return fmt.Errorf("%w: %s", ErrTopicInUse, t.full)
			}
		}
	}
	// The store forgets the topics under stateMu, so a topic of the same
	// name created right after is not deleted with them.
	var errs []error
	for _, t := range victims {
		delete(s.topics, t.full)
		delete(s.dedupTopic, t.full) // topic policies go with the topic
		errs = append(errs, s.store.deleteTopic(t.full))
	}
	delete(s.dedupTopic, full)
	if isPart {
		delete(s.partitioned, full)
		errs = append(errs, s.store.deletePartitioned(full))
	}
	s.stateMu.Unlock()
	for _, t := range victims {
		t.markDeleted()
	}
	return errors.Join(errs...)
}

func (t *topic) inUse() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.producers) > 0 || len(t.waiting) > 0 {
		return true
	}
	for _, sub := range t.subs {
		if len(sub.consumers) > 0 {
			return true
		}
	}
	return false
}

// markDeleted disconnects everyone attached to a deleted topic.
func (t *topic) markDeleted() {
	t.mu.Lock()
	t.deleted = true
	t.s.cacheBytes.Add(-t.cachedBytes())
	prods := make([]*producer, 0, len(t.producers)+len(t.waiting))
	for p := range t.producers {
		prods = append(prods, p)
	}
	prods = append(prods, t.waiting...)
	var cons []*consumer
	for _, sub := range t.subs {
		sub.stopTimers()
		cons = append(cons, sub.consumers...)
	}
	t.mu.Unlock()
	for _, p := range prods {
		p.closeByBroker()
	}
	for _, c := range cons {
		c.closeByBroker()
	}
}

// topicsOfNamespace lists the persistent (or non-persistent) topics of a
// namespace, partitions included, sorted.
func (s *Server) topicsOfNamespace(ns string, persistent bool) []string {
	domain := "persistent"
	if !persistent {
		domain = "non-persistent"
	}
	prefix := domain + "://" + strings.TrimSuffix(ns, "/") + "/"
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	var out []string
	for full := range s.topics {
		if strings.HasPrefix(full, prefix) {
			out = append(out, full)
		}
	}
	sort.Strings(out)
	return out
}

// dedupEnabled tells whether deduplication applies to a topic: a topic
// policy (on the partitioned topic for a partition) wins over a namespace
// policy, which wins over Options.Deduplication.
func (s *Server) dedupEnabled(name topicName) bool {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	if v, ok := s.dedupTopic[name.String()]; ok {
		return v
	}
	if b, part := name.base(); part >= 0 {
		if v, ok := s.dedupTopic[b.String()]; ok {
			return v
		}
	}
	if v, ok := s.dedupNS[name.ns()]; ok {
		return v
	}
	return s.opts.Deduplication
}

// SetTopicDeduplication sets a topic's deduplication policy; nil removes
// it so the namespace policy applies again.
func (s *Server) SetTopicDeduplication(topic string, on *bool) error {
	n, err := parseTopic(topic)
	if err != nil {
		return err
	}
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	if s.dedupTopic == nil {
		s.dedupTopic = map[string]bool{}
	}
	if on == nil {
		delete(s.dedupTopic, n.String())
	} else {
		s.dedupTopic[n.String()] = *on
	}
	return nil
}

// TopicDeduplication returns a topic's own deduplication policy, if set.
func (s *Server) TopicDeduplication(topic string) (on, set bool, err error) {
	n, err := parseTopic(topic)
	if err != nil {
		return false, false, err
	}
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	on, set = s.dedupTopic[n.String()]
	return on, set, nil
}

// SetDeduplication turns broker deduplication on or off for a namespace
// ("tenant/namespace"), overriding Options.Deduplication.
func (s *Server) SetDeduplication(namespace string, on bool) {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	if s.dedupNS == nil {
		s.dedupNS = map[string]bool{}
	}
	s.dedupNS[strings.Trim(namespace, "/")] = on
}

// notifyAll wakes every subscription's dispatcher; caller holds t.mu.
func (t *topic) notifyAll() {
	for _, sub := range t.subs {
		sub.notify()
	}
}
