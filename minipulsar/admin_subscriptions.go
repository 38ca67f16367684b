package minipulsar

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"strconv"

	pb "github.com/pulsar-sidecar/pulsar-sidecar/minipulsar/internal/wirepb"
)

func (a *admin) routeSubscriptions(mux *http.ServeMux) {
	const topic = "/admin/v2/{domain}/{tenant}/{ns}/{topic}"
	const sub = topic + "/subscription/{sub}"
	mux.HandleFunc("GET "+topic+"/subscriptions", a.handle(a.listSubscriptions))
	mux.HandleFunc("PUT "+sub, a.handle(a.createSubscription))
	mux.HandleFunc("DELETE "+sub, a.handle(a.deleteSubscription))
	mux.HandleFunc("POST "+sub+"/resetcursor", a.handle(a.resetCursorToID))
	mux.HandleFunc("POST "+sub+"/resetcursor/{timestamp}", a.handle(a.resetCursorToTime))
	mux.HandleFunc("POST "+sub+"/skip/{n}", a.handle(a.skipMessages))
	mux.HandleFunc("POST "+sub+"/skip_all", a.handle(a.skipAll))
}

func (a *admin) listSubscriptions(w http.ResponseWriter, r *http.Request) error {
	tn, err := topicFromPath(r)
	if err != nil {
		return err
	}
	ts, _, err := a.resolveTopics(tn, false)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, subscriptionNames(ts))
	return nil
}

// cursorTarget is a position named by a MessageID body or the messageId
// query parameter.
type cursorTarget struct {
	earliest, latest bool
	ledger, entry    int64
	batchIndex       int32 // messages of the entry before it are skipped; -1 for none
	excluded         bool  // start after the message rather than at it
}

// messageIDBody is what pulsaradmin sends (utils.MessageID: ledgerId,
// entryId, partitionIndex) plus the ResetCursorData fields Pulsar accepts.
type messageIDBody struct {
	LedgerID       *int64 `json:"ledgerId"`
	EntryID        *int64 `json:"entryId"`
	PartitionIndex *int32 `json:"partitionIndex"`
	BatchIndex     *int32 `json:"batchIndex"`
	IsExcluded     bool   `json:"isExcluded"`
}

// parseCursorTarget reads a MessageID body. pulsaradmin's Earliest is
// {-1,-1}, its Latest {2^63-1, 2^63-1}. An empty or null body is def.
func parseCursorTarget(b []byte, def cursorTarget) (cursorTarget, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		return def, nil
	}
	var m messageIDBody
	if err := json.Unmarshal(b, &m); err != nil {
		return cursorTarget{}, httpErrf(http.StatusBadRequest, "bad message id: %v", err)
	}
	if m.LedgerID == nil || m.EntryID == nil {
		return cursorTarget{}, httpErr(http.StatusBadRequest, "bad message id: ledgerId and entryId are required")
	}
	ct := cursorTarget{ledger: *m.LedgerID, entry: *m.EntryID, batchIndex: -1, excluded: m.IsExcluded}
	if m.BatchIndex != nil && *m.BatchIndex >= 0 {
		ct.batchIndex = *m.BatchIndex
	}
	switch {
	case ct.ledger < 0:
		ct = cursorTarget{earliest: true, batchIndex: -1}
	case ct.ledger == math.MaxInt64:
		ct = cursorTarget{latest: true, batchIndex: -1}
	case ct.entry < 0:
		ct.entry, ct.excluded, ct.batchIndex = 0, false, -1
	}
	return ct, nil
}

// resolve turns a target into the id of the next entry to deliver on t;
// caller holds t.mu. Ledgers before the topic's are before its first entry,
// later ones after its last.
func (ct cursorTarget) resolve(t *topic) uint64 {
	var id uint64
	switch {
	case ct.earliest:
		id = t.first
	case ct.latest:
		id = t.next
	case uint64(ct.ledger) < t.ledger:
		id = t.first
	case uint64(ct.ledger) > t.ledger:
		id = t.next
	default:
		id = uint64(ct.entry)
		if ct.excluded {
			id++
		}
	}
	return min(max(id, t.first), t.next)
}

// skipInBatch marks the first batchIndex messages of the entry at id as
// acknowledged, for a cursor placed inside a batch; caller holds t.mu.
func (sub *subscription) skipInBatch(id uint64, batchIndex int32) {
	e := sub.t.entryAt(id)
	if batchIndex <= 0 || e == nil || e.numMsgs <= 1 || batchIndex >= e.numMsgs {
		return
	}
	set := fullAckSet(e.numMsgs)
	for i := int32(0); i < batchIndex; i++ {
		set[i/64] &^= 1 << (i % 64)
	}
	sub.partial[id] = set
}

func (a *admin) createSubscription(w http.ResponseWriter, r *http.Request) error {
	tn, err := topicFromPath(r)
	if err != nil {
		return err
	}
	name := subFromPath(r)
	if name == "" {
		return httpErr(http.StatusPreconditionFailed, "subscription name must not be empty")
	}
	b, err := readBody(r)
	if err != nil {
		return err
	}
	def := cursorTarget{latest: true, batchIndex: -1}
	switch q := r.URL.Query().Get("messageId"); q {
	case "", "latest":
	case "earliest":
		def = cursorTarget{earliest: true, batchIndex: -1}
	default:
		return httpErrf(http.StatusBadRequest, "messageId query parameter %q: want earliest or latest", q)
	}
	ct, err := parseCursorTarget(b, def)
	if err != nil {
		return err
	}
	ts, _, err := a.resolveTopics(tn, true)
	if err != nil {
		return err
	}
	for _, t := range ts {
		t.mu.Lock()
		_, exists := t.subs[name]
		t.mu.Unlock()
		if exists {
			return httpErr(http.StatusConflict, reasonSubExists)
		}
	}
	for _, t := range ts {
		t.mu.Lock()
		if t.deleted {
			t.mu.Unlock()
			return httpErr(http.StatusNotFound, reasonTopicNotFound)
		}
		if _, ok := t.subs[name]; !ok {
			sub := newSubscription(t, name, true, pb.CommandSubscribe_Exclusive)
			id := ct.resolve(t)
			sub.resetCursorQuiet(id)
			if !ct.earliest && !ct.latest && uint64(ct.ledger) == t.ledger && !ct.excluded {
				sub.skipInBatch(id, ct.batchIndex)
			}
			t.subs[name] = sub
			sub.persist()
		}
		t.mu.Unlock()
	}
	noContent(w)
	return nil
}

func (a *admin) deleteSubscription(w http.ResponseWriter, r *http.Request) error {
	tn, err := topicFromPath(r)
	if err != nil {
		return err
	}
	ts, _, err := a.resolveTopics(tn, false)
	if err != nil {
		return err
	}
	subs, err := subscriptionsOf(ts, subFromPath(r))
	if err != nil {
		return err
	}
	force := boolQuery(r, "force")
	if !force {
		for _, sub := range subs {
			sub.t.mu.Lock()
			busy := len(sub.consumers) > 0
			sub.t.mu.Unlock()
			if busy {
				return httpErr(http.StatusPreconditionFailed, reasonSubHasConsumers)
			}
		}
	}
	for _, sub := range subs {
		sub.t.mu.Lock()
		consumers := append([]*consumer(nil), sub.consumers...)
		sub.t.mu.Unlock()
		// Removed first, so consumers that reconnect find no subscription
		// and create a fresh one, as on Pulsar.
		sub.t.deleteSubscription(sub)
		for _, c := range consumers {
			c.closeByBroker()
		}
	}
	noContent(w)
	return nil
}

// subsFor resolves the subscription named in the path on every stored topic.
func (a *admin) subsFor(r *http.Request) ([]*subscription, bool, error) {
	tn, err := topicFromPath(r)
	if err != nil {
		return nil, false, err
	}
	ts, partitioned, err := a.resolveTopics(tn, false)
	if err != nil {
		return nil, false, err
	}
	subs, err := subscriptionsOf(ts, subFromPath(r))
	return subs, partitioned, err
}

// resetTo moves a subscription's cursor and disconnects its consumers, who
// reconnect and resume from the new position, as Pulsar does. As in
// handleSeek, the dispatcher's send lock is held and the consumers are
// detached under the same lock as the reset, so nothing from either position
// reaches them in between.
func resetTo(sub *subscription, pos func(t *topic) uint64, batchIndex int32) {
	t := sub.t
	sub.sendMu.Lock()
	defer sub.sendMu.Unlock()
	t.mu.Lock()
	sub.keepWhenEmpty = true
	consumers := append([]*consumer(nil), sub.consumers...)
	var changes []activeChange
	for _, c := range consumers {
		changes = append(changes, t.removeConsumerLocked(c)...)
	}
	id := pos(t)
	sub.resetCursor(id)
	if batchIndex > 0 {
		sub.skipInBatch(id, batchIndex)
		sub.persist()
	}
	t.mu.Unlock()
	sendActiveChanges(changes)
	for _, c := range consumers {
		c.sendClose()
	}
}

// resetCursorToTime moves the cursor to the first message published at or
// after the timestamp (ms); on a partitioned topic, on every partition.
func (a *admin) resetCursorToTime(w http.ResponseWriter, r *http.Request) error {
	ms, err := strconv.ParseInt(r.PathValue("timestamp"), 10, 64)
	if err != nil {
		return httpErrf(http.StatusBadRequest, "timestamp %q is not an integer (ms since epoch)", r.PathValue("timestamp"))
	}
	subs, _, err := a.subsFor(r)
	if err != nil {
		return err
	}
	for _, sub := range subs {
		resetTo(sub, func(t *topic) uint64 { return t.firstAtOrAfter(ms) }, -1)
	}
	noContent(w)
	return nil
}

// resetCursorToID moves the cursor to a message id (at it, or after it with
// isExcluded). Not allowed on a partitioned topic, as on Pulsar: reset a
// partition.
func (a *admin) resetCursorToID(w http.ResponseWriter, r *http.Request) error {
	b, err := readBody(r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return httpErr(http.StatusBadRequest, "missing message id body")
	}
	ct, err := parseCursorTarget(b, cursorTarget{})
	if err != nil {
		return err
	}
	subs, partitioned, err := a.subsFor(r)
	if err != nil {
		return err
	}
	if partitioned {
		return httpErr(http.StatusMethodNotAllowed, reasonNotOnPartitioned)
	}
	bi := int32(-1)
	if !ct.earliest && !ct.latest && !ct.excluded && uint64(ct.ledger) == subs[0].t.ledger {
		bi = ct.batchIndex
	}
	resetTo(subs[0], ct.resolve, bi)
	noContent(w)
	return nil
}

// skipMessages acknowledges the next n messages (not entries) of the
// backlog, in id order, whether dispatched or not. When n ends inside a
// batch, the batch's first still-unacknowledged messages are acknowledged
// one by one (a partial batch acknowledgement): consumers then get the rest
// of the batch only. Pulsar itself skips whole entries here.
func (a *admin) skipMessages(w http.ResponseWriter, r *http.Request) error {
	n, err := strconv.ParseInt(r.PathValue("n"), 10, 64)
	if err != nil || n < 0 {
		return httpErrf(http.StatusBadRequest, "number of messages to skip %q must be a non-negative integer", r.PathValue("n"))
	}
	subs, partitioned, err := a.subsFor(r)
	if err != nil {
		return err
	}
	if partitioned {
		return httpErr(http.StatusMethodNotAllowed, reasonNotOnPartitioned)
	}
	sub := subs[0]
	sub.t.mu.Lock()
	sub.skip(n)
	sub.t.mu.Unlock()
	noContent(w)
	return nil
}

// skip acknowledges the next n unacknowledged messages; caller holds t.mu.
func (sub *subscription) skip(n int64) {
	t := sub.t
	for id := max(sub.ackedUpTo, t.first); id < t.visible && n > 0; id++ {
		if sub.isAcked(id) {
			continue
		}
		e := t.entryAt(id)
		if e == nil || e.void() {
			continue
		}
		left := sub.unackedInEntry(id, e)
		if left <= n {
			n -= left
			sub.acked[id] = struct{}{}
			sub.forget(id)
			continue
		}
		set := sub.partial[id]
		if set == nil {
			set = fullAckSet(e.numMsgs)
		}
		for i := int32(0); i < e.numMsgs && int(i/64) < len(set) && n > 0; i++ {
			if bit := int64(1) << (i % 64); set[i/64]&bit != 0 {
				set[i/64] &^= bit
				n--
			}
		}
		sub.partial[id] = set
	}
	sub.advance()
	sub.persist()
	sub.notify()
}

// skipAll clears the backlog: every stored message is acknowledged; on a
// partitioned topic, on every partition.
func (a *admin) skipAll(w http.ResponseWriter, r *http.Request) error {
	subs, _, err := a.subsFor(r)
	if err != nil {
		return err
	}
	for _, sub := range subs {
		t := sub.t
		t.mu.Lock()
		if t.visible > 0 {
			sub.ackCumulative(t.visible-1, nil)
		}
		sub.persist()
		sub.notify()
		t.mu.Unlock()
	}
	noContent(w)
	return nil
}
