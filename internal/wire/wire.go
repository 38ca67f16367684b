// Package wire holds the sidecar's wire contract with Pulsar, written
// once: the names of the psc-* message properties every layer reads or
// writes, their time layout, the tag list format and the message id form
// the APIs answer with. The produce path, delayed delivery, the consume
// API and the console all use these; none keeps a copy.
package wire

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/apache/pulsar-client-go/pulsar"
)

// ReservedPrefix starts every property the sidecar sets; user properties
// may not start with it, so a request cannot forge one.
const ReservedPrefix = "psc-"

// Properties of every produced message.
const (
	PropUID            = "psc-uid"             // the sidecar's message id
	PropApp            = "psc-app"             // the producing app
	PropTags           = "psc-tags"            // tags, sorted, deduplicated, comma-joined; absent without tags
	PropAcceptedAt     = "psc-accepted-at"     // TimeLayout, when the sidecar accepted the request
	PropIdempotencyKey = "psc-idempotency-key" // the caller's idempotency key, when given
	PropDuplicateRisk  = "psc-duplicate-risk"  // "true" when the message may repeat an earlier copy (ADR 030)
	PropRetryPlan      = "psc-retry-plan"      // the retry plan in its normal form ("1s,5s,30s"), when given
)

// Properties of delayed delivery (ADR 040).
const (
	PropDelayTopic = "psc-delay-topic" // the real topic of a message waiting in a level topic
	PropDelayLevel = "psc-delay-level" // the level a message waited in ("30s")
	PropDelayDue   = "psc-delay-due"   // TimeLayout, when the message was (or is) due
	PropRetryStep  = "psc-retry-step"  // the retry step a redelivered copy is on
)

// TimeLayout formats the time properties: RFC 3339, UTC, milliseconds.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// ParseTags splits a PropTags value back into tags.
func ParseTags(v string) []string {
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// FormatMessageID renders a Pulsar message id as
// "ledgerId:entryId:partition:batchIndex", e.g. "12:3:0:0". The partition
// is the client's partition index (0 for a non-partitioned topic, where
// Pulsar's admin tools print -1); batchIndex is the message's position in
// its batch. A consumer's msg.ID() formats to the same string as the
// producer's. ParseMessageID reads it back.
func FormatMessageID(id pulsar.MessageID) string {
	if id == nil {
		return ""
	}
	return FormatIDParts(id.LedgerID(), id.EntryID(), id.PartitionIdx(), id.BatchIdx())
}

// FormatIDParts renders the parts of a message id as FormatMessageID does.
func FormatIDParts(ledger, entry int64, partition, batch int32) string {
	var buf [64]byte // four numbers and three colons fit: one allocation, the string
	b := buf[:0]
	b = strconv.AppendInt(b, ledger, 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, entry, 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(partition), 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(batch), 10)
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
