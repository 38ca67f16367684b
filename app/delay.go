package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/gin-gonic/gin"

	"github.com/pulsar-sidecar/pulsar-sidecar/delay"
	"github.com/pulsar-sidecar/pulsar-sidecar/durable"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/wire"
	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
	"github.com/pulsar-sidecar/pulsar-sidecar/proxy"
)

// startDelay builds the delay engine (issue 6): delay-level topics with
// their forwarders, the timing wheel over its Redis index, and Pulsar's
// native delivery, chosen per message by the engine.
func (a *App) startDelay(ctx context.Context) error {
	cfg := &a.cfg.Delay
	dc := delay.Config{
		Mode: delay.Mode(cfg.Mode),
		Node: a.cfg.Node,
	}
	dc.Index.Prefix = a.delayPrefix() // one hash tag on Redis Cluster (redis.go)
	dc.Index.WaitReplicas, dc.Index.WaitTimeout = a.cfg.Redis.WaitReplicas, a.cfg.Redis.WaitTimeout
	if strings.TrimSpace(cfg.Levels) == "off" {
		dc.Levels.Disabled = true
	} else if cfg.Levels != "" {
		dc.Levels.Levels = strings.Fields(strings.ReplaceAll(cfg.Levels, ",", " "))
	}
	dc.Logger = a.log.With("component", "delay")
	e, err := delay.NewEngine(delay.EngineOptions{
		Client: a.consumerClient,
		// Level messages and native delays go to the primary through the
		// pool: a failure is the produce request's answer. Due messages go
		// through the durable sender, like any produce (ADR 040).
		Publisher:    a.pool,
		DuePublisher: duePublisher{a.durable},
		Redis:        a.rdb,
		Recorder:     a.rec,
		Registerer:   a.reg,
		// While the primary's breaker is open, level and native messages
		// go to the wheel instead of waiting for a broker that is down.
		PrimaryDown: a.primaryDown,
		Config:      dc,
	})
	if err != nil {
		return fmt.Errorf("app: delay engine: %w", err)
	}
	// Start does not wait for the broker: the level forwarders attach in
	// the background, and /readyz reports them until they have.
	if err := e.Start(ctx); err != nil {
		return fmt.Errorf("app: start delay engine: %w", err)
	}
	a.delay = e
	return nil
}

// duePublisher forwards due messages, wheel and level, through the durable
// sender: retry, the disaster-recovery cluster and the spool, so a message
// that falls due while the primary is down is kept like any produce, with
// its uid (ADR 040, ADR 050).
type duePublisher struct{ d *durable.Sender }

var _ delay.DuePublisher = duePublisher{}

func (p duePublisher) PublishDue(ctx context.Context, topic string, pm *pulsar.ProducerMessage, done func(delay.Delivery, error)) {
	p.d.SendAsync(ctx, dueMessage(topic, pm, time.Now()), func(rc produce.Receipt, err error) {
		if err != nil {
			done(delay.Delivery{}, err)
			return
		}
		done(delay.Delivery{MessageID: rc.MessageID, Cluster: rc.Cluster, Status: string(rc.Status)}, nil)
	})
}

// dueMessage is the produce.Message whose PulsarProperties are pm's
// properties, so the durable sender (and a spool replay) publishes exactly
// what the forwarder built: the psc-* properties become their fields, the
// rest stay properties. A message without psc-accepted-at (none that the
// sidecar schedules) gets now.
func dueMessage(topic string, pm *pulsar.ProducerMessage, now time.Time) *produce.Message {
	m := &produce.Message{Topic: topic, Key: pm.Key, EventTime: pm.EventTime, Payload: pm.Payload, AcceptedAt: now}
	for k, v := range pm.Properties {
		switch k {
		case produce.PropUID:
			m.UID = v
		case produce.PropApp:
			m.App = v
		case produce.PropTags:
			m.Tags = wire.ParseTags(v)
		case produce.PropAcceptedAt:
			if t, err := time.Parse(produce.AcceptedAtLayout, v); err == nil {
				m.AcceptedAt = t
				continue
			}
			fallthrough // unreadable: kept as it was
		default:
			if m.Properties == nil {
				m.Properties = make(map[string]string, len(pm.Properties))
			}
			m.Properties[k] = v
		}
	}
	return m
}

// delayScheduler lets the produce path hand delayed messages to the engine.
type delayScheduler struct {
	e       *delay.Engine
	cluster string
}

var _ produce.Scheduler = delayScheduler{}

func (d delayScheduler) HasLevel(level string) bool { return d.e.HasLevel(level) }

func (d delayScheduler) ScheduleAsync(ctx context.Context, m *produce.Message, done func(produce.Receipt, error)) {
	d.e.ScheduleAsync(ctx, delay.Request{
		UID: m.UID, App: m.App, Topic: m.Topic, Key: m.Key, Tags: m.Tags,
		Properties: m.PulsarProperties(), Payload: m.Payload, EventTime: m.EventTime,
		DeliverAfter: m.DeliverAfter, DeliverAt: m.DeliverAt, Level: m.DelayLevel,
		AcceptedAt: m.AcceptedAt,
	}, func(r delay.Result, err error) {
		if err != nil {
			done(produce.Receipt{}, delayError(err))
			return
		}
		rc := produce.Receipt{Cluster: d.cluster, Status: produce.StatusScheduled, DeliverAt: r.Due}
		if r.MessageID != nil {
			rc.MessageID = wire.FormatMessageID(r.MessageID)
		}
		done(rc, nil)
	})
}

// delayError maps engine errors to answers.
func delayError(err error) error {
	switch {
	case errors.Is(err, delay.ErrUnknownLevel), errors.Is(err, delay.ErrInvalid):
		return &proxy.Error{Status: http.StatusBadRequest, Code: proxy.CodeInvalidDelay, Message: err.Error(), Err: err}
	case errors.Is(err, delay.ErrNotFound):
		return &proxy.Error{Status: http.StatusNotFound, Code: proxy.CodeDelayedNotFound,
			Message: "no delayed message with this uid waits (delivered, cancelled, native deliverAt, or never scheduled)", Err: err}
	case errors.Is(err, delay.ErrLevelFixed):
		return &proxy.Error{Status: http.StatusConflict, Code: proxy.CodeDelayedLevel,
			Message: "a delayLevel message cannot be rescheduled: cancel it and produce it again", Err: err}
	case errors.Is(err, delay.ErrInFlight):
		return &proxy.Error{Status: http.StatusConflict, Code: proxy.CodeDelayedInFlight,
			Message: "the message is being delivered right now", RetryAfter: time.Second, Err: err}
	case errors.Is(err, delay.ErrModeUnavailable):
		return &proxy.Error{Status: http.StatusNotImplemented, Code: proxy.CodeDelayUnavailable, Message: err.Error(), Err: err}
	case errors.Is(err, delay.ErrNotReplicated):
		return &proxy.Error{Status: http.StatusServiceUnavailable, Code: proxy.CodeDelayNotReplicated, RetryAfter: time.Second,
			Message: "the delayed message reached fewer Redis replicas than redis.waitReplicas in time: it is not acknowledged; retry with the same idempotency key", Err: err}
	case errors.Is(err, delay.ErrClosed):
		return &proxy.Error{Status: http.StatusServiceUnavailable, Code: proxy.CodeShuttingDown,
			Message: "the sidecar is shutting down", Err: err}
	}
	return err
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
func (a *App) mountDelay(v1 *gin.RouterGroup) {
	v1.GET("/delayed/:uid", a.getDelayed)
	v1.DELETE("/delayed/:uid", a.cancelDelayed)
	v1.PUT("/delayed/:uid", a.rescheduleDelayed)
	v1.GET("/topics/:tenant/:namespace/:topic/delayed", a.listDelayed)
	v1.DELETE("/topics/:tenant/:namespace/:topic/delayed", a.cancelDelayedByKey)
}

// mayProduceTopic checks the app's produce permission on a full topic name.
func mayProduceTopic(c *gin.Context, full string) bool {
	rest := strings.TrimPrefix(full, "persistent://")
	parts := strings.SplitN(rest, "/", 3)
	return len(parts) == 3 && proxy.MayProduce(c, parts[0], parts[1], parts[2])
}

func forbidden(full string) error {
	return &proxy.Error{Status: http.StatusForbidden, Code: proxy.CodeForbidden,
		Message: fmt.Sprintf("the app may not produce to %s, so it may not see or change its delayed messages", full)}
}

// delayedMessage finds the delayed message of the path's uid that the
// caller may act on: a wheel message, or a waiting level message (its
// record). Only reads: a malformed uid is 400 INVALID_UID, an unknown one
// 404 DELAYED_NOT_FOUND, another app's 403 FORBIDDEN.
func (a *App) delayedMessage(c *gin.Context) (delay.Scheduled, error) {
	uid := c.Param("uid")
	if !canonicalUID(uid) {
		return delay.Scheduled{}, &proxy.Error{Status: http.StatusBadRequest, Code: proxy.CodeInvalidUID,
			Message: fmt.Sprintf("uid %q is not a uid: want the 36-character lower-case UUID the produce answer gave", clip(uid, 64))}
	}
	s, err := a.delay.Get(c.Request.Context(), uid)
	if err != nil {
		return s, delayError(err)
	}
	if !mayProduceTopic(c, s.Topic) {
		return s, forbidden(s.Topic)
	}
	return s, nil
}

// canonicalUID reports whether s is a UUID in the canonical form
// produce.NewUID writes: 8-4-4-4-12 lower-case hex digits.
func canonicalUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}

// clip shortens s for an error message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func (a *App) getDelayed(c *gin.Context) {
	s, err := a.delayedMessage(c)
	if err != nil {
		a.proxy.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, viewOf(s))
}

// cancelDelayed cancels by uid, after the checks of delayedMessage: a
// wheel message is removed, a level message gets a cancel mark that stops
// its forwarder. "cancelled" is false when it may be being delivered right
// now ("inFlight").
func (a *App) cancelDelayed(c *gin.Context) {
	if _, err := a.delayedMessage(c); err != nil {
		a.proxy.Fail(c, err)
		return
	}
	uid := c.Param("uid")
	cn, err := a.delay.Cancel(c.Request.Context(), uid)
	if err != nil {
		a.proxy.Fail(c, delayError(err))
		return
	}
	c.JSON(http.StatusOK, gin.H{"uid": uid, "mode": cn.Mode, "inFlight": cn.InFlight, "cancelled": !cn.InFlight})
}

// rescheduleDelayed moves a wheel message: {"deliverAt": RFC 3339} or
// {"deliverAfter": "15m"} (from now). A level message answers 409
// DELAYED_LEVEL_FIXED.
func (a *App) rescheduleDelayed(c *gin.Context) {
	if _, err := a.delayedMessage(c); err != nil {
		a.proxy.Fail(c, err)
		return
	}
	var body struct {
		DeliverAt    string `json:"deliverAt"`
		DeliverAfter string `json:"deliverAfter"`
	}
	dec := jsonDecoder(c)
	if err := dec.Decode(&body); err != nil || (body.DeliverAt == "") == (body.DeliverAfter == "") {
		a.proxy.Fail(c, badDelay("send exactly one of deliverAt (RFC 3339) and deliverAfter (Go duration)"))
		return
	}
	var due time.Time
	if body.DeliverAt != "" {
		t, err := time.Parse(time.RFC3339Nano, body.DeliverAt)
		if err != nil {
			a.proxy.Fail(c, badDelay("deliverAt %q is not RFC 3339", body.DeliverAt))
			return
		}
		due = t
	} else {
		d, err := time.ParseDuration(body.DeliverAfter)
		if err != nil || d <= 0 {
			a.proxy.Fail(c, badDelay("deliverAfter %q is not a positive Go duration", body.DeliverAfter))
			return
		}
		due = time.Now().Add(d)
	}
	if due.After(time.Now().Add(a.cfg.Limits.MaxDelay)) {
		a.proxy.Fail(c, badDelay("the new time is beyond limits.maxDelay (%s)", a.cfg.Limits.MaxDelay))
		return
	}
	if err := a.delay.Reschedule(c.Request.Context(), c.Param("uid"), due); err != nil {
		a.proxy.Fail(c, delayError(err))
		return
	}
	s, err := a.delay.Get(c.Request.Context(), c.Param("uid"))
	if err != nil {
		a.proxy.Fail(c, delayError(err))
		return
	}
	c.JSON(http.StatusOK, viewOf(s))
}

// jsonDecoder reads a small JSON body strictly (64 KiB, no unknown fields).
func jsonDecoder(c *gin.Context) *json.Decoder {
	dec := json.NewDecoder(http.MaxBytesReader(c.Writer, c.Request.Body, 64<<10))
	dec.DisallowUnknownFields()
	return dec
}

func badDelay(format string, args ...any) error {
	return &proxy.Error{Status: http.StatusBadRequest, Code: proxy.CodeInvalidDelay, Message: fmt.Sprintf(format, args...)}
}

// topicOf validates the path's topic and the app's produce permission.
func (a *App) topicOf(c *gin.Context) (string, error) {
	full, err := proxy.TopicName(c.Param("tenant"), c.Param("namespace"), c.Param("topic"))
	if err != nil {
		return "", err
	}
	if !proxy.MayProduce(c, c.Param("tenant"), c.Param("namespace"), c.Param("topic")) {
		return "", forbidden(full)
	}
	if err := proxy.CheckInternalTopic(c.Param("tenant"), c.Param("namespace"), c.Param("topic")); err != nil {
		return "", err
	}
	return full, nil
}

// listDelayed lists the wheel messages of a topic with a key (?key=, and
// ?limit= up to 1000).
func (a *App) listDelayed(c *gin.Context) {
	full, err := a.topicOf(c)
	if err != nil {
		a.proxy.Fail(c, err)
		return
	}
	key := c.Query("key")
	if key == "" {
		a.proxy.Fail(c, badDelay("?key= is required: delayed messages are listed by topic and key"))
		return
	}
	limit := 100
	if l := c.Query("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			a.proxy.Fail(c, badDelay("limit %q: want 1 to 1000", l))
			return
		}
		limit = n
	}
	list, err := a.delay.List(c.Request.Context(), delay.Query{Topic: full, Key: key, Limit: limit})
	if err != nil {
		a.proxy.Fail(c, delayError(err))
		return
	}
	out := make([]scheduledView, 0, len(list))
	for _, s := range list {
		out = append(out, viewOf(s))
	}
	c.JSON(http.StatusOK, gin.H{"messages": out})
}

// cancelDelayedByKey cancels every delayed message of a topic with a key
// (?key=): wheel messages are removed, level messages marked.
func (a *App) cancelDelayedByKey(c *gin.Context) {
	full, err := a.topicOf(c)
	if err != nil {
		a.proxy.Fail(c, err)
		return
	}
	key := c.Query("key")
	if key == "" {
		a.proxy.Fail(c, badDelay("?key= is required: cancel by topic and key"))
		return
	}
	uids, err := a.delay.CancelByKey(c.Request.Context(), full, key)
	if err != nil {
		a.proxy.Fail(c, delayError(err))
		return
	}
	if uids == nil {
		uids = []string{}
	}
	c.JSON(http.StatusOK, gin.H{"topic": full, "key": key, "cancelled": uids})
}
