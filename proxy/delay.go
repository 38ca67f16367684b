package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/pulsar-sidecar/pulsar-sidecar/delay"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/wire"
	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
)

// DelayEngine is what the delay API needs of the delay engine
// (*delay.Engine): inspect, cancel and reschedule delayed messages.
type DelayEngine interface {
	Get(ctx context.Context, uid string) (delay.Scheduled, error)
	Cancel(ctx context.Context, uid string) (delay.Cancellation, error)
	CancelByKey(ctx context.Context, topic, key string) ([]string, error)
	List(ctx context.Context, q delay.Query) ([]delay.Scheduled, error)
	Reschedule(ctx context.Context, uid string, due time.Time) error
}

var _ DelayEngine = (*delay.Engine)(nil)

// DelayScheduler lets the produce path hand delayed messages to the delay
// engine. Its errors are the engine's; sendError answers them.
type DelayScheduler struct {
	Engine  *delay.Engine
	Cluster string // the primary cluster, in the receipts
}

var _ produce.Scheduler = DelayScheduler{}

func (d DelayScheduler) HasLevel(level string) bool { return d.Engine.HasLevel(level) }

func (d DelayScheduler) ScheduleAsync(ctx context.Context, m *produce.Message, done func(produce.Receipt, error)) {
	d.Engine.ScheduleAsync(ctx, delay.Request{
		UID: m.UID, App: m.App, Topic: m.Topic, Key: m.Key, Tags: m.Tags,
		Properties: m.PulsarProperties(), Payload: m.Payload, EventTime: m.EventTime,
		DeliverAfter: m.DeliverAfter, DeliverAt: m.DeliverAt, Level: m.DelayLevel,
		AcceptedAt: m.AcceptedAt,
	}, func(r delay.Result, err error) {
		if err != nil {
			done(produce.Receipt{}, err)
			return
		}
		rc := produce.Receipt{Cluster: d.Cluster, Status: produce.StatusScheduled, DeliverAt: r.Due}
		if r.MessageID != nil {
			rc.MessageID = wire.FormatMessageID(r.MessageID)
		}
		done(rc, nil)
	})
}

// scheduledView is a scheduled message in the delay API's answers.
type scheduledView struct {
	UID        string            `json:"uid"`
	Mode       string            `json:"mode"`
	Level      string            `json:"level,omitempty"`
	Topic      string            `json:"topic"`
	Key        string            `json:"key,omitempty"`
	Tags       []string          `json:"tags,omitempty"`
	App        string            `json:"app,omitempty"`
	Due        string            `json:"due"`
	Properties map[string]string `json:"properties,omitempty"`
	PayloadLen int               `json:"payloadBytes"`
	InFlight   bool              `json:"inFlight,omitempty"`
}

func viewOf(s delay.Scheduled) scheduledView {
	props := map[string]string{}
	for k, v := range s.Properties {
		if !strings.HasPrefix(k, produce.ReservedPrefix) {
			props[k] = v
		}
	}
	size := len(s.Payload)
	if s.Mode == delay.ModeLevel {
		size = s.Size // the payload stays in the level topic
	}
	return scheduledView{UID: s.UID, Mode: string(s.Mode), Level: s.Level, Topic: s.Topic, Key: s.Key, Tags: s.Tags, App: s.App,
		Due: s.Due.UTC().Format(time.RFC3339Nano), Properties: props, PayloadLen: size,
		InFlight: !s.LeaseUntil.IsZero()}
}

// mountDelay adds the delay API to the authenticated /v1 group. Every call
// needs produce permission on the message's topic, in every delay mode;
// calls by uid check the uid's form first. A call refused for any of these
// reasons writes nothing.
func (s *Server) mountDelay(v1 *gin.RouterGroup) {
	v1.GET("/delayed/:uid", s.getDelayed)
	v1.DELETE("/delayed/:uid", s.cancelDelayed)
	v1.PUT("/delayed/:uid", s.rescheduleDelayed)
	v1.GET("/topics/:tenant/:namespace/:topic/delayed", s.listDelayed)
	v1.DELETE("/topics/:tenant/:namespace/:topic/delayed", s.cancelDelayedByKey)
}

// mayProduceTopic checks the app's produce permission on a full topic name.
func mayProduceTopic(c *gin.Context, full string) bool {
	rest := strings.TrimPrefix(full, "persistent://")
	parts := strings.SplitN(rest, "/", 3)
	return len(parts) == 3 && MayProduce(c, parts[0], parts[1], parts[2])
}

func forbiddenDelayed(full string) error {
	return &Error{Status: http.StatusForbidden, Code: CodeForbidden,
		Message: fmt.Sprintf("the app may not produce to %s, so it may not see or change its delayed messages", full)}
}

// delayedMessage finds the delayed message of the path's uid that the
// caller may act on: a wheel message, or a waiting level message (its
// record). Only reads: a malformed uid is 400 INVALID_UID, an unknown one
// 404 DELAYED_NOT_FOUND, another app's 403 FORBIDDEN.
func (s *Server) delayedMessage(c *gin.Context) (delay.Scheduled, error) {
	uid := c.Param("uid")
	if !wire.ValidUID(uid) {
		return delay.Scheduled{}, &Error{Status: http.StatusBadRequest, Code: CodeInvalidUID,
			Message: fmt.Sprintf("uid %q is not a uid: want the 36-character lower-case UUID the produce answer gave", truncate(uid, 64))}
	}
	m, err := s.opts.Delay.Get(c.Request.Context(), uid)
	if err != nil {
		return m, err
	}
	if !mayProduceTopic(c, m.Topic) {
		return m, forbiddenDelayed(m.Topic)
	}
	return m, nil
}

func (s *Server) getDelayed(c *gin.Context) {
	m, err := s.delayedMessage(c)
	if err != nil {
		s.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, viewOf(m))
}

// cancelDelayed cancels by uid, after the checks of delayedMessage: a
// wheel message is removed, a level message gets a cancel mark that stops
// its forwarder. "cancelled" is false when it may be being delivered right
// now ("inFlight").
func (s *Server) cancelDelayed(c *gin.Context) {
	if _, err := s.delayedMessage(c); err != nil {
		s.Fail(c, err)
		return
	}
	uid := c.Param("uid")
	cn, err := s.opts.Delay.Cancel(c.Request.Context(), uid)
	if err != nil {
		s.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"uid": uid, "mode": cn.Mode, "inFlight": cn.InFlight, "cancelled": !cn.InFlight})
}

// rescheduleDelayed moves a wheel message: {"deliverAt": RFC 3339} or
// {"deliverAfter": "15m"} (from now). A level message answers 409
// DELAYED_LEVEL_FIXED.
func (s *Server) rescheduleDelayed(c *gin.Context) {
	if _, err := s.delayedMessage(c); err != nil {
		s.Fail(c, err)
		return
	}
	var body struct {
		DeliverAt    string `json:"deliverAt"`
		DeliverAfter string `json:"deliverAfter"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(c.Writer, c.Request.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || (body.DeliverAt == "") == (body.DeliverAfter == "") {
		s.Fail(c, badRequest(CodeInvalidDelay, "send exactly one of deliverAt (RFC 3339) and deliverAfter (Go duration)"))
		return
	}
	var due time.Time
	if body.DeliverAt != "" {
		t, err := time.Parse(time.RFC3339Nano, body.DeliverAt)
		if err != nil {
			s.Fail(c, badRequest(CodeInvalidDelay, "deliverAt %q is not RFC 3339", body.DeliverAt))
			return
		}
		due = t
	} else {
		d, err := time.ParseDuration(body.DeliverAfter)
		if err != nil || d <= 0 {
			s.Fail(c, badRequest(CodeInvalidDelay, "deliverAfter %q is not a positive Go duration", body.DeliverAfter))
			return
		}
		due = time.Now().Add(d)
	}
	if due.After(time.Now().Add(s.opts.Limits.MaxDelay)) {
		s.Fail(c, badRequest(CodeInvalidDelay, "the new time is beyond limits.maxDelay (%s)", s.opts.Limits.MaxDelay))
		return
	}
	if err := s.opts.Delay.Reschedule(c.Request.Context(), c.Param("uid"), due); err != nil {
		s.Fail(c, err)
		return
	}
	m, err := s.opts.Delay.Get(c.Request.Context(), c.Param("uid"))
	if err != nil {
		s.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, viewOf(m))
}

// delayTopic validates the path's topic and the app's produce permission.
func delayTopic(c *gin.Context) (string, error) {
	full, err := TopicName(c.Param("tenant"), c.Param("namespace"), c.Param("topic"))
	if err != nil {
		return "", err
	}
	if !MayProduce(c, c.Param("tenant"), c.Param("namespace"), c.Param("topic")) {
		return "", forbiddenDelayed(full)
	}
	if err := CheckInternalTopic(c.Param("tenant"), c.Param("namespace"), c.Param("topic")); err != nil {
		return "", err
	}
	return full, nil
}

// delayTopicKey is delayTopic and the required ?key= (why says what the
// key is for, in the error).
func delayTopicKey(c *gin.Context, why string) (full, key string, err error) {
	if full, err = delayTopic(c); err != nil {
		return "", "", err
	}
	if key = c.Query("key"); key == "" {
		return "", "", badRequest(CodeInvalidDelay, "?key= is required: %s", why)
	}
	return full, key, nil
}

// listDelayed lists the wheel messages of a topic with a key (?key=, and
// ?limit= up to 1000).
func (s *Server) listDelayed(c *gin.Context) {
	full, key, err := delayTopicKey(c, "delayed messages are listed by topic and key")
	if err != nil {
		s.Fail(c, err)
		return
	}
	limit := 100
	if l := c.Query("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			s.Fail(c, badRequest(CodeInvalidDelay, "limit %q: want 1 to 1000", l))
			return
		}
		limit = n
	}
	list, err := s.opts.Delay.List(c.Request.Context(), delay.Query{Topic: full, Key: key, Limit: limit})
	if err != nil {
		s.Fail(c, err)
		return
	}
	out := make([]scheduledView, 0, len(list))
	for _, m := range list {
		m.Mode = delay.ModeWheel // List reads the wheel's index only, and leaves Mode empty
		out = append(out, viewOf(m))
	}
	c.JSON(http.StatusOK, gin.H{"messages": out})
}

// cancelDelayedByKey cancels every delayed message of a topic with a key
// (?key=): wheel messages are removed, level messages marked.
func (s *Server) cancelDelayedByKey(c *gin.Context) {
	full, key, err := delayTopicKey(c, "cancel by topic and key")
	if err != nil {
		s.Fail(c, err)
		return
	}
	uids, err := s.opts.Delay.CancelByKey(c.Request.Context(), full, key)
	if err != nil {
		s.Fail(c, err)
		return
	}
	if uids == nil {
		uids = []string{}
	}
	c.JSON(http.StatusOK, gin.H{"topic": full, "key": key, "cancelled": uids})
}
