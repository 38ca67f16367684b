package tracer

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestStatusOf(t *testing.T) {
	evs := func(ts ...Type) []Event {
		out := make([]Event, len(ts))
		for i, t := range ts {
			out[i] = Event{Type: t}
		}
		return out
	}
	for _, tc := range []struct {
		name string
		evs  []Event
		want Status
	}{
		{"none", nil, ""},
		{"accepted", evs(Accepted), StatusAccepted},
		{"retrying", evs(Accepted, Retried), StatusAccepted},
		{"spooled", evs(Accepted, Spooled), StatusSpooled},
		{"replayed", evs(Accepted, Spooled, Replayed), StatusPersisted},
		{"persisted", evs(Accepted, Persisted), StatusPersisted},
		{"failed over", evs(Accepted, FailedOver), StatusPersisted},
		// The produce path records persisted after the engine's scheduled.
		{"wheel waiting", evs(Accepted, Scheduled, Persisted), StatusScheduled},
		{"fired", evs(Accepted, Scheduled, Persisted, Fired), StatusPersisted},
		{"rescheduled", evs(Accepted, Scheduled, Scheduled), StatusScheduled},
		{"cancelled", evs(Accepted, Scheduled, Cancelled), StatusCancelled},
		{"filtered only", evs(Accepted, Persisted, Filtered), StatusPersisted},
		{"delivered", evs(Accepted, Persisted, Delivered), StatusDelivered},
		{"nacked", evs(Accepted, Persisted, Delivered, Nacked, Redelivered), StatusDelivered},
		{"consumed", evs(Accepted, Persisted, Delivered, Acked), StatusConsumed},
		{"out of order", evs(Acked, Delivered, Persisted, Accepted), StatusConsumed},
		{"delayed then consumed", evs(Accepted, Scheduled, Fired, Delivered, Acked), StatusConsumed},
		{"dead lettered", evs(Accepted, Persisted, Delivered, Nacked, DeadLettered), StatusDeadLettered},
	} {
		assert.Equal(t, tc.want, StatusOf(tc.evs), tc.name)
	}
}

func TestStatusRankCoversEveryType(t *testing.T) {
	seen := map[Status]bool{}
	for _, ty := range Types {
		r, s := StatusRank(ty)
		assert.True(t, r >= 1 && r <= maxRank, ty)
		assert.True(t, s.Valid(), ty)
		seen[s] = true
		assert.Contains(t, TypesOfStatus(s), ty)
	}
	for _, s := range Statuses {
		if s != StatusScheduleLost {
			assert.True(t, seen[s], "no event type gives %s", s)
		}
	}
	assert.False(t, Status("bogus").Valid())
	assert.Equal(t, 0, func() int { r, _ := StatusRank("bogus"); return r }())
}
