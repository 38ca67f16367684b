package delay

import (
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
)

// Message property names.
//
// The first group belongs to the produce path (proxy/message.go) and is
// repeated here because proxy imports delay, not the other way round. The
// values must stay equal to proxy's constants; props_contract_test.go
// checks that they do.
const (
	PropUID  = "psc-uid"  // the sidecar's message id (produce.PropUID)
	PropApp  = "psc-app"  // the producing app (produce.PropApp)
	PropTags = "psc-tags" // tags, sorted, comma-joined (produce.PropTags)
)

// Properties that delayed delivery adds. They start with "psc-", which
// producers may not use, so a request cannot forge them.
const (
	// PropDelayTopic is the real topic of a message waiting in a level
	// topic. It is removed when the message is forwarded.
	PropDelayTopic = "psc-delay-topic"
	// PropDelayLevel is the level a message waited in ("30s").
	PropDelayLevel = "psc-delay-level"
	// PropDelayDue is the due time, in DueLayout: on a level message it is
	// when the forwarder may forward it; on a forwarded message (level or
	// wheel) it says when it was due, so a consumer can see its lateness.
	PropDelayDue = "psc-delay-due"
	// PropRetryPlan and PropRetryStep: see retryplan.go.
	PropRetryPlan = "psc-retry-plan"
	PropRetryStep = "psc-retry-step"
)

// DueLayout formats PropDelayDue: RFC 3339, UTC, milliseconds (the same
// layout as produce.AcceptedAtLayout). Due times are rounded up to the
// millisecond before they are written, so reading one back never makes a
// message early.
const DueLayout = "2006-01-02T15:04:05.000Z07:00"

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

// splitTags reads a psc-tags value.
func splitTags(v string) []string {
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// FormatMessageID renders a Pulsar message id as
// "ledgerId:entryId:partition:batchIndex", exactly as
// produce.FormatMessageID does (props_contract_test.go checks it), so ids in
// trace events and answers look the same whichever package wrote them.
func FormatMessageID(id pulsar.MessageID) string {
	if id == nil {
		return ""
	}
	var b []byte
	b = strconv.AppendInt(b, id.LedgerID(), 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, id.EntryID(), 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(id.PartitionIdx()), 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(id.BatchIdx()), 10)
	return string(b)
}
