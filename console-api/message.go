package consoleapi

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/wire"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// PropUID is the message property that carries the sidecar's uid on every
// Pulsar message it produces.
const PropUID = wire.PropUID

// messageView is the answer of a message lookup.
type messageView struct {
	messageInfo
	Timeline []eventJSON `json:"timeline"`
	// TimelineNext continues the timeline at .../timeline?cursor= when it
	// holds more than Options.MaxTimelineEvents events.
	TimelineNext string       `json:"timelineNext,omitempty"`
	Content      *contentJSON `json:"content"`
	ContentNote  string       `json:"contentNote,omitempty"`
}

// contentJSON is a message as the broker holds it.
type contentJSON struct {
	Topic        string            `json:"topic"`
	MessageID    string            `json:"messageId"`
	Encoding     string            `json:"encoding"` // "utf-8" or "base64"
	Payload      string            `json:"payload"`
	Size         int               `json:"size"`      // of the whole payload, in bytes
	Truncated    bool              `json:"truncated"` // the payload was cut at maxBytes
	Key          string            `json:"key,omitempty"`
	Properties   map[string]string `json:"properties"`
	PublishTime  *time.Time        `json:"publishTime"`
	EventTime    *time.Time        `json:"eventTime"`
	ProducerName string            `json:"producerName,omitempty"`
	BatchSize    int               `json:"batchSize,omitempty"`
}

type viewOptions struct {
	content  bool
	maxBytes int
}

func (a *API) parseViewOptions(c *gin.Context) (viewOptions, error) {
	q := c.Request.URL.Query()
	o := viewOptions{maxBytes: a.opts.MaxPayloadBytes}
	var err error
	if o.content, err = parseBool(q, "content", true); err != nil {
		return o, err
	}
	if s, ok := q["maxBytes"]; ok {
		n, err := strconv.Atoi(s[0])
		if err != nil || n < 0 || n > a.opts.MaxPayloadBytes {
			return o, badParam("maxBytes=%q: want an integer from 0 to %d", truncate(s[0], 20), a.opts.MaxPayloadBytes)
		}
		o.maxBytes = n
	}
	return o, nil
}

// GET /messages/:uid
func (a *API) getMessage(c *gin.Context) error {
	o, err := a.parseViewOptions(c)
	if err != nil {
		return err
	}
	ctx, cancel := a.ctx(c)
	defer cancel()
	v, err := a.messageByUID(ctx, c.Param("uid"), o)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, v)
	return nil
}

func messageNotFound(uid string) error {
	return errorf(http.StatusNotFound, CodeMessageNotFound, "no trace event has uid %q", truncate(uid, 100))
}

// messageByUID builds the view of a message from its timeline.
func (a *API) messageByUID(ctx context.Context, uid string, o viewOptions) (*messageView, error) {
	evs, next, err := a.timeline(ctx, uid)
	if err != nil {
		return nil, err
	}
	if len(evs) == 0 {
		return nil, messageNotFound(uid)
	}
	v := &messageView{messageInfo: summarize(uid, evs), Timeline: toEventsJSON(evs), TimelineNext: next}
	a.lifecycle(ctx, &v.messageInfo, evs)
	if o.content {
		v.Content, v.ContentNote = a.content(ctx, v.messageInfo, o.maxBytes)
	} else {
		v.ContentNote = "not asked for (content=false)"
	}
	return v, nil
}

// timeline reads up to MaxTimelineEvents events of uid; next continues at
// .../timeline when there are more.
func (a *API) timeline(ctx context.Context, uid string) ([]tracer.Event, string, error) {
	var evs []tracer.Event
	page := tracer.Page{}
	for {
		page.Limit = min(tracer.MaxPageSize, a.opts.MaxTimelineEvents-len(evs))
		res, err := a.opts.Store.ByUID(ctx, uid, page)
		if err != nil {
			return nil, "", storeError(err)
		}
		evs = append(evs, res.Events...)
		if res.Next == "" {
			return evs, "", nil
		}
		if len(evs) >= a.opts.MaxTimelineEvents {
			return evs, encodeCursor(timelineQuery(uid), res.Next), nil
		}
		page.Cursor = res.Next
	}
}

func timelineQuery(uid string) string { return "timeline:" + uid }

// GET /messages/:uid/timeline
func (a *API) getTimeline(c *gin.Context) error {
	q := c.Request.URL.Query()
	limit, err := parseLimit(q, tracer.DefaultPageSize)
	if err != nil {
		return err
	}
	uid := c.Param("uid")
	cur, err := decodeCursor(timelineQuery(uid), q.Get("cursor"))
	if err != nil {
		return err
	}
	ctx, cancel := a.ctx(c)
	defer cancel()
	res, err := a.opts.Store.ByUID(ctx, uid, tracer.Page{Limit: limit, Cursor: cur})
	if err != nil {
		return storeError(err)
	}
	if cur == "" && len(res.Events) == 0 {
		return messageNotFound(uid)
	}
	c.JSON(http.StatusOK, pageJSON{Events: toEventsJSON(res.Events), Next: encodeCursor(timelineQuery(uid), res.Next)})
	return nil
}

// pageJSON is one page of events.
type pageJSON struct {
	Events []eventJSON `json:"events"`
	Next   string      `json:"next,omitempty"`
}

// GET /message-ids/:messageId
func (a *API) getByMessageID(c *gin.Context) error {
	o, err := a.parseViewOptions(c)
	if err != nil {
		return err
	}
	raw := c.Param("messageId")
	id, err := ParseMessageID(raw)
	if err != nil {
		return &Error{Status: http.StatusBadRequest, Code: CodeInvalidMessageID, Message: err.Error()}
	}
	topic := ""
	if t := c.Query("topic"); t != "" {
		if topic, err = NormalizeTopic(t); err != nil {
			return err
		}
	}
	ctx, cancel := a.ctx(c)
	defer cancel()
	uids, err := a.uidsOf(ctx, raw, id, topic)
	if err != nil {
		return err
	}
	switch {
	case len(uids) == 1:
		v, err := a.messageByUID(ctx, uids[0], o)
		if err != nil {
			return err
		}
		c.JSON(http.StatusOK, v)
		return nil
	case len(uids) > 1:
		return errorf(http.StatusConflict, CodeAmbiguousMessageID,
			"message id %s is carried by %d messages (uids %s): pass topic= or look up by uid", id, len(uids), strings.Join(uids[:min(len(uids), 10)], ", "))
	case topic == "":
		return errorf(http.StatusNotFound, CodeMessageNotFound,
			"no trace event carries message id %s; pass topic= to read it from the broker", id)
	}
	// Not traced: the broker may still hold it.
	v, err := a.untraced(ctx, topic, id, o)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, v)
	return nil
}

// uidsOf finds the uids of the messages whose events carry a message id.
// An id given without partition or batch index is tried in the forms the
// sidecar writes (0 or -1 for each).
func (a *API) uidsOf(ctx context.Context, raw string, id MessageID, topic string) ([]string, error) {
	forms := []string{raw}
	parts := []int32{id.Partition}
	if !id.HasPartition {
		parts = []int32{0, -1}
	}
	batches := []int32{id.Batch}
	if !id.HasBatch {
		batches = []int32{0, -1}
	}
	for _, p := range parts {
		for _, b := range batches {
			f := MessageID{Ledger: id.Ledger, Entry: id.Entry, Partition: p, Batch: b}.String()
			if !slices.Contains(forms, f) {
				forms = append(forms, f)
			}
		}
	}
	seen := map[string]bool{}
	var uids []string
	for _, f := range forms {
		res, err := a.opts.Store.ByMessageID(ctx, f, tracer.Page{Limit: tracer.MaxPageSize})
		if err != nil {
			return nil, storeError(err)
		}
		for _, ev := range res.Events {
			if topic != "" && ev.Topic != "" && baseTopic(ev.Topic) != baseTopic(topic) {
				continue
			}
			if !seen[ev.UID] {
				seen[ev.UID] = true
				uids = append(uids, ev.UID)
			}
		}
	}
	sort.Strings(uids)
	return uids, nil
}

// baseTopic strips a partition suffix.
func baseTopic(t string) string {
	if i := strings.LastIndex(t, "-partition-"); i > 0 {
		if _, err := strconv.Atoi(t[i+len("-partition-"):]); err == nil {
			return t[:i]
		}
	}
	return t
}

// untraced reads a message no trace event knows from the broker; when it
// carries a uid that the trace does know, that message's view is answered.
func (a *API) untraced(ctx context.Context, topic string, id MessageID, o viewOptions) (*messageView, error) {
	b := a.opts.Broker
	if b == nil {
		return nil, errorf(http.StatusNotFound, CodeMessageNotFound,
			"no trace event carries message id %s and no broker is configured to read it", id)
	}
	m, err := a.brokerMessage(ctx, b, topic, id)
	if errors.Is(err, ErrNotRetained) || errors.Is(err, ErrTopicNotFound) {
		return nil, errorf(http.StatusNotFound, CodeMessageNotFound,
			"no trace event carries message id %s and the broker does not hold it on %s", id, topic)
	}
	if err != nil {
		return nil, &Error{Status: http.StatusServiceUnavailable, Code: CodeBrokerUnavailable, Message: "the broker could not be asked", Err: err}
	}
	if uid := m.Properties[PropUID]; uid != "" {
		v, err := a.messageByUID(ctx, uid, o)
		if err == nil {
			return v, nil
		}
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeMessageNotFound {
			return nil, err
		}
	}
	v := &messageView{
		messageInfo: messageInfo{UID: m.Properties[PropUID], MessageID: id.String(), Topic: topic, Key: m.Key, Tags: []string{}},
		Timeline:    []eventJSON{},
	}
	if o.content {
		v.Content = renderContent(m, o.maxBytes)
		v.ContentNote = "no trace event carries this message: it was read from the broker only"
	}
	return v, nil
}

// content reads a message's content from its cluster's broker. A nil
// content comes with a note that says why.
func (a *API) content(ctx context.Context, info messageInfo, maxBytes int) (*contentJSON, string) {
	if info.MessageID == "" {
		return nil, "no trace event carries a broker message id: the message has not reached a broker (see the timeline)"
	}
	id, err := ParseMessageID(info.MessageID)
	if err != nil {
		return nil, fmt.Sprintf("the trace's message id %q cannot be read: %v", truncate(info.MessageID, 60), err)
	}
	if info.Topic == "" {
		return nil, "no trace event names the topic"
	}
	b := a.brokerFor(info.Cluster)
	if b == nil {
		if info.Cluster != "" {
			return nil, fmt.Sprintf("no broker is configured for cluster %q", info.Cluster)
		}
		return nil, "no broker is configured"
	}
	m, err := a.brokerMessage(ctx, b, info.Topic, id)
	switch {
	case errors.Is(err, ErrNotRetained), errors.Is(err, ErrTopicNotFound):
		return nil, "the broker no longer holds this message (past retention, or its topic was deleted)"
	case err != nil:
		a.log.Warn("console could not read a message from the broker", "uid", info.UID, "topic", info.Topic,
			"message_id", info.MessageID, "err", err)
		return nil, "the broker could not be asked; try again"
	}
	if got := m.Properties[PropUID]; got != "" && got != info.UID {
		return nil, fmt.Sprintf("the broker's message at %s carries another uid (%s): not shown", id, got)
	}
	return renderContent(m, maxBytes), ""
}

// brokerMessage reads id from topic, or from the partition of a
// partitioned topic that id names.
func (a *API) brokerMessage(ctx context.Context, b Broker, topic string, id MessageID) (*BrokerMessage, error) {
	t, err := partitionTopic(ctx, b, topic, id)
	if err != nil {
		return nil, err
	}
	return b.Message(ctx, t, id)
}

// partitionTopic returns the stored topic that holds id: the topic itself,
// or its partition. The sidecar writes partition 0 for non-partitioned
// topics too, so for 0 the broker is asked whether the topic is
// partitioned.
func partitionTopic(ctx context.Context, b Broker, topic string, id MessageID) (string, error) {
	if baseTopic(topic) != topic || id.Partition < 0 {
		return topic, nil
	}
	if id.Partition > 0 {
		return topic + "-partition-" + strconv.Itoa(int(id.Partition)), nil
	}
	n, err := b.Partitions(ctx, topic)
	if err != nil {
		return "", err
	}
	if n > 0 {
		return topic + "-partition-0", nil
	}
	return topic, nil
}

// renderContent returns the payload as UTF-8 when it is valid UTF-8, else
// base64, cut at maxBytes (on a character boundary for UTF-8).
func renderContent(m *BrokerMessage, maxBytes int) *contentJSON {
	c := &contentJSON{
		Topic: m.Topic, MessageID: m.ID.String(), Size: len(m.Payload), Key: m.Key, Properties: m.Properties,
		ProducerName: m.ProducerName, BatchSize: m.BatchSize,
	}
	if c.Properties == nil {
		c.Properties = map[string]string{}
	}
	if !m.PublishTime.IsZero() {
		t := m.PublishTime
		c.PublishTime = &t
	}
	if !m.EventTime.IsZero() {
		t := m.EventTime
		c.EventTime = &t
	}
	p := m.Payload
	if utf8.Valid(p) {
		if len(p) > maxBytes {
			cut := maxBytes
			for cut > 0 && !utf8.RuneStart(p[cut]) {
				cut--
			}
			p, c.Truncated = p[:cut], true
		}
		c.Encoding, c.Payload = "utf-8", string(p)
		return c
	}
	if len(p) > maxBytes {
		p, c.Truncated = p[:maxBytes], true
	}
	c.Encoding, c.Payload = "base64", base64.StdEncoding.EncodeToString(p)
	return c
}
