package proxy

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/google/uuid"
)

// NewUID returns a new sidecar message id: a UUIDv7 (RFC 9562) in its
// canonical 36-character form. UUIDv7 ids sort by creation time (to the
// millisecond, then by a per-process counter), so stores can index them
// well and a human can tell roughly when a message was accepted.
func NewUID() string {
	return uuid.Must(uuid.NewV7()).String()
}

// FormatMessageID renders a Pulsar message id as
// "ledgerId:entryId:partition:batchIndex", e.g. "12:3:0:0". The partition
// is the client's partition index (0 for a non-partitioned topic, where
// Pulsar's admin tools print -1); batchIndex is the message's position in
// its batch. A consumer's msg.ID() formats to the same string as the
// producer's. The form is stable and ParseMessageID reads it back.
func FormatMessageID(id pulsar.MessageID) string {
	if id == nil {
		return ""
	}
	var b []byte
	b = strconv.AppendInt(b, id.LedgerID(), 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, id.EntryID(), 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(id.PartitionIdx()), 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(id.BatchIdx()), 10)
	return string(b)
}

// MessageIDParts is a parsed message id string.
type MessageIDParts struct {
	LedgerID, EntryID   int64
	Partition, BatchIdx int32
}

// ParseMessageID reads the form written by FormatMessageID.
func ParseMessageID(s string) (MessageIDParts, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 4 {
		return MessageIDParts{}, fmt.Errorf("message id %q: want ledgerId:entryId:partition:batchIndex", s)
	}
	var p MessageIDParts
	var err error
	if p.LedgerID, err = strconv.ParseInt(parts[0], 10, 64); err != nil {
		return p, fmt.Errorf("message id %q: ledger: %w", s, err)
	}
	if p.EntryID, err = strconv.ParseInt(parts[1], 10, 64); err != nil {
		return p, fmt.Errorf("message id %q: entry: %w", s, err)
	}
	n, err := strconv.ParseInt(parts[2], 10, 32)
	if err != nil {
		return p, fmt.Errorf("message id %q: partition: %w", s, err)
	}
	p.Partition = int32(n)
	if n, err = strconv.ParseInt(parts[3], 10, 32); err != nil {
		return p, fmt.Errorf("message id %q: batch index: %w", s, err)
	}
	p.BatchIdx = int32(n)
	return p, nil
}
