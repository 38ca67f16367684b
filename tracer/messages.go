package tracer

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
)

// MessageQuery selects messages for Store.SearchMessages: a message
// matches when one of its events matches Query (as Store.Search) and, when
// Statuses is set, its status (StatusOf over all its events) is one of
// them.
type MessageQuery struct {
	Query
	Statuses []Status
}

// MessageRow is one message of a message search: its uid, its status and
// all its events in (Time, ID) order, at most MaxMessageEvents of them
// (the earliest).
type MessageRow struct {
	UID    string
	Status Status
	Events []Event
}

// MessagePage is one page of a message search, rows in ascending uid order
// (sidecar uids are UUIDv7: the order they were accepted in). Pass Next
// back as Page.Cursor; "" means there is no more. A page may hold fewer
// rows than asked while Next is set: with a status filter each page reads
// at most a bounded number of candidate messages.
type MessagePage struct {
	Rows []MessageRow
	Next string
}

// Limits of a message search.
const (
	// MaxMessagePageSize caps Page.Limit of SearchMessages: every row
	// carries the message's events.
	MaxMessagePageSize = 200
	// MaxMessageEvents caps the events of one row.
	MaxMessageEvents = 1000
	// messageRounds bounds the candidate batches one page reads when a
	// status filter rejects candidates.
	messageRounds = 8
	// maxCandidates is the largest candidate batch.
	maxCandidates = 1000
)

func (q *MessageQuery) validate() error {
	for _, s := range q.Statuses {
		if !s.Valid() {
			return fmt.Errorf("%w: unknown status %q", ErrBadQuery, s)
		}
	}
	return q.Query.validate()
}

// messageSource is what a store gives searchMessages.
type messageSource interface {
	// uidsAfter lists up to n distinct uids, ascending, greater than
	// after, of the events matching q.
	uidsAfter(ctx context.Context, q *Query, after string, n int) ([]string, error)
	// eventsOf returns the events of each uid in (Time, ID) order, at most
	// MaxMessageEvents per uid.
	eventsOf(ctx context.Context, uids []string) (map[string][]Event, error)
}

const messageCursorPrefix = "m1:"

func encodeMessageCursor(uid string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(messageCursorPrefix + uid))
}

func decodeMessageCursor(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadCursor, err)
	}
	uid, ok := strings.CutPrefix(string(raw), messageCursorPrefix)
	if !ok || uid == "" || len(uid) > 256 {
		return "", fmt.Errorf("%w: not a message search cursor", ErrBadCursor)
	}
	return uid, nil
}

// searchMessages is SearchMessages over a store's two primitives, so that
// every store pages, filters and caps alike.
func searchMessages(ctx context.Context, src messageSource, q MessageQuery, page Page) (MessagePage, error) {
	if err := q.validate(); err != nil {
		return MessagePage{}, err
	}
	after, err := decodeMessageCursor(page.Cursor)
	if err != nil {
		return MessagePage{}, err
	}
	limit := min(page.limit(), MaxMessagePageSize)
	// The first batch is what a page needs when every candidate passes
	// (the usual case: most messages are consumed); once a status filter
	// has rejected some, later batches are larger.
	batch := limit + 1
	want := map[Status]bool{}
	for _, s := range q.Statuses {
		want[s] = true
	}
	var out MessagePage
	for range messageRounds {
		uids, err := src.uidsAfter(ctx, &q.Query, after, batch)
		if err != nil {
			return MessagePage{}, err
		}
		if len(uids) == 0 {
			return out, nil
		}
		evs, err := src.eventsOf(ctx, uids)
		if err != nil {
			return MessagePage{}, err
		}
		for _, uid := range uids {
			if len(out.Rows) == limit {
				out.Next = encodeMessageCursor(out.Rows[limit-1].UID)
				return out, nil
			}
			after = uid
			row := MessageRow{UID: uid, Events: evs[uid], Status: StatusOf(evs[uid])}
			if len(want) > 0 && !want[row.Status] {
				continue
			}
			out.Rows = append(out.Rows, row)
		}
		if len(uids) < batch {
			return out, nil
		}
		if len(want) > 0 {
			batch = min(max(4*limit, 100), maxCandidates)
		}
	}
	out.Next = encodeMessageCursor(after) // the candidates this page may read are used up
	return out, nil
}

// groupByUID splits events (in (Time, ID) order) by uid, keeping at most
// MaxMessageEvents per uid.
func groupByUID(events []Event) map[string][]Event {
	out := map[string][]Event{}
	for _, ev := range events {
		if len(out[ev.UID]) < MaxMessageEvents {
			out[ev.UID] = append(out[ev.UID], ev)
		}
	}
	return out
}
