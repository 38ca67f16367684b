package tracer

import "fmt"

// Query selects events for Store.Search. Every field that is set must
// match; a zero Query matches every event. Strings match exactly (no
// prefixes, no case folding), as keyword fields do in Elasticsearch.
type Query struct {
	Topic        string    // full topic name, e.g. persistent://tenant/ns/topic
	Range        TimeRange // [From, To); either side may be open
	UID          string
	MessageID    string
	Key          string
	Tag          string // events whose Tags contain Tag
	App          string
	ClientIP     string
	Subscription string
	Types        []Type // events of any of these types (the console's "status")
}

// IsZero reports whether q selects every event.
func (q *Query) IsZero() bool {
	return q.Topic == "" && q.Range.From.IsZero() && q.Range.To.IsZero() && q.UID == "" && q.MessageID == "" &&
		q.Key == "" && q.Tag == "" && q.App == "" && q.ClientIP == "" && q.Subscription == "" && len(q.Types) == 0
}

func (q *Query) validate() error {
	for _, t := range q.Types {
		if !t.Valid() {
			return fmt.Errorf("%w: unknown event type %q", ErrBadQuery, t)
		}
	}
	return q.Range.validate()
}

// terms lists the exact-match fields of q that are set, as (stored field
// name, value) pairs in a fixed order. Both stores build their filters from
// it, so they cannot disagree on which fields a query has.
func (q *Query) terms() [][2]string {
	var out [][2]string
	for _, f := range [...][2]string{
		{"topic", q.Topic}, {"uid", q.UID}, {"message_id", q.MessageID}, {"key", q.Key},
		{"app", q.App}, {"client_ip", q.ClientIP}, {"subscription", q.Subscription},
	} {
		if f[1] != "" {
			out = append(out, f)
		}
	}
	return out
}
