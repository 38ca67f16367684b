package tracer

import (
	"bytes"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestComputeID(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)
	base := Event{Type: Delivered, UID: "u1", MessageID: "m1", Cluster: "c", Node: "n", Subscription: "s",
		Consumer: "c1", Attempt: 1, Time: at, Topic: "t", Key: "k", Latency: time.Second, Error: "e",
		Tags: []string{"a"}, Properties: map[string]string{"p": "v"}}
	id := ComputeID(&base)
	require.Len(t, id, 32)

	same := []func(e *Event){
		func(e *Event) { e.Topic = "other" },
		func(e *Event) { e.Key = "other" },
		func(e *Event) { e.Tags = nil },
		func(e *Event) { e.Latency = 0 },
		func(e *Event) { e.Error = "" },
		func(e *Event) { e.Properties = nil },
		func(e *Event) { e.ID = "ignored" },
		func(e *Event) { e.Time = e.Time.Add(999 * time.Nanosecond) }, // below a microsecond
		func(e *Event) { e.Time = e.Time.In(time.FixedZone("X", 3600)) },
	}
	for i, f := range same {
		e := base
		f(&e)
		require.Equal(t, id, ComputeID(&e), "change %d must keep the id", i)
	}

	seen := map[string]int{id: -1}
	differ := []func(e *Event){
		func(e *Event) { e.Type = Acked },
		func(e *Event) { e.UID = "u2" },
		func(e *Event) { e.MessageID = "m2" },
		func(e *Event) { e.Cluster = "dr" },
		func(e *Event) { e.Node = "n2" },
		func(e *Event) { e.Subscription = "s2" },
		func(e *Event) { e.Consumer = "c2" },
		func(e *Event) { e.Attempt = 2 },
		func(e *Event) { e.Time = e.Time.Add(time.Microsecond) },
		// Length prefixes keep field boundaries apart.
		func(e *Event) { e.Subscription, e.Consumer = "sc", "1" },
		func(e *Event) { e.UID, e.MessageID = "u1m", "1" },
	}
	for i, f := range differ {
		e := base
		f(&e)
		got := ComputeID(&e)
		prev, dup := seen[got]
		require.False(t, dup, "change %d collides with %d", i, prev)
		seen[got] = i
	}
}

func TestValidate(t *testing.T) {
	at := time.Now()
	require.NoError(t, (&Event{Type: Accepted, UID: "u", Time: at}).Validate())
	require.ErrorIs(t, (&Event{Type: Accepted, Time: at}).Validate(), ErrMissingUID)
	require.ErrorIs(t, (&Event{Type: "nope", UID: "u", Time: at}).Validate(), ErrUnknownType)
	require.ErrorIs(t, (&Event{Type: Accepted, UID: "u"}).Validate(), ErrMissingTime)
	for _, typ := range Types {
		require.True(t, typ.Valid(), typ)
	}
	require.Len(t, Types, 15)
}

func TestLogRecorder(t *testing.T) {
	var buf bytes.Buffer
	r := LogRecorder{Logger: slog.New(slog.NewTextHandler(&buf, nil))}
	r.Record(Event{Type: Nacked, UID: "u9", Subscription: "s", Attempt: 3, Tags: []string{"A"}})
	out := buf.String()
	for _, want := range []string{"trace event", "type=nacked", "uid=u9", "subscription=s", "attempt=3", "tags=[A]"} {
		require.Contains(t, out, want)
	}
	require.NotContains(t, out, "consumer=", "empty fields are left out")
	Nop{}.Record(Event{}) // must not panic
}
