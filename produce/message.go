package produce

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/wire"
)

// Names of the message properties the sidecar sets on every Pulsar message,
// so that native consumers see them too (internal/wire is where they are
// written down). User properties may not start with ReservedPrefix.
const (
	ReservedPrefix = wire.ReservedPrefix

	PropUID            = wire.PropUID
	PropApp            = wire.PropApp
	PropTags           = wire.PropTags
	PropAcceptedAt     = wire.PropAcceptedAt
	PropIdempotencyKey = wire.PropIdempotencyKey
	PropDuplicateRisk  = wire.PropDuplicateRisk
	PropRetryPlan      = wire.PropRetryPlan
)

// AcceptedAtLayout formats PropAcceptedAt.
const AcceptedAtLayout = wire.TimeLayout

// Status says where a message is. It is part of the API.
type Status string

// Message statuses. PRODUCT.md also names failover and spooled, which
// later layers (retry, disaster recovery, spool) will report.
const (
	StatusPersisted Status = "persisted" // a broker holds it
	StatusScheduled Status = "scheduled" // a broker holds it for delayed delivery
	StatusFailover  Status = "failover"  // the disaster-recovery cluster holds it
	StatusSpooled   Status = "spooled"   // the local spool holds it
	StatusFailed    Status = "failed"    // not durable; only in non-2xx answers
)

// Durable reports whether the status means the message is safe.
func (s Status) Durable() bool {
	return s == StatusPersisted || s == StatusScheduled || s == StatusFailover || s == StatusSpooled
}

// Message is one accepted message on its way to a broker. Decoders fill it
// from a request; the produce path adds UID, App and AcceptedAt.
type Message struct {
	UID        string
	App        string
	Topic      string // full name: persistent://tenant/namespace/topic
	Key        string
	Tags       []string // sorted and deduplicated
	Properties map[string]string
	EventTime  time.Time // zero: none; Pulsar keeps milliseconds
	Payload    []byte

	// Delay, as given: at most one is set (see DueAt).
	DeliverAfter time.Duration
	DeliverAt    time.Time
	DelayLevel   string

	// RetryPlan is the validated plan in its normal form ("1s,5s,30s,2m");
	// empty: none. A nack with retry follows it (delay.NextRetry).
	RetryPlan string

	IdempotencyKey string
	AcceptedAt     time.Time
	// DuplicateRisk is set when the idempotency store could not be asked:
	// the message is produced anyway and flagged (ADR 030).
	DuplicateRisk bool
}

// Delayed reports whether the message asks for delayed delivery.
func (m *Message) Delayed() bool {
	return m.DeliverAfter > 0 || !m.DeliverAt.IsZero() || m.DelayLevel != ""
}

// DueAt is when a delayed message becomes visible: DeliverAt, or
// AcceptedAt plus DeliverAfter; zero when the message is not delayed by time.
func (m *Message) DueAt() time.Time {
	switch {
	case !m.DeliverAt.IsZero():
		return m.DeliverAt
	case m.DeliverAfter > 0:
		return m.AcceptedAt.Add(m.DeliverAfter)
	}
	return time.Time{}
}

// PulsarProperties returns the user properties plus the psc-* ones.
func (m *Message) PulsarProperties() map[string]string {
	p := make(map[string]string, len(m.Properties)+6)
	maps.Copy(p, m.Properties)
	p[PropUID] = m.UID
	p[PropApp] = m.App
	p[PropAcceptedAt] = m.AcceptedAt.UTC().Format(AcceptedAtLayout)
	if len(m.Tags) > 0 {
		p[PropTags] = strings.Join(m.Tags, ",")
	}
	if m.IdempotencyKey != "" {
		p[PropIdempotencyKey] = m.IdempotencyKey
	}
	if m.DuplicateRisk {
		p[PropDuplicateRisk] = "true"
	}
	if m.RetryPlan != "" {
		p[PropRetryPlan] = m.RetryPlan
	}
	return p
}

// NormalizeTags sorts and deduplicates tags in place.
func NormalizeTags(tags []string) []string {
	if len(tags) == 0 {
		return nil
	}
	slices.Sort(tags)
	return slices.Compact(tags)
}

// Fingerprint is the SHA-256, in hex, of everything that makes two
// messages the same request: topic, key, tags, properties, event time,
// delay as given, payload and retry plan. An idempotency key reused with another
// fingerprint is a conflict. A relative delay counts as given, so the retry
// of a request with deliverAfter matches.
func (m *Message) Fingerprint() string {
	bp := hashBufs.Get().(*[]byte)
	b := m.appendFingerprintInput((*bp)[:0])
	sum := sha256.Sum256(b)
	*bp = b
	hashBufs.Put(bp)
	var out [2 * sha256.Size]byte
	hex.Encode(out[:], sum[:])
	return string(out[:])
}

// hashBufs are the buffers Fingerprint and KeyedUID hash: one Write of
// the whole input instead of a call (and a conversion) per field.
var hashBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// appendFingerprintInput appends what Fingerprint hashes. The bytes must
// never change: stored records hold fingerprints, and a retry after an
// upgrade must still match its first attempt (TestFingerprintIsStable).
func (m *Message) appendFingerprintInput(b []byte) []byte {
	str := func(b []byte, s string) []byte {
		b = binary.AppendUvarint(b, uint64(len(s)))
		return append(b, s...)
	}
	b = str(b, "psc-fingerprint-v1")
	b = str(b, m.Topic)
	b = str(b, m.Key)
	b = binary.AppendVarint(b, int64(len(m.Tags)))
	for _, t := range m.Tags {
		b = str(b, t)
	}
	b = binary.AppendVarint(b, int64(len(m.Properties)))
	if len(m.Properties) > 0 {
		for _, k := range slices.Sorted(maps.Keys(m.Properties)) {
			b = str(b, k)
			b = str(b, m.Properties[k])
		}
	}
	b = binary.AppendVarint(b, timeMillis(m.EventTime))
	b = binary.AppendVarint(b, int64(m.DeliverAfter))
	b = binary.AppendVarint(b, timeMillis(m.DeliverAt))
	b = str(b, m.DelayLevel)
	b = binary.AppendVarint(b, int64(len(m.Payload)))
	b = append(b, m.Payload...)
	// Last and only when set, so fingerprints stored before retry plans
	// existed still match the same requests.
	if m.RetryPlan != "" {
		b = str(b, m.RetryPlan)
	}
	return b
}

func timeMillis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}
