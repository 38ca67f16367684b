package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// messageEvents writes n messages on two topics: message i has uid
// "m-%03d" and a lifecycle that depends on i%4 (persisted, consumed,
// scheduled, dead_lettered), its events a second apart, the messages
// interleaved in time.
func messageEvents(t *testing.T, s tracer.Store, n int) {
	t.Helper()
	var evs []tracer.Event
	for i := range n {
		uid := fmt.Sprintf("m-%03d", i)
		topic := "persistent://billing/pay/orders"
		if i%2 == 1 {
			topic = "persistent://billing/pay/refunds"
		}
		steps := [][]tracer.Type{
			{tracer.Accepted, tracer.Persisted},
			{tracer.Accepted, tracer.Persisted, tracer.Delivered, tracer.Acked},
			{tracer.Accepted, tracer.Scheduled, tracer.Persisted},
			{tracer.Accepted, tracer.Persisted, tracer.Delivered, tracer.Nacked, tracer.DeadLettered},
		}[i%4]
		for j, typ := range steps {
			ev := tracer.Event{Type: typ, UID: uid, Topic: topic, Key: fmt.Sprintf("k-%d", i%3), App: "checkout",
				Tags: []string{"PAY_1001"}, Time: Base.Add(time.Duration(i)*time.Millisecond + time.Duration(j)*time.Second)}
			evs = append(evs, ev)
		}
	}
	write(t, s, evs...)
}

// allMessages reads every page of a message search.
func allMessages(t *testing.T, s tracer.Store, q tracer.MessageQuery, limit int) []tracer.MessageRow {
	t.Helper()
	var out []tracer.MessageRow
	page := tracer.Page{Limit: limit}
	for i := 0; ; i++ {
		require.Less(t, i, 1000, "pagination does not end")
		res, err := s.SearchMessages(ctx(t), q, page)
		require.NoError(t, err)
		require.LessOrEqual(t, len(res.Rows), limit)
		out = append(out, res.Rows...)
		if res.Next == "" {
			return out
		}
		page.Cursor = res.Next
	}
}

func uidsOf(rows []tracer.MessageRow) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.UID
	}
	return out
}

// searchMessages: one row per uid, in uid order, whole timelines and the
// lifecycle status, paged, filtered by event fields and by status.
func searchMessages(t *testing.T, s tracer.Store) {
	messageEvents(t, s, 40)
	var want []string
	for i := range 40 {
		want = append(want, fmt.Sprintf("m-%03d", i))
	}

	rows := allMessages(t, s, tracer.MessageQuery{Query: tracer.Query{App: "checkout"}}, 7)
	require.Equal(t, want, uidsOf(rows), "every message once, in uid order, across pages")
	for i, r := range rows {
		require.Equal(t, []tracer.Status{tracer.StatusPersisted, tracer.StatusConsumed, tracer.StatusScheduled,
			tracer.StatusDeadLettered}[i%4], r.Status, r.UID)
		require.Len(t, r.Events, []int{2, 4, 3, 5}[i%4], "the whole timeline of %s", r.UID)
		for j := 1; j < len(r.Events); j++ {
			require.True(t, r.Events[j-1].Time.Before(r.Events[j].Time), "time order")
			require.Equal(t, r.UID, r.Events[j].UID)
		}
	}

	// A row matches by any one event, and carries all its events: the
	// delivered events name only the consumed and dead-lettered messages.
	rows = allMessages(t, s, tracer.MessageQuery{Query: tracer.Query{Types: []tracer.Type{tracer.Delivered}}}, 100)
	require.Len(t, rows, 20)
	for _, r := range rows {
		require.Contains(t, []tracer.Status{tracer.StatusConsumed, tracer.StatusDeadLettered}, r.Status)
		require.GreaterOrEqual(t, len(r.Events), 4)
	}

	// Event fields and a time range: refunds (odd i) whose first event is in
	// the first 10 ms.
	rows = allMessages(t, s, tracer.MessageQuery{Query: tracer.Query{Topic: "persistent://billing/pay/refunds",
		Range: tracer.TimeRange{From: Base, To: Base.Add(10 * time.Millisecond)}}}, 3)
	require.Equal(t, []string{"m-001", "m-003", "m-005", "m-007", "m-009"}, uidsOf(rows))

	// Status filter, applied to the whole message, with small pages.
	rows = allMessages(t, s, tracer.MessageQuery{Query: tracer.Query{App: "checkout"},
		Statuses: []tracer.Status{tracer.StatusScheduled, tracer.StatusDeadLettered}}, 4)
	require.Len(t, rows, 20)
	for _, r := range rows {
		require.Contains(t, []tracer.Status{tracer.StatusScheduled, tracer.StatusDeadLettered}, r.Status)
	}
	rows = allMessages(t, s, tracer.MessageQuery{Query: tracer.Query{Key: "k-0"}, Statuses: []tracer.Status{tracer.StatusConsumed}}, 100)
	for _, r := range rows {
		require.Equal(t, tracer.StatusConsumed, r.Status)
	}
	require.Equal(t, []string{"m-009", "m-021", "m-033"}, uidsOf(rows), "i%4==1 and i%3==0")

	// By uid: exactly one row.
	rows = allMessages(t, s, tracer.MessageQuery{Query: tracer.Query{UID: "m-013"}}, 10)
	require.Equal(t, []string{"m-013"}, uidsOf(rows))

	// Nothing matches: no rows, no cursor.
	res, err := s.SearchMessages(ctx(t), tracer.MessageQuery{Query: tracer.Query{App: "nobody"}}, tracer.Page{})
	require.NoError(t, err)
	require.Empty(t, res.Rows)
	require.Empty(t, res.Next)

	// Bad input.
	_, err = s.SearchMessages(ctx(t), tracer.MessageQuery{Statuses: []tracer.Status{"bogus"}}, tracer.Page{})
	require.True(t, errors.Is(err, tracer.ErrBadQuery), "%v", err)
	_, err = s.SearchMessages(ctx(t), tracer.MessageQuery{Query: tracer.Query{App: "checkout"}}, tracer.Page{Cursor: "!!"})
	require.True(t, errors.Is(err, tracer.ErrBadCursor), "%v", err)
	ev, err := s.Search(ctx(t), tracer.Query{App: "checkout"}, tracer.Page{Limit: 1})
	require.NoError(t, err)
	_, err = s.SearchMessages(ctx(t), tracer.MessageQuery{Query: tracer.Query{App: "checkout"}}, tracer.Page{Cursor: ev.Next})
	require.True(t, errors.Is(err, tracer.ErrBadCursor), "an event cursor is not a message cursor: %v", err)
	_, err = s.SearchMessages(ctx(t), tracer.MessageQuery{Query: tracer.Query{Range: tracer.TimeRange{From: Base, To: Base}}}, tracer.Page{})
	require.True(t, errors.Is(err, tracer.ErrBadRange), "%v", err)
}
