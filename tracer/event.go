package tracer

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Type names a step in a message's life. The string values are stable:
// they are stored in the trace stores and shown by the console.
type Type string

// The lifecycle steps. Produce side first, then delay, then consume side.
const (
	Accepted     Type = "accepted"      // the sidecar took the message from an HTTP producer
	Persisted    Type = "persisted"     // a broker holds it (Cluster, MessageID set)
	Retried      Type = "retried"       // a produce attempt failed and is being retried (Attempt set)
	FailedOver   Type = "failed_over"   // written to the disaster-recovery cluster instead
	Spooled      Type = "spooled"       // written to the local spool because no cluster took it
	Replayed     Type = "replayed"      // moved from the local spool to a cluster
	Scheduled    Type = "scheduled"     // held for delayed delivery
	Fired        Type = "fired"         // a delayed message became due and was re-published
	Cancelled    Type = "cancelled"     // a delayed message was cancelled before it fired
	Delivered    Type = "delivered"     // handed to an HTTP consumer (Subscription, Consumer set)
	Filtered     Type = "filtered"      // skipped for a subscription by its tag filter
	Acked        Type = "acked"         // acknowledged by the consumer
	Nacked       Type = "nacked"        // negatively acknowledged by the consumer
	Redelivered  Type = "redelivered"   // handed out again (Attempt is the redelivery count)
	DeadLettered Type = "dead_lettered" // moved to the dead-letter topic
)

// Types lists every lifecycle step in lifecycle order.
var Types = []Type{
	Accepted, Persisted, Retried, FailedOver, Spooled, Replayed,
	Scheduled, Fired, Cancelled,
	Delivered, Filtered, Acked, Nacked, Redelivered, DeadLettered,
}

// CursorReset is an operation, not a step of one message's life: a
// subscription's cursor was reset from the console (issue 15). Its UID is
// the operation's id; Topic, Subscription, App (who asked) and Properties
// (resetTo) say what was done. It has no status rank.
const CursorReset Type = "cursor_reset"

// Valid reports whether t is one of the known lifecycle steps or
// operations (CursorReset).
func (t Type) Valid() bool {
	switch t {
	case CursorReset:
		return true
	case Accepted, Persisted, Retried, FailedOver, Spooled, Replayed,
		Scheduled, Fired, Cancelled,
		Delivered, Filtered, Acked, Nacked, Redelivered, DeadLettered:
		return true
	}
	return false
}

// Event is one step in the life of one message. Fields that do not apply to
// a step are left empty; only UID, Type and Time are required.
type Event struct {
	// ID identifies the event in every store. Leave it empty: the pipeline
	// and the stores fill it with ComputeID. See ComputeID for its rules.
	ID   string
	Type Type

	UID       string // the sidecar's message id, stable across failover, spool, replay and delay
	MessageID string // the broker's message id, when a broker holds the message
	Topic     string // full topic name, e.g. persistent://tenant/ns/topic
	Key       string // the business key
	Tags      []string
	App       string // the producing or consuming application
	ClientIP  string
	Node      string // the sidecar instance that saw the step
	Cluster   string // the Pulsar cluster involved, if any

	Subscription string // consume-side steps
	Consumer     string // consume-side steps

	Time    time.Time     // when the step happened
	Latency time.Duration // time the step took (e.g. produce round trip), or 0
	Error   string        // why a step failed, for retried, failed_over, spooled, nacked, dead_lettered
	Attempt int           // produce attempt number, or redelivery count on the consume side

	// Properties holds small extras (a delay level, a dead-letter topic...).
	// Keep it small: it is copied into every store.
	Properties map[string]string
}

// Errors returned for events that cannot be stored. They are permanent: a
// retry will not help.
var (
	ErrMissingUID  = errors.New("tracer: event has no uid")
	ErrUnknownType = errors.New("tracer: unknown event type")
	ErrMissingTime = errors.New("tracer: event has no time")
)

// Validate reports why an event cannot be stored, or nil.
func (ev *Event) Validate() error {
	switch {
	case ev.UID == "":
		return ErrMissingUID
	case !ev.Type.Valid():
		return fmt.Errorf("%w: %q", ErrUnknownType, ev.Type)
	case ev.Time.IsZero():
		return ErrMissingTime
	}
	return nil
}

// ComputeID returns the event's deterministic id: the first 128 bits of a
// SHA-256, in hex (32 characters), over the fields that tell one step of one
// message from another:
//
//	type, uid, message id, cluster, node, subscription, consumer, attempt,
//	time in microseconds since the Unix epoch
//
// Each string is length-prefixed, so ("ab","c") and ("a","bc") differ.
//
// The same event recorded again (a replay from the outbox, a retried bulk
// request) gets the same id, so the stores keep one copy. Two distinct events
// differ in at least one of these fields: two deliveries to the same consumer
// differ in their redelivery count or time, two produce attempts in their
// attempt number. Descriptive fields (topic, key, tags, latency, error,
// properties) are deliberately left out, so correcting them cannot make a
// duplicate. With 128 bits, an accidental collision needs about 2^64 events.
//
// Time is taken at microsecond precision because that is what the stores
// keep; an event read back from a store has the same id.
func ComputeID(ev *Event) string {
	var scratch [256]byte
	b := scratch[:0]
	for _, s := range [...]string{string(ev.Type), ev.UID, ev.MessageID, ev.Cluster, ev.Node, ev.Subscription, ev.Consumer} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendVarint(b, int64(ev.Attempt))
	b = binary.AppendVarint(b, ev.Time.UnixMicro())
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// ensureID fills ev.ID when it is empty.
func ensureID(ev *Event) {
	if ev.ID == "" {
		ev.ID = ComputeID(ev)
	}
}

// Recorder is what the data plane calls for every lifecycle step.
//
// Record must not block, do I/O or fail visibly: it is called on the produce
// and consume paths, which a slow or broken trace store must never slow down.
// An implementation that cannot keep an event counts it as dropped (see
// Pipeline.Stats). Record may be called from many goroutines at once.
// The Recorder takes ownership of ev's Tags and Properties: callers must not
// change them after the call.
type Recorder interface {
	Record(ev Event)
}

// Nop is a Recorder that discards every event.
type Nop struct{}

// Record does nothing.
func (Nop) Record(Event) {}

// LogRecorder writes each event as one structured log line. It is meant for
// development and debugging; slog handlers may block on their writer, so do
// not use it on a busy production data plane.
type LogRecorder struct {
	Logger *slog.Logger // slog.Default() when nil
	Level  slog.Level   // slog.LevelInfo by default
}

// Record logs ev.
func (r LogRecorder) Record(ev Event) {
	l := r.Logger
	if l == nil {
		l = slog.Default()
	}
	if !l.Enabled(context.Background(), r.Level) {
		return // nothing to build when the level is off: this runs per message
	}
	attrs := make([]slog.Attr, 0, 16)
	attrs = append(attrs, slog.String("type", string(ev.Type)), slog.String("uid", ev.UID))
	add := func(k, v string) {
		if v != "" {
			attrs = append(attrs, slog.String(k, v))
		}
	}
	add("message_id", ev.MessageID)
	add("topic", ev.Topic)
	add("key", ev.Key)
	if len(ev.Tags) > 0 {
		attrs = append(attrs, slog.Any("tags", ev.Tags))
	}
	add("app", ev.App)
	add("client_ip", ev.ClientIP)
	add("node", ev.Node)
	add("cluster", ev.Cluster)
	add("subscription", ev.Subscription)
	add("consumer", ev.Consumer)
	if !ev.Time.IsZero() {
		attrs = append(attrs, slog.Time("time", ev.Time))
	}
	if ev.Latency != 0 {
		attrs = append(attrs, slog.Duration("latency", ev.Latency))
	}
	add("error", ev.Error)
	if ev.Attempt != 0 {
		attrs = append(attrs, slog.Int("attempt", ev.Attempt))
	}
	if len(ev.Properties) > 0 {
		attrs = append(attrs, slog.Any("properties", ev.Properties))
	}
	l.LogAttrs(context.Background(), r.Level, "trace event", attrs...)
}

var (
	_ Recorder = Nop{}
	_ Recorder = LogRecorder{}
)
