// Package storetest is the contract every tracer.Store must meet: one suite
// of scenarios that runs against each implementation (the SQLite store for
// real, the Elasticsearch store against esfake, and against a real cluster
// when one is given).
package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// Open returns a new, empty store. The suite closes it.
type Open func(t *testing.T) tracer.Store

// Base is the time the scenarios' events start from: half a second before a
// UTC midnight, so a few seconds of events already span two days (two daily
// indices in Elasticsearch).
var Base = time.Date(2026, 3, 1, 23, 59, 59, 500_000_000, time.UTC)

// Run runs every scenario as a subtest, each on a fresh store.
func Run(t *testing.T, open Open) {
	scenarios := []struct {
		name string
		run  func(t *testing.T, s tracer.Store)
	}{
		{"RoundTripAllFields", roundTrip},
		{"WriteIsIdempotent", idempotent},
		{"TimelineOrder", timelineOrder},
		{"ByMessageIDAndKey", byMessageIDAndKey},
		{"ByTopicTimeRange", byTopicRange},
		{"BadRange", badRange},
		{"Pagination", pagination},
		{"PageSizeCap", pageSizeCap},
		{"BadCursor", badCursor},
		{"Consumption", consumption},
		{"SearchFilters", searchFilters},
		{"SearchPagination", searchPagination},
		{"SearchBadInput", searchBadInput},
		{"SearchMessages", searchMessages},
		{"DeleteBefore", deleteBefore},
		{"InvalidEventsArePermanentItemErrors", invalidEvents},
		{"EmptyResults", emptyResults},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { require.NoError(t, s.Close()) })
			sc.run(t, s)
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// Full returns an event with every field set.
func Full(uid string, typ tracer.Type, at time.Time) tracer.Event {
	return tracer.Event{
		Type:         typ,
		UID:          uid,
		MessageID:    "CAEQAhgAIAAwAQ==",
		Topic:        "persistent://billing/pay/orders",
		Key:          "order-" + uid,
		Tags:         []string{"PAY_1001", "VIP"},
		App:          "checkout",
		ClientIP:     "10.1.2.3",
		Node:         "sidecar-0",
		Cluster:      "primary",
		Subscription: "settlement",
		Consumer:     "settlement-7f9c",
		Time:         at,
		Latency:      1234567 * time.Nanosecond,
		Error:        "broker timeout",
		Attempt:      2,
		Properties:   map[string]string{"delayLevel": "30s", "dlqTopic": "persistent://billing/pay/orders-DLQ"},
	}
}

func write(t *testing.T, s tracer.Store, evs ...tracer.Event) []tracer.Event {
	t.Helper()
	evs = slices.Clone(evs)
	require.NoError(t, s.Write(ctx(t), evs))
	return evs
}

// all reads every page of a query.
func all(t *testing.T, limit int, q func(p tracer.Page) (tracer.Result, error)) []tracer.Event {
	t.Helper()
	var out []tracer.Event
	page := tracer.Page{Limit: limit}
	for i := 0; ; i++ {
		require.Less(t, i, 10000, "pagination does not end")
		res, err := q(page)
		require.NoError(t, err)
		require.LessOrEqual(t, len(res.Events), page.Limit)
		out = append(out, res.Events...)
		if res.Next == "" {
			return out
		}
		require.NotEmpty(t, res.Events, "a page with a next cursor must not be empty")
		page.Cursor = res.Next
	}
}

func ids(evs []tracer.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

// sorted returns the ids of evs in the stores' order: (time, id).
func sorted(evs []tracer.Event) []string {
	evs = slices.Clone(evs)
	for i := range evs {
		if evs[i].ID == "" {
			evs[i].ID = tracer.ComputeID(&evs[i])
		}
	}
	slices.SortFunc(evs, func(a, b tracer.Event) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	return ids(evs)
}

func roundTrip(t *testing.T, s tracer.Store) {
	ev := Full("u-rt", tracer.Delivered, Base.Add(1234*time.Microsecond))
	write(t, s, ev)
	res, err := s.ByUID(ctx(t), "u-rt", tracer.Page{})
	require.NoError(t, err)
	require.Len(t, res.Events, 1)
	got := res.Events[0]
	want := ev
	want.ID = tracer.ComputeID(&ev)
	require.True(t, want.Time.Equal(got.Time), "time %s != %s", got.Time, want.Time)
	require.Equal(t, time.UTC, got.Time.Location())
	got.Time, want.Time = time.Time{}, time.Time{}
	require.Equal(t, want, got)
	require.Empty(t, res.Next)

	// A minimal event comes back minimal.
	minimal := tracer.Event{Type: tracer.Accepted, UID: "u-min", Time: Base}
	write(t, s, minimal)
	res, err = s.ByUID(ctx(t), "u-min", tracer.Page{})
	require.NoError(t, err)
	require.Len(t, res.Events, 1)
	require.Empty(t, res.Events[0].Tags)
	require.Empty(t, res.Events[0].Properties)
	require.Equal(t, tracer.ComputeID(&minimal), res.Events[0].ID)
}

func idempotent(t *testing.T, s tracer.Store) {
	batch := []tracer.Event{
		Full("u-idem", tracer.Accepted, Base),
		Full("u-idem", tracer.Persisted, Base.Add(time.Millisecond)),
	}
	write(t, s, batch...)
	write(t, s, batch...) // a replay of the same batch
	// The same event again with a different descriptive field is still the
	// same event.
	again := batch[0]
	again.Latency = time.Hour
	write(t, s, again, again)
	res, err := s.ByUID(ctx(t), "u-idem", tracer.Page{})
	require.NoError(t, err)
	require.Equal(t, sorted(batch), ids(res.Events))
	require.Equal(t, batch[0].Latency, res.Events[0].Latency, "the first write wins")
}

func timelineOrder(t *testing.T, s tracer.Store) {
	steps := []tracer.Type{tracer.Accepted, tracer.Retried, tracer.Persisted, tracer.Delivered, tracer.Nacked,
		tracer.Redelivered, tracer.Acked}
	var evs []tracer.Event
	for i, typ := range steps {
		at := Base.Add(time.Duration(i/2) * time.Second) // pairs share a time: ties break on id
		ev := tracer.Event{Type: typ, UID: "u-tl", Time: at, Attempt: i}
		evs = append(evs, ev)
	}
	shuffled := slices.Clone(evs)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	write(t, s, shuffled[:3]...)
	write(t, s, shuffled[3:]...)
	write(t, s, tracer.Event{Type: tracer.Accepted, UID: "u-other", Time: Base})
	got := all(t, 100, func(p tracer.Page) (tracer.Result, error) { return s.ByUID(ctx(t), "u-tl", p) })
	require.Equal(t, sorted(evs), ids(got))
}

func byMessageIDAndKey(t *testing.T, s tracer.Store) {
	a1 := tracer.Event{Type: tracer.Persisted, UID: "u-a", MessageID: "m-a", Key: "k-1", Time: Base}
	a2 := tracer.Event{Type: tracer.Delivered, UID: "u-a", MessageID: "m-a", Key: "k-1", Subscription: "s", Time: Base.Add(time.Second)}
	b1 := tracer.Event{Type: tracer.Persisted, UID: "u-b", MessageID: "m-b", Key: "k-1", Time: Base.Add(2 * time.Second)}
	c1 := tracer.Event{Type: tracer.Accepted, UID: "u-c", Key: "k-2", Time: Base}
	write(t, s, a1, a2, b1, c1)

	res, err := s.ByMessageID(ctx(t), "m-a", tracer.Page{})
	require.NoError(t, err)
	require.Equal(t, sorted([]tracer.Event{a1, a2}), ids(res.Events))

	res, err = s.ByKey(ctx(t), "k-1", tracer.Page{})
	require.NoError(t, err)
	require.Equal(t, sorted([]tracer.Event{a1, a2, b1}), ids(res.Events))

	res, err = s.ByKey(ctx(t), "k-2", tracer.Page{})
	require.NoError(t, err)
	require.Equal(t, sorted([]tracer.Event{c1}), ids(res.Events))
}

func byTopicRange(t *testing.T, s tracer.Store) {
	var evs []tracer.Event
	for i := range 10 { // Base-1s .. Base+8s: across midnight
		evs = append(evs, tracer.Event{Type: tracer.Accepted, UID: fmt.Sprintf("u-%d", i), Topic: "t1",
			Time: Base.Add(time.Duration(i-1) * time.Second)})
	}
	other := tracer.Event{Type: tracer.Accepted, UID: "u-x", Topic: "t2", Time: Base}
	write(t, s, append(slices.Clone(evs), other)...)

	cases := []struct {
		name string
		r    tracer.TimeRange
		want []tracer.Event
	}{
		{"open", tracer.TimeRange{}, evs},
		{"from is inclusive", tracer.TimeRange{From: evs[3].Time}, evs[3:]},
		{"to is exclusive", tracer.TimeRange{To: evs[3].Time}, evs[:3]},
		{"both, across midnight", tracer.TimeRange{From: evs[1].Time, To: evs[5].Time}, evs[1:5]},
		{"microsecond bounds", tracer.TimeRange{From: evs[2].Time.Add(time.Microsecond), To: evs[4].Time.Add(time.Microsecond)}, evs[3:5]},
		{"long range", tracer.TimeRange{From: Base.AddDate(-1, 0, 0), To: Base.AddDate(1, 0, 0)}, evs},
		{"nothing", tracer.TimeRange{From: Base.AddDate(0, 0, 5), To: Base.AddDate(0, 0, 6)}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := all(t, 3, func(p tracer.Page) (tracer.Result, error) { return s.ByTopic(ctx(t), "t1", c.r, p) })
			require.Equal(t, sorted(c.want), ids(got))
		})
	}
}

func badRange(t *testing.T, s tracer.Store) {
	_, err := s.ByTopic(ctx(t), "t1", tracer.TimeRange{From: Base, To: Base}, tracer.Page{})
	require.ErrorIs(t, err, tracer.ErrBadRange)
	_, err = s.ByTopic(ctx(t), "t1", tracer.TimeRange{From: Base.Add(time.Second), To: Base}, tracer.Page{})
	require.ErrorIs(t, err, tracer.ErrBadRange)
}

func pagination(t *testing.T, s tracer.Store) {
	var evs []tracer.Event
	for i := range 25 {
		// Groups of three share a microsecond, so pages split ties.
		evs = append(evs, tracer.Event{Type: tracer.Delivered, UID: "u-page", Subscription: fmt.Sprintf("s%02d", i),
			Key: "k-page", Topic: "t-page", Time: Base.Add(time.Duration(i/3) * time.Microsecond)})
	}
	write(t, s, evs...)
	want := sorted(evs)
	for _, limit := range []int{1, 7, 25, 100} {
		got := all(t, limit, func(p tracer.Page) (tracer.Result, error) { return s.ByUID(ctx(t), "u-page", p) })
		require.Equal(t, want, ids(got), "limit %d", limit)
	}
	got := all(t, 4, func(p tracer.Page) (tracer.Result, error) { return s.ByKey(ctx(t), "k-page", p) })
	require.Equal(t, want, ids(got))
	got = all(t, 4, func(p tracer.Page) (tracer.Result, error) {
		return s.ByTopic(ctx(t), "t-page", tracer.TimeRange{From: Base, To: Base.Add(time.Hour)}, p)
	})
	require.Equal(t, want, ids(got))

	// Page sizes: 7+7+7+4, the last without a cursor.
	res, err := s.ByUID(ctx(t), "u-page", tracer.Page{Limit: 7})
	require.NoError(t, err)
	var sizes []int
	for {
		sizes = append(sizes, len(res.Events))
		if res.Next == "" {
			break
		}
		res, err = s.ByUID(ctx(t), "u-page", tracer.Page{Limit: 7, Cursor: res.Next})
		require.NoError(t, err)
	}
	require.Equal(t, []int{7, 7, 7, 4}, sizes)

	// An exact fit ends without an empty extra page.
	res, err = s.ByUID(ctx(t), "u-page", tracer.Page{Limit: 25})
	require.NoError(t, err)
	require.Len(t, res.Events, 25)
	require.Empty(t, res.Next)

	// Events written after a page was read show up on later pages when they
	// sort after the cursor.
	res, err = s.ByUID(ctx(t), "u-page", tracer.Page{Limit: 20})
	require.NoError(t, err)
	late := tracer.Event{Type: tracer.Acked, UID: "u-page", Time: Base.Add(time.Hour)}
	write(t, s, late)
	rest := all(t, 100, func(p tracer.Page) (tracer.Result, error) {
		p.Cursor = res.Next
		return s.ByUID(ctx(t), "u-page", p)
	})
	require.Equal(t, append(want[20:], tracer.ComputeID(&late)), ids(rest))
}

func pageSizeCap(t *testing.T, s tracer.Store) {
	evs := make([]tracer.Event, tracer.MaxPageSize+1)
	for i := range evs {
		evs[i] = tracer.Event{Type: tracer.Delivered, UID: "u-cap", Attempt: i, Time: Base.Add(time.Duration(i) * time.Millisecond)}
	}
	write(t, s, evs...)
	res, err := s.ByUID(ctx(t), "u-cap", tracer.Page{Limit: 5 * tracer.MaxPageSize})
	require.NoError(t, err)
	require.Len(t, res.Events, tracer.MaxPageSize)
	require.NotEmpty(t, res.Next)
	res, err = s.ByUID(ctx(t), "u-cap", tracer.Page{})
	require.NoError(t, err)
	require.Len(t, res.Events, tracer.DefaultPageSize)
}

func badCursor(t *testing.T, s tracer.Store) {
	for _, c := range []string{"%%%", "bm90LWEtY3Vyc29y", "MTpub3RhbnVtYmVyOmlk", "OTo1OmlkMQ"} {
		_, err := s.ByUID(ctx(t), "u", tracer.Page{Cursor: c})
		require.ErrorIs(t, err, tracer.ErrBadCursor, "cursor %q", c)
		_, err = s.ByTopic(ctx(t), "t", tracer.TimeRange{}, tracer.Page{Cursor: c})
		require.ErrorIs(t, err, tracer.ErrBadCursor, "cursor %q", c)
	}
}

func consumption(t *testing.T, s tracer.Store) {
	at := func(sec int) time.Time { return Base.Add(time.Duration(sec) * time.Second) }
	ev := func(typ tracer.Type, sub, consumer string, sec, attempt int) tracer.Event {
		return tracer.Event{Type: typ, UID: "u-cons", Subscription: sub, Consumer: consumer, Time: at(sec), Attempt: attempt,
			ClientIP: "10.0.0." + consumer, App: "app-" + consumer}
	}
	evs := []tracer.Event{
		{Type: tracer.Accepted, UID: "u-cons", Time: at(0)},
		{Type: tracer.Persisted, UID: "u-cons", Time: at(0), Cluster: "primary"},
		ev(tracer.Delivered, "acked", "c1", 1, 0),
		ev(tracer.Acked, "acked", "c1", 2, 0),
		ev(tracer.Delivered, "retrying", "c2", 1, 0),
		ev(tracer.Nacked, "retrying", "c2", 2, 0),
		ev(tracer.Redelivered, "retrying", "c3", 3, 1),
		ev(tracer.Filtered, "filtered", "", 1, 0),
		ev(tracer.Delivered, "dlq", "c4", 1, 0),
		ev(tracer.DeadLettered, "dlq", "c4", 5, 3),
		ev(tracer.Delivered, "tie", "c5", 4, 0), // same microsecond: acked wins
		ev(tracer.Acked, "tie", "c5", 4, 0),
		ev(tracer.Delivered, "pending", "c6", 6, 0),
		// Another message's events do not leak in.
		{Type: tracer.Acked, UID: "u-else", Subscription: "acked", Consumer: "zz", Time: at(9)},
	}
	write(t, s, evs[7:]...) // written out of order on purpose
	write(t, s, evs[:7]...)
	got, err := s.Consumption(ctx(t), "u-cons")
	require.NoError(t, err)
	type row struct {
		Sub      string
		State    tracer.Type
		Consumer string
		Sec      int
		Attempt  int
	}
	var rows []row
	for _, c := range got {
		require.NotEmpty(t, c.EventID)
		// The latest event's client IP and app come along.
		require.Equal(t, "10.0.0."+c.Consumer, c.ClientIP, c.Subscription)
		require.Equal(t, "app-"+c.Consumer, c.App, c.Subscription)
		rows = append(rows, row{c.Subscription, c.State, c.Consumer, int(c.Time.Sub(Base) / time.Second), c.Attempt})
	}
	require.Equal(t, []row{
		{"acked", tracer.Acked, "c1", 2, 0},
		{"dlq", tracer.DeadLettered, "c4", 5, 3},
		{"filtered", tracer.Filtered, "", 1, 0},
		{"pending", tracer.Delivered, "c6", 6, 0},
		{"retrying", tracer.Redelivered, "c3", 3, 1},
		{"tie", tracer.Acked, "c5", 4, 0},
	}, rows)

	none, err := s.Consumption(ctx(t), "u-unknown")
	require.NoError(t, err)
	require.Empty(t, none)
}

func deleteBefore(t *testing.T, s tracer.Store) {
	var evs []tracer.Event
	for i := range 6 { // one event a day, from two days before Base's day
		evs = append(evs, tracer.Event{Type: tracer.Accepted, UID: fmt.Sprintf("u-del-%d", i), Topic: "t-del",
			Time: Base.AddDate(0, 0, i-2)})
	}
	extra := tracer.Event{Type: tracer.Persisted, UID: "u-del-3", Topic: "t-del", Time: evs[3].Time.Add(-time.Second)}
	write(t, s, append(slices.Clone(evs), extra)...)

	cut := evs[3].Time // keep evs[3:], delete evs[:3] and extra (a second before evs[3], same day)
	n, err := s.DeleteBefore(ctx(t), cut)
	require.NoError(t, err)
	if n != -1 {
		require.EqualValues(t, 4, n)
	}
	got := all(t, 100, func(p tracer.Page) (tracer.Result, error) { return s.ByTopic(ctx(t), "t-del", tracer.TimeRange{}, p) })
	require.Equal(t, sorted(evs[3:]), ids(got))

	n, err = s.DeleteBefore(ctx(t), cut)
	require.NoError(t, err)
	if n != -1 {
		require.EqualValues(t, 0, n)
	}
}

func invalidEvents(t *testing.T, s tracer.Store) {
	good := tracer.Event{Type: tracer.Accepted, UID: "u-valid", Time: Base}
	batch := []tracer.Event{
		{Type: tracer.Accepted, Time: Base}, // no uid
		good,                                //
		{Type: "exploded", UID: "u-bad-type", Time: Base}, // unknown type
		{Type: tracer.Accepted, UID: "u-no-time"},         // no time
	}
	err := s.Write(ctx(t), batch)
	var be *tracer.BatchError
	require.True(t, errors.As(err, &be), "want *tracer.BatchError, got %v", err)
	var idx []int
	for _, it := range be.Items {
		require.False(t, it.Retriable, "item %d: %s", it.Index, it.Reason)
		idx = append(idx, it.Index)
	}
	slices.Sort(idx)
	require.Equal(t, []int{0, 2, 3}, idx)
	res, err := s.ByUID(ctx(t), "u-valid", tracer.Page{})
	require.NoError(t, err)
	require.Equal(t, sorted([]tracer.Event{good}), ids(res.Events))
}

func emptyResults(t *testing.T, s tracer.Store) {
	for name, q := range map[string]func() (tracer.Result, error){
		"uid":   func() (tracer.Result, error) { return s.ByUID(ctx(t), "nope", tracer.Page{}) },
		"msgid": func() (tracer.Result, error) { return s.ByMessageID(ctx(t), "nope", tracer.Page{}) },
		"key":   func() (tracer.Result, error) { return s.ByKey(ctx(t), "nope", tracer.Page{}) },
		"topic": func() (tracer.Result, error) { return s.ByTopic(ctx(t), "nope", tracer.TimeRange{}, tracer.Page{}) },
	} {
		res, err := q()
		require.NoError(t, err, name)
		require.Empty(t, res.Events, name)
		require.Empty(t, res.Next, name)
	}
}

// searchEvents is the data set of the search scenarios: two messages on one
// topic, one on another, with tags, apps, client IPs and subscriptions.
func searchEvents() (a, b, c []tracer.Event) {
	at := func(ms int) time.Time { return Base.Add(time.Duration(ms) * time.Millisecond) }
	mk := func(typ tracer.Type, uid, topic, key, app, ip, sub string, tags []string, ms int) tracer.Event {
		return tracer.Event{Type: typ, UID: uid, MessageID: "m-" + uid, Topic: topic, Key: key, App: app, ClientIP: ip,
			Subscription: sub, Tags: tags, Time: at(ms)}
	}
	pay := []string{"PAY_1001", "VIP"}
	a = []tracer.Event{
		mk(tracer.Accepted, "s-a", "t-orders", "order-1", "checkout", "10.0.0.1", "", pay, 0),
		mk(tracer.Persisted, "s-a", "t-orders", "order-1", "checkout", "10.0.0.1", "", pay, 1),
		mk(tracer.Delivered, "s-a", "t-orders", "order-1", "settle", "10.0.0.9", "settlement", pay, 600), // after midnight
		mk(tracer.Acked, "s-a", "t-orders", "order-1", "settle", "10.0.0.9", "settlement", pay, 700),
	}
	b = []tracer.Event{
		mk(tracer.Accepted, "s-b", "t-orders", "order-2", "checkout", "10.0.0.2", "", []string{"PAY_1002"}, 10),
		mk(tracer.Persisted, "s-b", "t-orders", "order-2", "checkout", "10.0.0.2", "", []string{"PAY_1002"}, 11),
		mk(tracer.Filtered, "s-b", "t-orders", "order-2", "settle", "", "settlement", []string{"PAY_1002"}, 650),
	}
	c = []tracer.Event{
		mk(tracer.Accepted, "s-c", "t-refunds", "order-1", "refunds", "10.0.0.1", "", nil, 20),
		mk(tracer.DeadLettered, "s-c", "t-refunds", "order-1", "refunds", "10.0.0.1", "audit", nil, 900),
	}
	return a, b, c
}

func searchFilters(t *testing.T, s tracer.Store) {
	a, b, c := searchEvents()
	write(t, s, slices.Concat(c, a)...)
	write(t, s, b...)
	everything := slices.Concat(a, b, c)
	cases := []struct {
		name string
		q    tracer.Query
		want []tracer.Event
	}{
		{"zero query matches all", tracer.Query{}, everything},
		{"topic", tracer.Query{Topic: "t-orders"}, slices.Concat(a, b)},
		{"key across topics", tracer.Query{Key: "order-1"}, slices.Concat(a, c)},
		{"tag is any element", tracer.Query{Tag: "VIP"}, a},
		{"tag no partial match", tracer.Query{Tag: "PAY_100"}, nil},
		{"tag on events without tags", tracer.Query{Tag: "PAY_1002", Topic: "t-refunds"}, nil},
		{"app", tracer.Query{App: "settle"}, []tracer.Event{a[2], a[3], b[2]}},
		{"client ip", tracer.Query{ClientIP: "10.0.0.1"}, []tracer.Event{a[0], a[1], c[0], c[1]}},
		{"subscription", tracer.Query{Subscription: "settlement"}, []tracer.Event{a[2], a[3], b[2]}},
		{"one status", tracer.Query{Types: []tracer.Type{tracer.Acked}}, []tracer.Event{a[3]}},
		{"statuses", tracer.Query{Types: []tracer.Type{tracer.Filtered, tracer.DeadLettered}}, []tracer.Event{b[2], c[1]}},
		{"uid", tracer.Query{UID: "s-b"}, b},
		{"message id", tracer.Query{MessageID: "m-s-c"}, c},
		{"time range across midnight", tracer.Query{Range: tracer.TimeRange{From: Base.Add(11 * time.Millisecond), To: Base.Add(701 * time.Millisecond)}},
			[]tracer.Event{b[1], c[0], a[2], b[2], a[3]}},
		{"from only", tracer.Query{Range: tracer.TimeRange{From: Base.Add(650 * time.Millisecond)}}, []tracer.Event{b[2], a[3], c[1]}},
		{"everything at once", tracer.Query{Topic: "t-orders", Key: "order-1", Tag: "PAY_1001", App: "settle",
			Subscription: "settlement", ClientIP: "10.0.0.9", Types: []tracer.Type{tracer.Acked, tracer.Delivered},
			Range: tracer.TimeRange{From: Base, To: Base.Add(time.Hour)}}, []tracer.Event{a[2], a[3]}},
		{"contradiction", tracer.Query{Tag: "VIP", App: "refunds"}, nil},
		{"unknown value", tracer.Query{App: "nobody"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := all(t, 100, func(p tracer.Page) (tracer.Result, error) { return s.Search(ctx(t), tc.q, p) })
			require.Equal(t, sorted(tc.want), ids(got))
		})
	}
}

func searchPagination(t *testing.T, s tracer.Store) {
	var evs, noise []tracer.Event
	for i := range 23 {
		// Groups of four share a microsecond, so pages split ties; every
		// other event is of another app or tag and must be skipped.
		at := Base.Add(time.Duration(i/4) * time.Microsecond)
		evs = append(evs, tracer.Event{Type: tracer.Delivered, UID: fmt.Sprintf("sp-%02d", i), Topic: "t-sp", App: "a1",
			Tags: []string{"T1", fmt.Sprintf("X%d", i)}, Subscription: "s", Time: at})
		noise = append(noise, tracer.Event{Type: tracer.Delivered, UID: fmt.Sprintf("sn-%02d", i), Topic: "t-sp", App: "a2",
			Tags: []string{"T2"}, Subscription: "s", Time: at})
	}
	write(t, s, slices.Concat(noise, evs)...)
	for _, q := range []tracer.Query{{App: "a1"}, {Tag: "T1"}, {Topic: "t-sp", Tag: "T1", Types: []tracer.Type{tracer.Delivered}}} {
		for _, limit := range []int{1, 5, 23, 50} {
			got := all(t, limit, func(p tracer.Page) (tracer.Result, error) { return s.Search(ctx(t), q, p) })
			require.Equal(t, sorted(evs), ids(got), "query %+v limit %d", q, limit)
		}
	}
	// 10+10+3, the last without a cursor.
	var sizes []int
	page := tracer.Page{Limit: 10}
	for {
		res, err := s.Search(ctx(t), tracer.Query{Tag: "T1"}, page)
		require.NoError(t, err)
		sizes = append(sizes, len(res.Events))
		if res.Next == "" {
			break
		}
		page.Cursor = res.Next
	}
	require.Equal(t, []int{10, 10, 3}, sizes)
}

func searchBadInput(t *testing.T, s tracer.Store) {
	_, err := s.Search(ctx(t), tracer.Query{Types: []tracer.Type{tracer.Acked, "exploded"}}, tracer.Page{})
	require.ErrorIs(t, err, tracer.ErrBadQuery)
	_, err = s.Search(ctx(t), tracer.Query{Range: tracer.TimeRange{From: Base, To: Base}}, tracer.Page{})
	require.ErrorIs(t, err, tracer.ErrBadRange)
	_, err = s.Search(ctx(t), tracer.Query{Tag: "x"}, tracer.Page{Cursor: "%%%"})
	require.ErrorIs(t, err, tracer.ErrBadCursor)
	res, err := s.Search(ctx(t), tracer.Query{Tag: "none"}, tracer.Page{})
	require.NoError(t, err)
	require.Empty(t, res.Events)
	require.Empty(t, res.Next)
}
