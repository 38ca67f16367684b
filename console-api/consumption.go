package consoleapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/pulsar-sidecar/pulsar-sidecar/tagfilter"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// Consumption states, as the console reports them per subscription.
const (
	StateConsumed          = "consumed"            // acknowledged
	StateDeliveredNotAcked = "delivered_not_acked" // handed to a consumer, not acknowledged (yet)
	StateFiltered          = "filtered"            // skipped by the subscription's tag filter
	StateNotYet            = "not_yet"             // not delivered yet
	StateDeadLettered      = "dead_lettered"       // moved to the dead-letter topic
)

// Sources of a state: which evidence decided it.
const (
	SourceTrace     = "trace"     // a trace event of the subscription
	SourceCursor    = "cursor"    // the subscription's cursor on the broker
	SourceTagFilter = "tagFilter" // the registered tag filter does not match the message's tags
)

type consumptionView struct {
	UID           string              `json:"uid"`
	MessageID     string              `json:"messageId,omitempty"`
	Topic         string              `json:"topic,omitempty"`
	Tags          []string            `json:"tags"`
	Subscriptions []subscriptionState `json:"subscriptions"`
	// Notes say what could not be checked (no broker, no message id...).
	Notes []string `json:"notes"`
}

type subscriptionState struct {
	Subscription      string   `json:"subscription"`
	Expected          bool     `json:"expected"`            // registered for the topic
	OnBroker          *bool    `json:"onBroker"`            // the broker has the subscription; null when not asked
	TagFilter         string   `json:"tagFilter,omitempty"` // registered filter
	ExpectedConsumers []string `json:"expectedConsumers,omitempty"`

	State    string     `json:"state"`
	Source   string     `json:"source"`
	Consumer string     `json:"consumer,omitempty"`
	ClientIP string     `json:"clientIp,omitempty"`
	App      string     `json:"app,omitempty"`
	Time     *time.Time `json:"time"` // when the deciding step happened; null when the cursor decided
	Attempt  int        `json:"attempt,omitempty"`

	Cursor *cursorJSON `json:"cursor,omitempty"`
	Note   string      `json:"note,omitempty"`
}

type cursorJSON struct {
	MarkDeletePosition          string `json:"markDeletePosition"`
	IndividuallyDeletedMessages string `json:"individuallyDeletedMessages"`
	// Acknowledged: the cursor is past the message.
	Acknowledged bool `json:"acknowledged"`
}

// GET /messages/:uid/consumption
func (a *API) getConsumption(c *gin.Context) error {
	ctx, cancel := a.ctx(c)
	defer cancel()
	v, err := a.consumption(ctx, c.Param("uid"))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, v)
	return nil
}

// internalCursor reports cursors the broker keeps for itself
// (deduplication, replication, compaction), which are not subscriptions.
func internalCursor(name string) bool {
	return name == "pulsar.dedup" || strings.HasPrefix(name, "pulsar.repl.") || strings.HasPrefix(name, "__")
}

// consumption answers "was it consumed" for every subscription of the
// message's topic: the registered ones, those the broker has and those the
// trace names. Per subscription, in this order:
//
//  1. an acked, dead_lettered or filtered event decides (trace);
//  2. else a cursor past the message means consumed (cursor), or filtered
//     when the registered tag filter does not match the message's tags
//     (the sidecar acknowledges what it filters out);
//  3. else a delivered, redelivered or nacked event means
//     delivered_not_acked (trace);
//  4. else a registered tag filter that does not match means filtered
//     (tagFilter);
//  5. else not_yet (cursor when the broker was asked, trace otherwise).
func (a *API) consumption(ctx context.Context, uid string) (*consumptionView, error) {
	evs, _, err := a.timeline(ctx, uid)
	if err != nil {
		return nil, err
	}
	if len(evs) == 0 {
		return nil, messageNotFound(uid)
	}
	info := summarize(uid, evs)
	v := &consumptionView{UID: uid, MessageID: info.MessageID, Topic: info.Topic, Tags: info.Tags,
		Subscriptions: []subscriptionState{}, Notes: []string{}}
	note := func(format string, args ...any) { v.Notes = append(v.Notes, fmt.Sprintf(format, args...)) }

	trace, err := a.opts.Store.Consumption(ctx, uid)
	if err != nil {
		return nil, storeError(err)
	}
	byTrace := map[string]tracer.Consumption{}
	for _, c := range trace {
		byTrace[c.Subscription] = c
	}

	var registered []Subscription
	if info.Topic != "" {
		registered, err = a.opts.Registry.Subscriptions(ctx, baseTopic(info.Topic))
		if err != nil {
			return nil, &Error{Status: http.StatusServiceUnavailable, Code: CodeRegistryError, Message: "the registry failed; try again", Err: err}
		}
	} else {
		note("no trace event names the topic: registered subscriptions and cursors were not checked")
	}
	byReg := map[string]Subscription{}
	for _, s := range registered {
		byReg[s.Name] = s
	}

	cursors, pos, cursorsOK := a.cursors(ctx, info, note)

	names := map[string]bool{}
	for n := range byTrace {
		names[n] = true
	}
	for n := range byReg {
		names[n] = true
	}
	for n := range cursors {
		if !internalCursor(n) {
			names[n] = true
		}
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)

	for _, name := range sorted {
		st := subscriptionState{Subscription: name}
		reg, expected := byReg[name]
		if expected {
			st.Expected, st.TagFilter, st.ExpectedConsumers = true, reg.TagFilter, reg.ExpectedConsumers
		}
		mismatch, filterNote := filterMismatch(reg, expected, info.Tags)
		var cur *Cursor
		if cursorsOK {
			c, ok := cursors[name]
			st.OnBroker = &ok
			if ok {
				cur = &c
				st.Cursor = &cursorJSON{MarkDeletePosition: c.Raw.MarkDelete, IndividuallyDeletedMessages: c.Raw.IndividuallyDeleted,
					Acknowledged: c.Acknowledged(pos)}
				if c.ParseError != "" {
					st.Note = "the broker's cursor could not be read: " + c.ParseError
				}
			}
		}
		tr, traced := byTrace[name]
		fromTrace := func(state string) {
			st.State, st.Source = state, SourceTrace
			st.Consumer, st.ClientIP, st.App, st.Attempt = tr.Consumer, tr.ClientIP, tr.App, tr.Attempt
			t := tr.Time
			st.Time = &t
		}
		switch {
		case traced && (tr.State == tracer.Acked || tr.State == tracer.DeadLettered || tr.State == tracer.Filtered):
			fromTrace(map[tracer.Type]string{tracer.Acked: StateConsumed, tracer.DeadLettered: StateDeadLettered,
				tracer.Filtered: StateFiltered}[tr.State])
			if tr.State == tracer.Acked && cur != nil && !st.Cursor.Acknowledged && cur.ParseError == "" {
				st.Note = "the cursor is before this message again (reset or seek after the ack): it will be delivered again"
			}
		case cur != nil && st.Cursor.Acknowledged:
			st.State, st.Source = StateConsumed, SourceCursor
			if mismatch {
				st.State, st.Note = StateFiltered, filterNote+"; the cursor is past it"
			} else {
				st.Note = "no acked event in the trace; the subscription's cursor is past the message (acknowledged, skipped, or the subscription started after it)"
			}
			if traced { // who had it, from the last delivery
				st.Consumer, st.ClientIP, st.App, st.Attempt = tr.Consumer, tr.ClientIP, tr.App, tr.Attempt
			}
		case traced:
			fromTrace(StateDeliveredNotAcked)
		case mismatch:
			st.State, st.Source, st.Note = StateFiltered, SourceTagFilter, filterNote
		default:
			st.State, st.Source = StateNotYet, SourceTrace
			switch {
			case cur != nil:
				st.Source = SourceCursor
			case cursorsOK:
				st.Note = "the broker has no such subscription: nothing will be delivered to it until it is created"
			}
		}
		v.Subscriptions = append(v.Subscriptions, st)
	}
	return v, nil
}

// cursors asks the message's broker for the cursors of the topic (or
// partition) that holds it. ok is false when they could not be had; note
// says why.
func (a *API) cursors(ctx context.Context, info messageInfo, note func(string, ...any)) (map[string]Cursor, Position, bool) {
	if info.Topic == "" {
		return nil, Position{}, false
	}
	if info.MessageID == "" {
		note("no broker message id in the trace: cursors were not checked")
		return nil, Position{}, false
	}
	id, err := ParseMessageID(info.MessageID)
	if err != nil {
		note("the trace's message id cannot be read (%v): cursors were not checked", err)
		return nil, Position{}, false
	}
	b := a.brokerFor(info.Cluster)
	if b == nil {
		note("no broker is configured for cluster %q: cursors were not checked", info.Cluster)
		return nil, Position{}, false
	}
	topic, err := partitionTopic(ctx, b, info.Topic, id)
	if err == nil {
		var cs map[string]Cursor
		cs, err = b.Cursors(ctx, topic)
		if err == nil {
			return cs, Position{Ledger: id.Ledger, Entry: id.Entry}, true
		}
	}
	if errors.Is(err, ErrTopicNotFound) {
		note("the broker does not know topic %s: cursors were not checked", info.Topic)
	} else {
		a.log.Warn("console could not read cursors", "topic", info.Topic, "err", err)
		note("the broker could not be asked for cursors: the answer rests on the trace alone")
	}
	return nil, Position{}, false
}

// filterMismatch reports whether a registered subscription's tag filter
// rejects the message's tags.
func filterMismatch(s Subscription, registered bool, tags []string) (bool, string) {
	if !registered || strings.TrimSpace(s.TagFilter) == "" {
		return false, ""
	}
	f, err := tagfilter.Compile(s.TagFilter)
	if err != nil {
		return false, ""
	}
	if f.Match(tags) {
		return false, ""
	}
	return true, fmt.Sprintf("the tag filter %q does not match the message's tags %v", s.TagFilter, tags)
}
