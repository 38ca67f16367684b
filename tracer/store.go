package tracer

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Store keeps events and answers the console's questions about them. Both
// implementations (SQLite and Elasticsearch) pass the same contract suite
// (package storetest), so callers can rely on the behaviour described here.
//
// Every list query returns events in ascending (Time, ID) order, one page at
// a time: pass Result.Next back as Page.Cursor for the following page; an
// empty Next means there is no more. Cursors are opaque and only valid for
// the query that produced them. All methods are safe for concurrent use.
type Store interface {
	Sink

	// ByUID returns the timeline of one message.
	ByUID(ctx context.Context, uid string, page Page) (Result, error)
	// ByMessageID returns the events that carry a broker message id.
	ByMessageID(ctx context.Context, messageID string, page Page) (Result, error)
	// ByKey returns the events of messages with a business key.
	ByKey(ctx context.Context, key string, page Page) (Result, error)
	// ByTopic returns the events of a topic within a time range.
	ByTopic(ctx context.Context, topic string, r TimeRange, page Page) (Result, error)
	// Search returns the events that match every field set in q (see
	// Query). It fails with ErrBadQuery for an unknown event type and with
	// ErrBadRange for an empty or inverted time range.
	Search(ctx context.Context, q Query, page Page) (Result, error)
	// SearchMessages answers one row per message (uid) with an event
	// matching q, in uid order, each with its status and events (see
	// MessageQuery, MessagePage). Page.Limit counts messages, at most
	// MaxMessagePageSize. It fails as Search does, and with ErrBadQuery
	// for an unknown status.
	SearchMessages(ctx context.Context, q MessageQuery, page Page) (MessagePage, error)
	// Consumption returns, for one message, the latest consumption state per
	// subscription, ordered by subscription name.
	Consumption(ctx context.Context, uid string) ([]Consumption, error)
	// DeleteBefore removes every event whose Time is before t and returns
	// how many were removed (-1 when the store cannot tell).
	DeleteBefore(ctx context.Context, t time.Time) (int64, error)
	// Close releases the store's resources.
	Close() error
}

// Errors returned by stores.
var (
	ErrBadCursor = errors.New("tracer: invalid cursor")
	ErrBadRange  = errors.New("tracer: invalid time range")
	ErrClosed    = errors.New("tracer: closed")
	ErrBadQuery  = errors.New("tracer: invalid query")
)

// Page limits.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// Page asks for one page of a list query.
type Page struct {
	Limit  int    // events per page; DefaultPageSize when 0, at most MaxPageSize
	Cursor string // Result.Next of the previous page, or "" for the first
}

func (p Page) limit() int {
	switch {
	case p.Limit <= 0:
		return DefaultPageSize
	case p.Limit > MaxPageSize:
		return MaxPageSize
	}
	return p.Limit
}

// Result is one page of events.
type Result struct {
	Events []Event
	Next   string // cursor of the next page; "" when this is the last
}

// TimeRange selects events with From <= Time < To. A zero From or To leaves
// that side open.
type TimeRange struct {
	From, To time.Time
}

func (r TimeRange) validate() error {
	if !r.From.IsZero() && !r.To.IsZero() && !r.From.Before(r.To) {
		return fmt.Errorf("%w: from %s is not before to %s", ErrBadRange, r.From.Format(time.RFC3339Nano), r.To.Format(time.RFC3339Nano))
	}
	return nil
}

// cursor is the keyset position after the last event of a page.
type cursor struct {
	TimeUS int64 // event time in microseconds since the Unix epoch
	ID     string
}

const cursorVersion = "1"

// encode returns the opaque form: base64url("1:<micros>:<id>").
func (c cursor) encode() string {
	raw := cursorVersion + ":" + strconv.FormatInt(c.TimeUS, 10) + ":" + c.ID
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// decodeCursor parses an opaque cursor; "" yields ok == false.
func decodeCursor(s string) (c cursor, ok bool, err error) {
	if s == "" {
		return cursor{}, false, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return cursor{}, false, fmt.Errorf("%w: %w", ErrBadCursor, err)
	}
	ver, rest, found := strings.Cut(string(raw), ":")
	if !found || ver != cursorVersion {
		return cursor{}, false, fmt.Errorf("%w: unknown version", ErrBadCursor)
	}
	ts, id, found := strings.Cut(rest, ":")
	if !found || id == "" || len(id) > 128 {
		return cursor{}, false, fmt.Errorf("%w: malformed", ErrBadCursor)
	}
	us, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return cursor{}, false, fmt.Errorf("%w: bad time", ErrBadCursor)
	}
	return cursor{TimeUS: us, ID: id}, true, nil
}

// pageResult trims a result fetched with limit+1 rows and sets Next.
func pageResult(events []Event, limit int) Result {
	if len(events) <= limit {
		return Result{Events: events}
	}
	events = events[:limit]
	last := events[limit-1]
	return Result{Events: events, Next: cursor{TimeUS: last.Time.UnixMicro(), ID: last.ID}.encode()}
}

// Consumption is the latest consumption state of a message for one
// subscription.
type Consumption struct {
	Subscription string
	State        Type // Delivered, Redelivered, Filtered, Acked, Nacked or DeadLettered
	Consumer     string
	Time         time.Time
	Attempt      int // redelivery count of the latest event
	EventID      string
	ClientIP     string // of the latest event, when the data plane knew it
	App          string // the consuming app of the latest event, when known
}

// ConsumptionTypes are the event types that change a subscription's state.
var ConsumptionTypes = []Type{Delivered, Redelivered, Filtered, Acked, Nacked, DeadLettered}

func isConsumption(t Type) bool {
	switch t {
	case Delivered, Redelivered, Filtered, Acked, Nacked, DeadLettered:
		return true
	}
	return false
}

// stateRank breaks ties between events of one subscription at the same
// microsecond: the later lifecycle step wins.
func stateRank(t Type) int {
	switch t {
	case Delivered:
		return 1
	case Redelivered:
		return 2
	case Nacked:
		return 3
	case Filtered:
		return 4
	case Acked:
		return 5
	case DeadLettered:
		return 6
	}
	return 0
}

// reduceConsumption picks the latest consumption event per subscription.
// Both stores fetch a message's consumption events and call it, so they
// agree on ties.
func reduceConsumption(events []Event) []Consumption {
	latest := map[string]Event{}
	for _, ev := range events {
		if !isConsumption(ev.Type) || ev.Subscription == "" {
			continue
		}
		cur, ok := latest[ev.Subscription]
		if !ok || later(ev, cur) {
			latest[ev.Subscription] = ev
		}
	}
	out := make([]Consumption, 0, len(latest))
	for _, ev := range latest {
		out = append(out, Consumption{
			Subscription: ev.Subscription,
			State:        ev.Type,
			Consumer:     ev.Consumer,
			Time:         ev.Time,
			Attempt:      ev.Attempt,
			EventID:      ev.ID,
			ClientIP:     ev.ClientIP,
			App:          ev.App,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Subscription < out[j].Subscription })
	return out
}

func later(a, b Event) bool {
	ua, ub := a.Time.UnixMicro(), b.Time.UnixMicro()
	if ua != ub {
		return ua > ub
	}
	if ra, rb := stateRank(a.Type), stateRank(b.Type); ra != rb {
		return ra > rb
	}
	return a.ID > b.ID
}

// maxConsumptionEvents caps how many consumption events of one message a
// store reads, latest first, to compute Consumption.
const maxConsumptionEvents = 10000
