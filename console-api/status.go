package consoleapi

import (
	"context"
	"time"

	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// ScheduleProvider tells whether the delay engine still holds a delayed
// message (package delay: a wheel message in its index, or the record of a
// waiting level message). Holds is called from request goroutines, at
// most once per message view; it honours ctx.
type ScheduleProvider interface {
	Holds(ctx context.Context, uid string) (bool, error)
}

// lifecycle sets info's status, and its delivery time while scheduled,
// from the events (tracer.StatusOf) and, for a message that waits, from
// the delay engine:
//   - a native delay (the broker holds it with its delivery time) is
//     persisted once that time has passed: no event marks it;
//   - a wheel or level message that the engine no longer holds, and that
//     neither fired nor was cancelled, is schedule_lost (a wheel lost in a
//     restart) rather than scheduled for ever.
func (a *API) lifecycle(ctx context.Context, info *messageInfo, evs []tracer.Event) {
	info.Status = string(tracer.StatusOf(evs))
	if info.Status != string(tracer.StatusScheduled) {
		return
	}
	var last *tracer.Event
	for i := range evs {
		if evs[i].Type == tracer.Scheduled && (last == nil || !evs[i].Time.Before(last.Time)) {
			last = &evs[i]
		}
	}
	if last == nil {
		return
	}
	mode := last.Properties["mode"]
	if mode == "" {
		mode = "native" // the produce path's own deliverAt
	}
	info.DelayMode = mode
	if at, err := time.Parse(time.RFC3339Nano, last.Properties["deliverAt"]); err == nil {
		at = at.UTC()
		info.DeliverAt = &at
	}
	now := time.Now()
	switch {
	case mode == "native":
		if info.DeliverAt != nil && !now.Before(*info.DeliverAt) {
			info.Status = string(tracer.StatusPersisted)
		}
	case a.opts.Providers.Schedules != nil && now.Sub(last.Time) > a.opts.ScheduleGrace:
		held, err := a.opts.Providers.Schedules.Holds(ctx, info.UID)
		if err != nil {
			a.log.Warn("console could not ask the delay engine", "uid", info.UID, "err", err)
			return
		}
		if !held {
			info.Status = string(tracer.StatusScheduleLost)
		}
	}
}
