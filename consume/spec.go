package consume

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/pulsar-sidecar/pulsar-sidecar/tagfilter"
)

// Subscription types.
const (
	TypeShared    = "shared"     // any consumer gets any message (the default)
	TypeKeyShared = "key_shared" // messages of one key go to one Pulsar consumer, in order
)

// Initial positions of a new subscription on the primary cluster.
const (
	PositionLatest   = "latest"   // messages produced after registration (the default)
	PositionEarliest = "earliest" // every message the topic still holds
)

// Dedupe modes: which copies of a message a subscription drops within
// its dedup window (ADR 060, "Dedupe by idempotency key").
const (
	// DedupeUID drops copies that carry the same psc-uid (the default).
	DedupeUID = "uid"
	// DedupeKey also drops copies that carry the same (psc-app,
	// psc-idempotency-key) under different uids; messages without an
	// idempotency key are deduplicated by uid.
	DedupeKey = "key"
)

// Bounds on a subscription's settings.
const (
	MinAckTimeout        = time.Second
	MaxAckTimeout        = 12 * time.Hour
	MaxMaxDeliveries     = 1000
	MaxExpectedConsumers = 32
	MaxConsumerNameBytes = 128
)

// SubscriptionSpec is the body of PUT .../subscriptions/{subscription}. A
// PUT replaces the whole spec: omitted fields take their defaults.
type SubscriptionSpec struct {
	// TagFilter is a tagfilter expression; empty means every message.
	TagFilter string `json:"tagFilter"`
	// Type is "shared" (default) or "key_shared" (per-key order).
	Type string `json:"type,omitempty"`
	// AckTimeout is a Go duration (default Options.DefaultAckTimeout, 30s):
	// a message handed out and not acknowledged within it is delivered again.
	AckTimeout string `json:"ackTimeout,omitempty"`
	// MaxDeliveries is how often a message is handed out before it goes to
	// the dead-letter topic (default Options.DefaultMaxDeliveries, 16).
	MaxDeliveries int `json:"maxDeliveries,omitempty"`
	// DeadLetterTopic is "topic" (same namespace) or "tenant/namespace/topic";
	// default "<topic>-<subscription>-DLQ" in the topic's namespace.
	DeadLetterTopic string `json:"deadLetterTopic,omitempty"`
	// ExpectedConsumers names the apps expected to consume (for the console).
	ExpectedConsumers []string `json:"expectedConsumers,omitempty"`
	// InitialPosition is where a new subscription starts on the primary
	// cluster: "latest" (default) or "earliest". Subscriptions on the
	// disaster-recovery cluster always start at the earliest message.
	InitialPosition string `json:"initialPosition,omitempty"`
	// Dedupe is "uid" (default: drop copies of one uid) or "key" (also drop
	// copies of one app and idempotency key under different uids).
	Dedupe string `json:"dedupe,omitempty"`
}

// Subscription is a registered subscription, as GET and PUT answer it.
type Subscription struct {
	Tenant            string    `json:"tenant"`
	Namespace         string    `json:"namespace"`
	Topic             string    `json:"topic"`
	Subscription      string    `json:"subscription"`
	TagFilter         string    `json:"tagFilter"` // canonical form (tagfilter.Filter.String)
	Type              string    `json:"type"`
	AckTimeout        string    `json:"ackTimeout"`
	MaxDeliveries     int       `json:"maxDeliveries"`
	DeadLetterTopic   string    `json:"deadLetterTopic"` // tenant/namespace/topic
	ExpectedConsumers []string  `json:"expectedConsumers,omitempty"`
	InitialPosition   string    `json:"initialPosition"`
	Dedupe            string    `json:"dedupe"` // DedupeUID or DedupeKey
	CreatedAt         time.Time `json:"createdAt"`
	UpdatedAt         time.Time `json:"updatedAt"`
	UpdatedBy         string    `json:"updatedBy,omitempty"`
	// Version goes up by one with every PUT.
	Version int64 `json:"version"`

	filter     *tagfilter.Filter
	ackTimeout time.Duration
	dlq        TopicRef
}

// Ref returns the subscription's name.
func (s *Subscription) Ref() SubscriptionRef {
	return SubscriptionRef{Tenant: s.Tenant, Namespace: s.Namespace, Topic: s.Topic, Subscription: s.Subscription}
}

// Filter returns the compiled tag filter.
func (s *Subscription) Filter() *tagfilter.Filter { return s.filter }

// AckTimeoutDuration returns the parsed ack timeout.
func (s *Subscription) AckTimeoutDuration() time.Duration { return s.ackTimeout }

// DeadLetterTopicRef returns the dead-letter topic.
func (s *Subscription) DeadLetterTopicRef() TopicRef { return s.dlq }

// Defaults fill what a spec leaves out.
type Defaults struct {
	AckTimeout    time.Duration // 30s
	MaxDeliveries int           // 16
}

func (d Defaults) withZeroesFilled() Defaults {
	if d.AckTimeout <= 0 {
		d.AckTimeout = 30 * time.Second
	}
	if d.MaxDeliveries <= 0 {
		d.MaxDeliveries = 16
	}
	return d
}

// Resolve validates spec for ref and returns the subscription it
// describes, with defaults filled in and the filter compiled. Errors are
// *Error values with a 400 status.
func (spec SubscriptionSpec) Resolve(ref SubscriptionRef, d Defaults) (*Subscription, error) {
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	d = d.withZeroesFilled()
	s := &Subscription{Tenant: ref.Tenant, Namespace: ref.Namespace, Topic: ref.Topic, Subscription: ref.Subscription}

	f, err := tagfilter.Compile(spec.TagFilter)
	if err != nil {
		return nil, filterError(err)
	}
	s.filter, s.TagFilter = f, f.String()

	switch strings.ToLower(spec.Type) {
	case "", TypeShared:
		s.Type = TypeShared
	case TypeKeyShared, "key-shared", "keyshared":
		s.Type = TypeKeyShared
	default:
		return nil, badRequest(CodeInvalidSubscriptionType, "type %q: want %q or %q", clip(spec.Type, 40), TypeShared, TypeKeyShared)
	}

	s.ackTimeout = d.AckTimeout
	if spec.AckTimeout != "" {
		v, err := time.ParseDuration(spec.AckTimeout)
		if err != nil || v < MinAckTimeout || v > MaxAckTimeout {
			return nil, badRequest(CodeInvalidAckTimeout, "ackTimeout %q: want a Go duration between %s and %s, such as \"30s\"",
				clip(spec.AckTimeout, 40), MinAckTimeout, MaxAckTimeout)
		}
		s.ackTimeout = v
	}
	s.AckTimeout = s.ackTimeout.String()

	s.MaxDeliveries = d.MaxDeliveries
	if spec.MaxDeliveries != 0 {
		if spec.MaxDeliveries < 1 || spec.MaxDeliveries > MaxMaxDeliveries {
			return nil, badRequest(CodeInvalidMaxDeliveries, "maxDeliveries %d: want 1 to %d", spec.MaxDeliveries, MaxMaxDeliveries)
		}
		s.MaxDeliveries = spec.MaxDeliveries
	}

	topic := ref.TopicRef()
	if spec.DeadLetterTopic == "" {
		s.dlq = defaultDeadLetterTopic(ref)
		if err := s.dlq.Validate(); err != nil {
			return nil, badRequest(CodeInvalidDeadLetterTopic, "the default dead-letter topic %s-%s-DLQ is longer than %d bytes: name one in deadLetterTopic",
				clip(ref.Topic, 40), clip(ref.Subscription, 40), MaxNameBytes)
		}
	} else {
		dlq, ok := parseTopicPath(spec.DeadLetterTopic, topic)
		if !ok {
			return nil, badRequest(CodeInvalidDeadLetterTopic, "deadLetterTopic %q: want \"topic\" or \"tenant/namespace/topic\"", clip(spec.DeadLetterTopic, 100))
		}
		if err := dlq.Validate(); err != nil {
			return nil, badRequest(CodeInvalidDeadLetterTopic, "deadLetterTopic: %s", AsError(err).Message)
		}
		if dlq == topic {
			return nil, badRequest(CodeInvalidDeadLetterTopic, "deadLetterTopic must not be the subscription's own topic")
		}
		s.dlq = dlq
	}
	s.DeadLetterTopic = s.dlq.Path()

	if len(spec.ExpectedConsumers) > MaxExpectedConsumers {
		return nil, badRequest(CodeInvalidExpectedConsumers, "expectedConsumers has %d names, max %d", len(spec.ExpectedConsumers), MaxExpectedConsumers)
	}
	for i, c := range spec.ExpectedConsumers {
		if c == "" || len(c) > MaxConsumerNameBytes || strings.TrimSpace(c) != c {
			return nil, badRequest(CodeInvalidExpectedConsumers, "expectedConsumers[%d] %q: want 1 to %d bytes without surrounding spaces", i, clip(c, 40), MaxConsumerNameBytes)
		}
	}
	if len(spec.ExpectedConsumers) > 0 {
		s.ExpectedConsumers = append([]string(nil), spec.ExpectedConsumers...)
	}

	switch strings.ToLower(spec.InitialPosition) {
	case "", PositionLatest:
		s.InitialPosition = PositionLatest
	case PositionEarliest:
		s.InitialPosition = PositionEarliest
	default:
		return nil, badRequest(CodeInvalidInitialPosition, "initialPosition %q: want %q or %q", clip(spec.InitialPosition, 40), PositionLatest, PositionEarliest)
	}

	switch strings.ToLower(spec.Dedupe) {
	case "", DedupeUID:
		s.Dedupe = DedupeUID
	case DedupeKey:
		s.Dedupe = DedupeKey
	default:
		return nil, badRequest(CodeInvalidDedupe, "dedupe %q: want %q or %q", clip(spec.Dedupe, 40), DedupeUID, DedupeKey)
	}
	return s, nil
}

func filterError(err error) *Error {
	e := &Error{Status: http.StatusBadRequest, Code: CodeInvalidTagFilter, Err: err}
	var pe *tagfilter.ParseError
	if errors.As(err, &pe) {
		e.Message = fmt.Sprintf("tagFilter %d:%d: %s", pe.Pos, pe.End, pe.Msg)
		e.Position = &Span{Start: pe.Pos, End: pe.End}
		return e
	}
	e.Message = "tagFilter: " + err.Error()
	return e
}

// compileStored rebuilds the unexported fields of a subscription read back
// from the store.
func (s *Subscription) compileStored() error {
	f, err := tagfilter.Compile(s.TagFilter)
	if err != nil {
		return fmt.Errorf("stored tag filter %q: %w", s.TagFilter, err)
	}
	s.filter = f
	if s.ackTimeout, err = time.ParseDuration(s.AckTimeout); err != nil {
		return fmt.Errorf("stored ack timeout %q: %w", s.AckTimeout, err)
	}
	dlq, ok := parseTopicPath(s.DeadLetterTopic, s.Ref().TopicRef())
	if !ok {
		return fmt.Errorf("stored dead-letter topic %q", s.DeadLetterTopic)
	}
	s.dlq = dlq
	if s.Dedupe == "" { // registered before the setting existed
		s.Dedupe = DedupeUID
	}
	return nil
}

// byKey reports whether copies are also dropped by app and idempotency key.
func (s *Subscription) byKey() bool { return s.Dedupe == DedupeKey }

// defaultDeadLetterTopic is <topic>-<subscription>-DLQ in the
// subscription's namespace.
func defaultDeadLetterTopic(ref SubscriptionRef) TopicRef {
	return TopicRef{Tenant: ref.Tenant, Namespace: ref.Namespace, Topic: ref.Topic + "-" + ref.Subscription + "-DLQ"}
}
