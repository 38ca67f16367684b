package consoleapi

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// Views of GET /search.
const (
	viewEvents   = "events"   // raw events, several messages interleaved (the default)
	viewMessages = "messages" // one row per message
)

// messageRow is one message of GET /search?view=messages.
type messageRow struct {
	messageInfo
	FirstEventAt time.Time `json:"firstEventAt"`
	LastEventAt  time.Time `json:"lastEventAt"`
	EventCount   int       `json:"eventCount"`
	// Events is the message's timeline, with events=true.
	Events []eventJSON `json:"events,omitempty"`
}

type messagePageJSON struct {
	Messages []messageRow `json:"messages"`
	Next     string       `json:"next,omitempty"`
}

// parseStatuses reads status for view=messages: message statuses,
// comma-separated or repeated.
func parseStatuses(vals []string) ([]tracer.Status, error) {
	var out []tracer.Status
	for _, v := range vals {
		for s := range strings.SplitSeq(v, ",") {
			st := tracer.Status(strings.TrimSpace(s))
			if !st.Valid() {
				names := make([]string, len(tracer.Statuses))
				for i, s := range tracer.Statuses {
					names[i] = string(s)
				}
				return nil, badParam("status=%q: with view=messages, want one or more of %s", truncate(string(st), 40), strings.Join(names, ", "))
			}
			if !slices.Contains(out, st) {
				out = append(out, st)
			}
		}
	}
	return out, nil
}

// searchMessages answers GET /search?view=messages: one row per uid with an
// event matching the other parameters, in uid order (the order they were
// accepted in), with the message's status over all its events. status
// selects message statuses here. schedule_lost and a native delay past due
// are told apart from scheduled as a message lookup does, so a page may be
// shorter than limit when those rows are filtered out.
func (a *API) searchMessages(c *gin.Context, sq tracer.Query, page tracer.Page) error {
	q := c.Request.URL.Query()
	want, err := parseStatuses(q["status"])
	if err != nil {
		return err
	}
	withEvents, err := parseBool(q, "events", false)
	if err != nil {
		return err
	}
	if page.Limit > tracer.MaxMessagePageSize {
		return badParam("limit=%d: with view=messages, at most %d", page.Limit, tracer.MaxMessagePageSize)
	}
	// The store knows scheduled; lost and due native delays are decided here.
	storeWant := slices.Clone(want)
	if slices.Contains(want, tracer.StatusScheduleLost) && !slices.Contains(want, tracer.StatusScheduled) {
		storeWant = append(slices.DeleteFunc(storeWant, func(s tracer.Status) bool { return s == tracer.StatusScheduleLost }), tracer.StatusScheduled)
	}
	if slices.Contains(want, tracer.StatusPersisted) && !slices.Contains(storeWant, tracer.StatusScheduled) {
		storeWant = append(storeWant, tracer.StatusScheduled)
	}
	ctx, cancel := a.ctx(c)
	defer cancel()
	res, err := a.opts.Store.SearchMessages(ctx, tracer.MessageQuery{Query: sq, Statuses: storeWant}, page)
	if err != nil {
		return storeError(err)
	}
	out := messagePageJSON{Messages: []messageRow{},
		Next: encodeCursor(canonicalQuery("search", q), res.Next)}
	for _, r := range res.Rows {
		if len(r.Events) == 0 {
			continue
		}
		row := messageRow{messageInfo: summarize(r.UID, r.Events), EventCount: len(r.Events),
			FirstEventAt: r.Events[0].Time.UTC(), LastEventAt: r.Events[len(r.Events)-1].Time.UTC()}
		a.lifecycle(ctx, &row.messageInfo, r.Events)
		if len(want) > 0 && !slices.Contains(want, tracer.Status(row.Status)) {
			continue
		}
		if withEvents {
			row.Events = toEventsJSON(r.Events)
		}
		out.Messages = append(out.Messages, row)
	}
	c.JSON(http.StatusOK, out)
	return nil
}
