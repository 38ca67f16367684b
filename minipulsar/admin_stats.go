package minipulsar

import (
	"errors"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	pb "github.com/pulsar-sidecar/pulsar-sidecar/minipulsar/internal/wirepb"
)

// Rates (msgRateIn/Out, msgThroughputIn/Out) are computed from the real
// counters between two stats requests for the same object at least a second
// apart (Pulsar computes them over its stats interval); the first request
// reports 0, and requests closer than a second repeat the last rate. The
// broker's Clock is used, so a FakeClock makes rates deterministic.
type rateSampler struct {
	mu sync.Mutex
	m  map[rateKey]*rateSample
}

type rateKey struct {
	obj  any // *topic, *subscription, *producer or *consumer
	kind string
}

type rateSample struct {
	at    time.Time
	count uint64
	rate  float64
	seen  time.Time
}

const (
	rateMinInterval = time.Second
	rateForget      = 10 * time.Minute
)

func (rs *rateSampler) rate(obj any, kind string, count uint64, now time.Time) float64 {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.m == nil {
		rs.m = map[rateKey]*rateSample{}
	}
	k := rateKey{obj: obj, kind: kind}
	sm := rs.m[k]
	if sm == nil {
		if len(rs.m) > 1024 {
			for k, v := range rs.m {
				if now.Sub(v.seen) > rateForget {
					delete(rs.m, k)
				}
			}
		}
		rs.m[k] = &rateSample{at: now, count: count, seen: now}
		return 0
	}
	sm.seen = now
	if dt := now.Sub(sm.at); dt >= rateMinInterval {
		d := float64(0)
		if count > sm.count {
			d = float64(count - sm.count)
		}
		sm.rate = d / dt.Seconds()
		sm.at, sm.count = now, count
	}
	return sm.rate
}

type topicStats struct {
	MsgRateIn            float64                `json:"msgRateIn"`
	MsgThroughputIn      float64                `json:"msgThroughputIn"`
	MsgRateOut           float64                `json:"msgRateOut"`
	MsgThroughputOut     float64                `json:"msgThroughputOut"`
	BytesInCounter       int64                  `json:"bytesInCounter"`
	MsgInCounter         int64                  `json:"msgInCounter"`
	BytesOutCounter      int64                  `json:"bytesOutCounter"`
	MsgOutCounter        int64                  `json:"msgOutCounter"`
	AverageMsgSize       float64                `json:"averageMsgSize"`
	StorageSize          int64                  `json:"storageSize"`
	BacklogSize          int64                  `json:"backlogSize"`
	Publishers           []publisherStats       `json:"publishers"`
	Subscriptions        map[string]subStats    `json:"subscriptions"`
	Replication          map[string]struct{}    `json:"replication"`
	DeduplicationStatus  string                 `json:"deduplicationStatus"`
	LastPublishTimestamp int64                  `json:"lastPublishTimestamp,omitempty"`
	Metadata             *partitionedMetadata   `json:"metadata,omitempty"`
	Partitions           map[string]*topicStats `json:"partitions,omitempty"`
}

type publisherStats struct {
	AccessMode      string            `json:"accessMode"`
	ProducerID      int64             `json:"producerId"`
	ProducerName    string            `json:"producerName"`
	Address         string            `json:"address"`
	ConnectedSince  string            `json:"connectedSince"`
	MsgRateIn       float64           `json:"msgRateIn"`
	MsgThroughputIn float64           `json:"msgThroughputIn"`
	AverageMsgSize  float64           `json:"averageMsgSize"`
	MsgInCounter    int64             `json:"msgInCounter"`
	BytesInCounter  int64             `json:"bytesInCounter"`
	ClientVersion   string            `json:"clientVersion"`
	Metadata        map[string]string `json:"metadata"`
}

type subStats struct {
	MsgRateOut                      float64         `json:"msgRateOut"`
	MsgThroughputOut                float64         `json:"msgThroughputOut"`
	BytesOutCounter                 int64           `json:"bytesOutCounter"`
	MsgOutCounter                   int64           `json:"msgOutCounter"`
	MsgBacklog                      int64           `json:"msgBacklog"`
	MsgBacklogNoDelayed             int64           `json:"msgBacklogNoDelayed"`
	MsgDelayed                      int64           `json:"msgDelayed"`
	BacklogSize                     int64           `json:"backlogSize"`
	EarliestMsgPublishTimeInBacklog int64           `json:"earliestMsgPublishTimeInBacklog"`
	UnackedMessages                 int64           `json:"unackedMessages"`
	Type                            string          `json:"type"`
	ActiveConsumerName              string          `json:"activeConsumerName,omitempty"`
	IsDurable                       bool            `json:"isDurable"`
	IsReplicated                    bool            `json:"isReplicated"`
	Consumers                       []consumerStats `json:"consumers"`
}

type consumerStats struct {
	ConsumerName     string            `json:"consumerName"`
	AvailablePermits int64             `json:"availablePermits"`
	UnackedMessages  int64             `json:"unackedMessages"`
	MsgRateOut       float64           `json:"msgRateOut"`
	MsgThroughputOut float64           `json:"msgThroughputOut"`
	MsgOutCounter    int64             `json:"msgOutCounter"`
	Address          string            `json:"address"`
	ConnectedSince   string            `json:"connectedSince"`
	ClientVersion    string            `json:"clientVersion"`
	Metadata         map[string]string `json:"metadata"`
}

func (a *admin) topicStats(w http.ResponseWriter, r *http.Request) error {
	tn, err := topicFromPath(r)
	if err != nil {
		return err
	}
	t, err := a.single(tn)
	if err != nil {
		if errors.Is(err, ErrTopicNotFound) || isStatus(err, http.StatusMethodNotAllowed) {
			// Pulsar: a partitioned topic has no stats of its own.
			return httpErr(http.StatusNotFound, reasonTopicNotFound)
		}
		return err
	}
	writeJSON(w, http.StatusOK, a.collectStats(t))
	return nil
}

func isStatus(err error, status int) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.status == status
}

func (a *admin) partitionedStats(w http.ResponseWriter, r *http.Request) error {
	tn, err := topicFromPath(r)
	if err != nil {
		return err
	}
	n := a.s.partitionsOf(tn)
	if n == 0 {
		return httpErr(http.StatusNotFound, reasonPartitionedNotFnd)
	}
	ts, _, err := a.resolveTopics(tn, false)
	if err != nil {
		return err
	}
	agg := &topicStats{
		Publishers:          []publisherStats{},
		Subscriptions:       map[string]subStats{},
		Replication:         map[string]struct{}{},
		Metadata:            &partitionedMetadata{Partitions: n},
		DeduplicationStatus: a.dedupStatus(tn),
	}
	per := boolQuery(r, "perPartition")
	if per {
		agg.Partitions = map[string]*topicStats{}
	}
	for _, t := range ts {
		st := a.collectStats(t)
		agg.add(st)
		if per {
			agg.Partitions[t.full] = st
		}
	}
	if agg.MsgRateIn > 0 {
		agg.AverageMsgSize = agg.MsgThroughputIn / agg.MsgRateIn
	}
	writeJSON(w, http.StatusOK, agg)
	return nil
}

// add merges a partition's stats into partitioned-topic stats.
func (agg *topicStats) add(st *topicStats) {
	agg.MsgRateIn += st.MsgRateIn
	agg.MsgThroughputIn += st.MsgThroughputIn
	agg.MsgRateOut += st.MsgRateOut
	agg.MsgThroughputOut += st.MsgThroughputOut
	agg.BytesInCounter += st.BytesInCounter
	agg.MsgInCounter += st.MsgInCounter
	agg.BytesOutCounter += st.BytesOutCounter
	agg.MsgOutCounter += st.MsgOutCounter
	agg.StorageSize += st.StorageSize
	agg.BacklogSize += st.BacklogSize
	agg.LastPublishTimestamp = max(agg.LastPublishTimestamp, st.LastPublishTimestamp)
	agg.Publishers = append(agg.Publishers, st.Publishers...)
	for name, ss := range st.Subscriptions {
		cur, ok := agg.Subscriptions[name]
		if !ok {
			cur = ss
			cur.Consumers = append([]consumerStats{}, ss.Consumers...)
			agg.Subscriptions[name] = cur
			continue
		}
		cur.MsgRateOut += ss.MsgRateOut
		cur.MsgThroughputOut += ss.MsgThroughputOut
		cur.BytesOutCounter += ss.BytesOutCounter
		cur.MsgOutCounter += ss.MsgOutCounter
		cur.MsgBacklog += ss.MsgBacklog
		cur.MsgBacklogNoDelayed += ss.MsgBacklogNoDelayed
		cur.MsgDelayed += ss.MsgDelayed
		cur.BacklogSize += ss.BacklogSize
		cur.UnackedMessages += ss.UnackedMessages
		if ss.EarliestMsgPublishTimeInBacklog > 0 &&
			(cur.EarliestMsgPublishTimeInBacklog == 0 || ss.EarliestMsgPublishTimeInBacklog < cur.EarliestMsgPublishTimeInBacklog) {
			cur.EarliestMsgPublishTimeInBacklog = ss.EarliestMsgPublishTimeInBacklog
		}
		cur.Consumers = append(cur.Consumers, ss.Consumers...)
		agg.Subscriptions[name] = cur
	}
}

func (a *admin) dedupStatus(tn topicName) string {
	if a.s.dedupEnabled(tn) {
		return "Enabled"
	}
	return "Disabled"
}

// collectStats snapshots one stored topic's stats. Counters are exact;
// rates come from rateSampler.
func (a *admin) collectStats(t *topic) *topicStats {
	dedup := a.dedupStatus(t.name)
	now := a.s.clock.Now()
	st := &topicStats{
		Publishers:          []publisherStats{},
		Subscriptions:       map[string]subStats{},
		Replication:         map[string]struct{}{},
		DeduplicationStatus: dedup,
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	st.MsgInCounter = int64(t.msgIn)
	st.BytesInCounter = int64(t.bytesIn)
	st.MsgRateIn = a.rates.rate(t, "msgIn", t.msgIn, now)
	st.MsgThroughputIn = a.rates.rate(t, "bytesIn", t.bytesIn, now)
	if st.MsgRateIn > 0 {
		st.AverageMsgSize = st.MsgThroughputIn / st.MsgRateIn
	}
	// storage: every stored entry; backlog size: from the slowest durable
	// cursor, as Pulsar estimates it.
	var total int64
	sizes := make([]int64, len(t.entries)+1) // cumulative bytes by entry index
	for i := range t.entries {
		total += int64(t.entries[i].size)
		sizes[i+1] = total
	}
	st.StorageSize = total
	if id, ok := t.lastID(); ok {
		st.LastPublishTimestamp = t.entries[id-t.first].publishTime
	}
	slowest := uint64(math.MaxUint64)
	for _, sub := range t.subs {
		if sub.durable && sub.ackedUpTo < slowest {
			slowest = sub.ackedUpTo
		}
	}
	if slowest != math.MaxUint64 {
		from := max(slowest, t.first) - t.first
		to := t.visible - t.first
		if from < to && to <= uint64(len(t.entries)) {
			st.BacklogSize = sizes[to] - sizes[from]
		}
	}

	prods := make([]*producer, 0, len(t.producers))
	for p := range t.producers {
		prods = append(prods, p)
	}
	sort.Slice(prods, func(i, j int) bool { return prods[i].since.Before(prods[j].since) })
	for _, p := range prods {
		ps := publisherStats{
			AccessMode:     accessModeName(p.mode),
			ProducerID:     int64(p.id),
			ProducerName:   p.name,
			Address:        p.c.remote,
			ConnectedSince: p.since.UTC().Format(time.RFC3339Nano),
			MsgInCounter:   int64(p.msgIn),
			BytesInCounter: int64(p.bytesIn),
			ClientVersion:  p.c.clientVersion,
			Metadata:       nonNilMap(p.metadata),
			MsgRateIn:      a.rates.rate(p, "msgIn", p.msgIn, now),
		}
		ps.MsgThroughputIn = a.rates.rate(p, "bytesIn", p.bytesIn, now)
		if ps.MsgRateIn > 0 {
			ps.AverageMsgSize = ps.MsgThroughputIn / ps.MsgRateIn
		}
		st.Publishers = append(st.Publishers, ps)
	}

	for name, sub := range t.subs {
		ss := a.subStats(sub, now)
		st.MsgOutCounter += ss.MsgOutCounter
		st.BytesOutCounter += ss.BytesOutCounter
		st.MsgRateOut += ss.MsgRateOut
		st.MsgThroughputOut += ss.MsgThroughputOut
		st.Subscriptions[name] = ss
	}
	return st
}

// nonNilMap makes an absent map an empty JSON object, as Pulsar shows it.
func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func accessModeName(m pb.ProducerAccessMode) string {
	return m.String()
}

// subStats builds one subscription's stats; caller holds t.mu.
func (a *admin) subStats(sub *subscription, now time.Time) subStats {
	t := sub.t
	ss := subStats{
		MsgOutCounter:   int64(sub.msgOut),
		BytesOutCounter: int64(sub.bytesOut),
		MsgRateOut:      a.rates.rate(sub, "msgOut", sub.msgOut, now),
		Type:            sub.typ.String(),
		IsDurable:       sub.durable,
		Consumers:       []consumerStats{},
	}
	ss.MsgThroughputOut = a.rates.rate(sub, "bytesOut", sub.bytesOut, now)
	nowMs := now.UnixMilli()
	for id := max(sub.ackedUpTo, t.first); id < t.visible; id++ {
		if _, ok := sub.acked[id]; ok {
			continue
		}
		e := &t.entries[id-t.first]
		if e.void() {
			continue
		}
		n := sub.unackedInEntry(id, e)
		ss.MsgBacklog += n
		ss.BacklogSize += int64(e.size)
		if ss.EarliestMsgPublishTimeInBacklog == 0 {
			ss.EarliestMsgPublishTimeInBacklog = e.publishTime
		}
		if t.deliverAt(id, e) > nowMs && sub.sharedDispatch() {
			ss.MsgDelayed += n
		}
	}
	ss.MsgBacklogNoDelayed = ss.MsgBacklog - ss.MsgDelayed
	unacked := map[*consumer]int64{}
	for id, c := range sub.pending {
		if e := t.entryAt(id); e != nil {
			unacked[c] += sub.unackedInEntry(id, e)
		}
	}
	if sub.active != nil {
		ss.ActiveConsumerName = sub.active.name
	}
	for _, c := range sub.consumers {
		cs := consumerStats{
			ConsumerName:     c.name,
			AvailablePermits: max(c.permits, 0),
			UnackedMessages:  unacked[c],
			MsgOutCounter:    int64(c.msgOut),
			MsgRateOut:       a.rates.rate(c, "msgOut", c.msgOut, now),
			Address:          c.c.remote,
			ConnectedSince:   c.since.UTC().Format(time.RFC3339Nano),
			ClientVersion:    c.c.clientVersion,
			Metadata:         nonNilMap(c.metadata),
		}
		ss.UnackedMessages += cs.UnackedMessages
		ss.Consumers = append(ss.Consumers, cs)
	}
	return ss
}

// --- internal stats ---

type internalStatsJSON struct {
	EntriesAddedCounter  int64                      `json:"entriesAddedCounter"`
	NumberOfEntries      int64                      `json:"numberOfEntries"`
	TotalSize            int64                      `json:"totalSize"`
	CurrentLedgerEntries int64                      `json:"currentLedgerEntries"`
	CurrentLedgerSize    int64                      `json:"currentLedgerSize"`
	LastConfirmedEntry   string                     `json:"lastConfirmedEntry"`
	State                string                     `json:"state"`
	Ledgers              []ledgerInfoJSON           `json:"ledgers"`
	Cursors              map[string]cursorStatsJSON `json:"cursors"`
}

type ledgerInfoJSON struct {
	LedgerID int64 `json:"ledgerId"`
	Entries  int64 `json:"entries"`
	Size     int64 `json:"size"`
}

type cursorStatsJSON struct {
	MarkDeletePosition          string `json:"markDeletePosition"`
	ReadPosition                string `json:"readPosition"`
	MessagesConsumedCounter     int64  `json:"messagesConsumedCounter"`
	IndividuallyDeletedMessages string `json:"individuallyDeletedMessages"`
	State                       string `json:"state"`
	Durable                     bool   `json:"isDurable"`
}

// position prints "ledger:entry" with entry -1 before the first entry.
func position(ledger, entry uint64) string {
	return strconv.FormatUint(ledger, 10) + ":" + strconv.FormatInt(int64(entry), 10)
}

func (a *admin) internalStats(w http.ResponseWriter, r *http.Request) error {
	tn, err := topicFromPath(r)
	if err != nil {
		return err
	}
	t, err := a.single(tn)
	if err != nil {
		return err
	}
	t.mu.Lock()
	var size int64
	for i := range t.entries {
		size += int64(t.entries[i].size)
	}
	is := internalStatsJSON{
		EntriesAddedCounter:  int64(t.next),
		NumberOfEntries:      int64(len(t.entries)),
		TotalSize:            size,
		CurrentLedgerEntries: int64(len(t.entries)),
		CurrentLedgerSize:    size,
		LastConfirmedEntry:   position(t.ledger, t.visible-1),
		State:                "LedgerOpened",
		Ledgers:              []ledgerInfoJSON{{LedgerID: int64(t.ledger), Entries: int64(len(t.entries)), Size: size}},
		Cursors:              map[string]cursorStatsJSON{},
	}
	for name, sub := range t.subs {
		is.Cursors[name] = cursorStatsJSON{
			MarkDeletePosition:          position(t.ledger, sub.ackedUpTo-1),
			ReadPosition:                position(t.ledger, sub.readPos),
			MessagesConsumedCounter:     int64(sub.msgOut),
			IndividuallyDeletedMessages: individuallyDeleted(t.ledger, sub.acked),
			State:                       "Open",
			Durable:                     sub.durable,
		}
	}
	t.mu.Unlock()
	writeJSON(w, http.StatusOK, is)
	return nil
}

// individuallyDeleted prints acknowledged entries above the mark-delete
// position as Pulsar's ranges, "[(L:a..L:b],...]" (open start, closed end).
func individuallyDeleted(ledger uint64, acked map[uint64]struct{}) string {
	ids := make([]uint64, 0, len(acked))
	for id := range acked {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	var b strings.Builder
	b.WriteByte('[')
	for i := 0; i < len(ids); {
		j := i
		for j+1 < len(ids) && ids[j+1] == ids[j]+1 {
			j++
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(" + position(ledger, ids[i]-1) + ".." + position(ledger, ids[j]) + "]")
		i = j + 1
	}
	b.WriteByte(']')
	return b.String()
}
