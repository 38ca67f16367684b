package minipulsar

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	pb "github.com/pulsar-sidecar/pulsar-sidecar/minipulsar/internal/wirepb"
)

func (a *admin) routeMessages(mux *http.ServeMux) {
	const topic = "/admin/v2/{domain}/{tenant}/{ns}/{topic}"
	mux.HandleFunc("GET "+topic+"/lastMessageId", a.handle(a.lastMessageID))
	mux.HandleFunc("GET "+topic+"/messageid/{timestamp}", a.handle(a.messageIDAtTime))
	mux.HandleFunc("GET "+topic+"/ledger/{ledger}/entry/{entry}", a.handle(a.messageByID))
	mux.HandleFunc("GET "+topic+"/subscription/{sub}/position/{pos}", a.handle(a.peek))
}

// messageIDJSON is Pulsar's MessageId JSON (pulsaradmin's utils.MessageID
// reads ledgerId, entryId and partitionIndex).
type messageIDJSON struct {
	LedgerID       int64 `json:"ledgerId"`
	EntryID        int64 `json:"entryId"`
	PartitionIndex int32 `json:"partitionIndex"`
	BatchIndex     int32 `json:"batchIndex"`
}

// lastMessageID answers the id of the last stored message; entryId -1 on an
// empty topic. Not allowed on a partitioned topic, as on Pulsar.
func (a *admin) lastMessageID(w http.ResponseWriter, r *http.Request) error {
	tn, err := topicFromPath(r)
	if err != nil {
		return err
	}
	t, err := a.single(tn)
	if err != nil {
		return err
	}
	t.mu.Lock()
	mid := t.lastMessageID()
	t.mu.Unlock()
	writeJSON(w, http.StatusOK, messageIDJSON{
		LedgerID:       int64(mid.GetLedgerId()),
		EntryID:        int64(mid.GetEntryId()),
		PartitionIndex: mid.GetPartition(),
		BatchIndex:     mid.GetBatchIndex(),
	})
	return nil
}

// messageIDAtTime answers the id of the first message published at or after
// the timestamp (ms); 404 when there is none.
func (a *admin) messageIDAtTime(w http.ResponseWriter, r *http.Request) error {
	ms, err := strconv.ParseInt(r.PathValue("timestamp"), 10, 64)
	if err != nil {
		return httpErrf(http.StatusBadRequest, "timestamp %q is not an integer (ms since epoch)", r.PathValue("timestamp"))
	}
	tn, err := topicFromPath(r)
	if err != nil {
		return err
	}
	t, err := a.single(tn)
	if err != nil {
		return err
	}
	t.mu.Lock()
	id := t.firstAtOrAfter(ms)
	ok := id < t.visible
	ledger, part := t.ledger, t.part
	t.mu.Unlock()
	if !ok {
		return httpErr(http.StatusNotFound, reasonMessageNotFound)
	}
	writeJSON(w, http.StatusOK, messageIDJSON{LedgerID: int64(ledger), EntryID: int64(id), PartitionIndex: int32(part), BatchIndex: -1})
	return nil
}

// messageByID returns the entry at ledger/entry. On a partitioned topic the
// partition owning the ledger answers.
func (a *admin) messageByID(w http.ResponseWriter, r *http.Request) error {
	ledger, err := strconv.ParseInt(r.PathValue("ledger"), 10, 64)
	if err != nil || ledger < 0 {
		return httpErrf(http.StatusBadRequest, "ledger id %q must be a non-negative integer", r.PathValue("ledger"))
	}
	entryID, err := strconv.ParseInt(r.PathValue("entry"), 10, 64)
	if err != nil || entryID < 0 {
		return httpErrf(http.StatusBadRequest, "entry id %q must be a non-negative integer", r.PathValue("entry"))
	}
	tn, err := topicFromPath(r)
	if err != nil {
		return err
	}
	ts, _, err := a.resolveTopics(tn, false)
	if err != nil {
		return err
	}
	for _, t := range ts {
		if t.ledger != uint64(ledger) {
			continue
		}
		t.mu.Lock()
		var data []byte
		if e := t.entryAt(uint64(entryID)); e != nil && uint64(entryID) < t.visible {
			data, _ = t.entryBytes(uint64(entryID), e)
		}
		t.mu.Unlock()
		if data == nil {
			break
		}
		return writeEntry(w, t, uint64(entryID), data)
	}
	return httpErrf(http.StatusNotFound, "%s: %d:%d", reasonMessageNotFound, ledger, entryID)
}

// peek returns the pos-th (1-based) unacknowledged entry of a subscription's
// backlog. Like Pulsar, positions count entries, not messages: a batch comes
// whole (pulsaradmin's PeekMessages splits it and counts its messages).
// Messages of a partially acknowledged batch are all returned.
func (a *admin) peek(w http.ResponseWriter, r *http.Request) error {
	pos, err := strconv.ParseInt(r.PathValue("pos"), 10, 64)
	if err != nil || pos < 1 {
		return httpErrf(http.StatusBadRequest, "message position %q must be an integer of at least 1", r.PathValue("pos"))
	}
	subs, partitioned, err := a.subsFor(r)
	if err != nil {
		return err
	}
	if partitioned {
		return httpErr(http.StatusMethodNotAllowed, reasonNotOnPartitioned)
	}
	sub := subs[0]
	t := sub.t
	t.mu.Lock()
	var (
		data []byte
		id   uint64
	)
	for i := max(sub.ackedUpTo, t.first); i < t.visible; i++ {
		e := t.entryAt(i)
		if e == nil || e.void() || sub.isAcked(i) {
			continue
		}
		if pos--; pos == 0 {
			data, _ = t.entryBytes(i, e)
			id = i
			break
		}
	}
	t.mu.Unlock()
	if data == nil {
		return httpErr(http.StatusNotFound, reasonMessageNotFound)
	}
	return writeEntry(w, t, id, data)
}

// pulsarTime formats ms since epoch as Pulsar's DateFormatter does.
func pulsarTime(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000-0700")
}

// writeEntry answers one stored entry as Pulsar does: the uncompressed body
// (a whole batch, in batch format, for a batch entry) and its metadata in
// X-Pulsar-* headers.
func writeEntry(w http.ResponseWriter, t *topic, id uint64, data []byte) error {
	d, err := decodeStoredEntry(data)
	if err != nil {
		return &apiError{status: http.StatusInternalServerError, reason: reasonInternal, err: err}
	}
	md := d.md
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Pulsar-Message-ID", strconv.FormatUint(t.ledger, 10)+":"+strconv.FormatUint(id, 10))
	h.Set("X-Pulsar-publish-time", pulsarTime(int64(md.GetPublishTime())))
	if et := md.GetEventTime(); et > 0 {
		h.Set("X-Pulsar-event-time", pulsarTime(int64(et)))
	}
	if at := md.GetDeliverAtTime(); at > 0 {
		h.Set("X-Pulsar-deliver-at-time", pulsarTime(at))
	}
	h.Set("X-Pulsar-producer-name", md.GetProducerName())
	h.Set("X-Pulsar-sequence-id", strconv.FormatUint(md.GetSequenceId(), 10))
	if md.PartitionKey != nil {
		h.Set("X-Pulsar-partition-key", md.GetPartitionKey())
	}
	if len(md.GetOrderingKey()) > 0 {
		h.Set("X-Pulsar-Base64-ordering-key", base64.StdEncoding.EncodeToString(md.GetOrderingKey()))
	}
	if c := md.GetCompression(); c != pb.CompressionType_NONE {
		h.Set("X-Pulsar-compression", c.String())
		h.Set("X-Pulsar-uncompressed-size", strconv.FormatUint(uint64(md.GetUncompressedSize()), 10))
	}
	if md.GetNullValue() {
		h.Set("X-Pulsar-null-value", "true")
	}
	if md.NumMessagesInBatch != nil {
		h.Set("X-Pulsar-num-batch-message", strconv.Itoa(int(md.GetNumMessagesInBatch())))
	}
	h.Set("X-Pulsar-batch-size", strconv.Itoa(d.storedBody))
	if props := md.GetProperties(); len(props) > 0 {
		b, err := json.Marshal(properties(props))
		if err == nil {
			h.Set("X-Pulsar-PROPERTY", string(b))
		}
	}
	h.Set("Content-Length", strconv.Itoa(len(d.body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(d.body) //nolint:gosec // a message's bytes as stored, served as octet-stream with nosniff (as Pulsar's admin API)
	return nil
}
