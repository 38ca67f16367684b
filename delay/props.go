package delay

import (
	"maps"
	"strings"
	"time"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/wire"
)

// Message property names (internal/wire is where they are written down).
const (
	PropUID  = wire.PropUID  // the sidecar's message id
	PropApp  = wire.PropApp  // the producing app
	PropTags = wire.PropTags // tags, sorted, comma-joined
	// PropDelayTopic is the real topic of a message waiting in a level
	// topic. It is removed when the message is forwarded.
	PropDelayTopic = wire.PropDelayTopic
	// PropDelayLevel is the level a message waited in ("30s").
	PropDelayLevel = wire.PropDelayLevel
	// PropDelayDue is the due time, in DueLayout: on a level message it is
	// when the forwarder may forward it; on a forwarded message (level or
	// wheel) it says when it was due, so a consumer can see its lateness.
	PropDelayDue = wire.PropDelayDue
	// PropRetryPlan and PropRetryStep: see retryplan.go.
	PropRetryPlan = wire.PropRetryPlan
	PropRetryStep = wire.PropRetryStep
)

// DueLayout formats PropDelayDue (wire.TimeLayout). Due times are rounded
// up to the millisecond before they are written, so reading one back never
// makes a message early.
const DueLayout = wire.TimeLayout

// ceilMilli rounds t up to a whole millisecond and drops the monotonic
// reading.
func ceilMilli(t time.Time) time.Time {
	r := t.Truncate(time.Millisecond)
	if r.Before(t) {
		r = r.Add(time.Millisecond)
	}
	return r.Round(0)
}

func formatDue(t time.Time) string { return ceilMilli(t).UTC().Format(DueLayout) }

func parseDue(s string) (time.Time, error) { return time.Parse(DueLayout, s) }

// pulsarProperties is what a delayed message carries into Pulsar: the
// caller's properties, with the psc-uid, psc-app and psc-tags properties
// set from uid, app and tags. It works whether props are the user's
// properties alone or proxy's PulsarProperties(): the fields win.
func pulsarProperties(props map[string]string, uid, app string, tags []string, extra int) map[string]string {
	p := make(map[string]string, len(props)+3+extra)
	maps.Copy(p, props)
	p[PropUID] = uid
	if app != "" {
		p[PropApp] = app
	}
	if len(tags) > 0 {
		p[PropTags] = strings.Join(tags, ",")
	}
	return p
}
