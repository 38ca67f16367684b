package consume

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/apierr"
)

// Routes, relative to the router given to Register (the data plane's /v1
// group), also the route labels of HTTP metrics.
const (
	RouteSubscriptions = "/topics/:tenant/:namespace/:topic/subscriptions"
	RouteSubscription  = RouteSubscriptions + "/:subscription"
	RouteReceive       = RouteSubscription + "/receive"
	RouteAck           = RouteSubscription + "/ack"
	RouteNack          = RouteSubscription + "/nack"
	RouteStats         = RouteSubscription + "/stats"
	RouteBacklog       = RouteSubscription + "/backlog"
)

// Authorizer decides who may consume. MayConsume is asked for every
// request on a subscription (registering, reading, deleting, receiving,
// acking, stats); listing a topic's subscriptions shows only those the app
// may consume. Implementations must be safe for concurrent use.
type Authorizer interface {
	MayConsume(app, tenant, namespace, topic, subscription string) bool
}

// AuthorizerFunc adapts a function to Authorizer.
type AuthorizerFunc func(app, tenant, namespace, topic, subscription string) bool

// MayConsume calls f.
func (f AuthorizerFunc) MayConsume(app, tenant, namespace, topic, subscription string) bool {
	return f(app, tenant, namespace, topic, subscription)
}

// HTTPOptions configure the handlers.
type HTTPOptions struct {
	// AppFromContext returns the authenticated app that the data plane's
	// auth middleware stored in the gin context; false answers 401. When
	// nil, every request is app "" (no authentication).
	AppFromContext func(*gin.Context) (string, bool)
	// Authorizer answers 403 when it says no; nil allows everything.
	Authorizer Authorizer
	// MayConsumeContext, when set, is asked too, with the request context
	// (the data plane's proxy.MayConsume, which checks the authenticated
	// app's consume patterns for the topic); false answers 403.
	MayConsumeContext func(c *gin.Context, tenant, namespace, topic string) bool
	// MayDeadLetterContext, when set, is asked when a registration names
	// its own deadLetterTopic (other than the default
	// <topic>-<subscription>-DLQ): the sidecar writes dead letters there on
	// the app's behalf, so the app must be allowed to produce to it (the
	// data plane's proxy.MayProduce, internal topics refused); false
	// answers 403 FORBIDDEN and nothing is registered.
	MayDeadLetterContext func(c *gin.Context, tenant, namespace, topic string) bool
	// OnError is called with every error answer (e.g. to count it by code).
	OnError func(c *gin.Context, e *Error)
	Logger  *slog.Logger // 5xx causes; the Service's logger when nil
}

// Register mounts the consume API on r, normally the data plane's /v1
// group after its authentication middleware:
//
//	PUT    /topics/{tenant}/{namespace}/{topic}/subscriptions/{subscription}   register or replace
//	GET    /topics/{tenant}/{namespace}/{topic}/subscriptions/{subscription}   read
//	DELETE /topics/{tenant}/{namespace}/{topic}/subscriptions/{subscription}   remove
//	GET    /topics/{tenant}/{namespace}/{topic}/subscriptions                  list
//	POST   .../subscriptions/{subscription}/receive                             long-poll
//	POST   .../subscriptions/{subscription}/ack
//	POST   .../subscriptions/{subscription}/nack
//	GET    .../subscriptions/{subscription}/stats
//	GET    .../subscriptions/{subscription}/backlog                             per-tag backlog
func (s *Service) Register(r gin.IRouter, h HTTPOptions) {
	if h.Logger == nil {
		h.Logger = s.log
	}
	a := &api{svc: s, h: h}
	r.PUT(RouteSubscription, a.put)
	r.GET(RouteSubscription, a.get)
	r.DELETE(RouteSubscription, a.delete)
	r.GET(RouteSubscriptions, a.list)
	r.POST(RouteReceive, a.receive)
	r.POST(RouteAck, a.ack)
	r.POST(RouteNack, a.nack)
	r.GET(RouteStats, a.stats)
	r.GET(RouteBacklog, a.tagBacklog)
}

type api struct {
	svc *Service
	h   HTTPOptions
}

// ErrorBody is the JSON error object, as the produce API writes it.
type ErrorBody = apierr.Body

// fail is the one place that turns an error into an HTTP answer: AsError's
// mapping, written and counted (OnError) by apierr's writer.
func (a *api) fail(c *gin.Context, err error) {
	w := apierr.Writer{API: "consume", Log: a.h.Logger, Map: func(_ *gin.Context, err error) *Error { return AsError(err) }}
	if a.h.OnError != nil {
		w.Count = a.h.OnError
	}
	w.Write(c, err)
}

// authorize reads the subscription from the path, checks it and the app's
// permission.
func (a *api) authorize(c *gin.Context) (SubscriptionRef, Caller, bool) {
	ref := SubscriptionRef{Tenant: c.Param("tenant"), Namespace: c.Param("namespace"), Topic: c.Param("topic"), Subscription: c.Param("subscription")}
	caller, ok := a.caller(c)
	if !ok {
		return ref, caller, false
	}
	if err := ref.Validate(); err != nil {
		a.fail(c, err)
		return ref, caller, false
	}
	if !a.mayConsume(c, caller.App, ref.TopicRef(), ref.Subscription) {
		a.fail(c, errorf(http.StatusForbidden, CodeForbidden, nil, "app %q may not consume subscription %q of %s", caller.App, ref.Subscription, ref.TopicRef().Path()))
		return ref, caller, false
	}
	return ref, caller, true
}

func (a *api) mayConsume(c *gin.Context, app string, t TopicRef, sub string) bool {
	if a.h.MayConsumeContext != nil && !a.h.MayConsumeContext(c, t.Tenant, t.Namespace, t.Topic) {
		return false
	}
	return a.h.Authorizer == nil || a.h.Authorizer.MayConsume(app, t.Tenant, t.Namespace, t.Topic, sub)
}

func (a *api) caller(c *gin.Context) (Caller, bool) {
	caller := Caller{ClientIP: c.ClientIP()}
	if a.h.AppFromContext != nil {
		app, ok := a.h.AppFromContext(c)
		if !ok {
			a.fail(c, errorf(http.StatusUnauthorized, CodeUnauthenticated, nil, "missing Authorization: Bearer <app token>"))
			return caller, false
		}
		caller.App = app
	}
	return caller, true
}

// readBody reads at most MaxBodyBytes.
func (a *api) readBody(c *gin.Context) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, a.svc.opts.Limits.MaxBodyBytes))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			a.fail(c, errorf(http.StatusRequestEntityTooLarge, CodeRequestTooLarge, nil, "the body exceeds %d bytes", mb.Limit))
		} else {
			a.fail(c, badRequest(CodeInvalidJSON, "reading the body: %v", err))
		}
		return nil, false
	}
	return body, true
}

func (a *api) put(c *gin.Context) {
	ref, caller, ok := a.authorize(c)
	if !ok {
		return
	}
	body, ok := a.readBody(c)
	if !ok {
		return
	}
	spec, err := DecodeSubscriptionSpec(body)
	if err != nil {
		a.fail(c, err)
		return
	}
	if !a.mayDeadLetter(c, ref, spec) {
		return
	}
	sub, created, err := a.svc.PutSubscription(c.Request.Context(), ref, spec, caller)
	if err != nil {
		a.fail(c, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	c.JSON(status, sub)
}

func (a *api) get(c *gin.Context) { serveRef(a, c, a.svc.GetSubscription) }

func (a *api) delete(c *gin.Context) {
	ref, _, ok := a.authorize(c)
	if !ok {
		return
	}
	if err := a.svc.DeleteSubscription(c.Request.Context(), ref); err != nil {
		a.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// mayDeadLetter answers 403 and returns false when spec names a
// dead-letter topic the app may not produce to. A malformed name passes
// here and is refused with 400 when the subscription is built.
func (a *api) mayDeadLetter(c *gin.Context, ref SubscriptionRef, spec SubscriptionSpec) bool {
	if spec.DeadLetterTopic == "" || a.h.MayDeadLetterContext == nil {
		return true
	}
	dlq, ok := parseTopicPath(spec.DeadLetterTopic, ref.TopicRef())
	if !ok || dlq.Validate() != nil {
		return true
	}
	def := defaultDeadLetterTopic(ref)
	if dlq == def || a.h.MayDeadLetterContext(c, dlq.Tenant, dlq.Namespace, dlq.Topic) {
		return true
	}
	a.fail(c, errorf(http.StatusForbidden, CodeForbidden, nil,
		"deadLetterTopic %s: the app may not produce to it; name a topic the app may produce to, or leave deadLetterTopic out for %s", dlq.Path(), def.Path()))
	return false
}

// SubscriptionList answers GET .../subscriptions.
type SubscriptionList struct {
	Subscriptions []*Subscription `json:"subscriptions"`
}

func (a *api) list(c *gin.Context) {
	topic := TopicRef{Tenant: c.Param("tenant"), Namespace: c.Param("namespace"), Topic: c.Param("topic")}
	caller, ok := a.caller(c)
	if !ok {
		return
	}
	subs, err := a.svc.ListSubscriptions(c.Request.Context(), topic)
	if err != nil {
		a.fail(c, err)
		return
	}
	out := make([]*Subscription, 0, len(subs))
	for _, s := range subs {
		if a.mayConsume(c, caller.App, topic, s.Subscription) {
			out = append(out, s)
		}
	}
	c.JSON(http.StatusOK, SubscriptionList{Subscriptions: out})
}

func (a *api) receive(c *gin.Context) {
	serveBody(a, c, DecodeReceiveRequest, a.svc.Receive, writeReceive)
}
func (a *api) ack(c *gin.Context)  { serveBody(a, c, DecodeAckRequest, a.svc.Ack, writeJSON) }
func (a *api) nack(c *gin.Context) { serveBody(a, c, DecodeNackRequest, a.svc.Nack, writeJSON) }

// serveBody is receive, ack and nack: authorize, read and decode the body,
// call the service, write its result.
func serveBody[Req, Resp any](a *api, c *gin.Context, decode func([]byte) (Req, error),
	call func(context.Context, SubscriptionRef, Req, Caller) (*Resp, error), write func(*gin.Context, *Resp)) {
	ref, caller, ok := a.authorize(c)
	if !ok {
		return
	}
	body, ok := a.readBody(c)
	if !ok {
		return
	}
	req, err := decode(body)
	if err != nil {
		a.fail(c, err)
		return
	}
	resp, err := call(c.Request.Context(), ref, req, caller)
	if err != nil {
		a.fail(c, err)
		return
	}
	write(c, resp)
}

func writeJSON[Resp any](c *gin.Context, resp *Resp) { c.JSON(http.StatusOK, resp) }

// writeReceive writes the receive answer with appendReceiveResponse
// (encode.go): the same bytes as c.JSON at a fraction of the cost.
func writeReceive(c *gin.Context, resp *ReceiveResponse) {
	buf := getBuf()
	*buf = appendReceiveResponse(*buf, resp)
	c.Data(http.StatusOK, "application/json; charset=utf-8", *buf)
	putBuf(buf)
}

func (a *api) stats(c *gin.Context)      { serveRef(a, c, a.svc.Stats) }
func (a *api) tagBacklog(c *gin.Context) { serveRef(a, c, a.svc.TagBacklog) }

// serveRef is get, stats and backlog: authorize, call the service with the
// subscription, answer its result as JSON.
func serveRef[Resp any](a *api, c *gin.Context, call func(context.Context, SubscriptionRef) (*Resp, error)) {
	ref, _, ok := a.authorize(c)
	if !ok {
		return
	}
	resp, err := call(c.Request.Context(), ref)
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, resp)
}

// --- decoders ---

// decodeStrict reads one JSON object into v: unknown fields, trailing data
// and anything but an object are errors. An empty body is the empty object
// when emptyOK.
func decodeStrict(body []byte, v any, emptyOK bool) error {
	if len(bytes.TrimSpace(body)) == 0 {
		if emptyOK {
			return nil
		}
		return badRequest(CodeInvalidJSON, "the body is empty: want a JSON object")
	}
	if b := bytes.TrimSpace(body); b[0] != '{' {
		return badRequest(CodeInvalidJSON, "the body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var ute *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return badRequest(CodeUnknownField, "%s", clip(strings.TrimPrefix(err.Error(), "json: "), 120))
		case errors.As(err, &ute):
			return badRequest(CodeInvalidJSON, "field %q: want %s, got %s", ute.Field, ute.Type, ute.Value)
		case errors.As(err, &se):
			return badRequest(CodeInvalidJSON, "malformed JSON at byte %d: %s", se.Offset, se.Error())
		default:
			return badRequest(CodeInvalidJSON, "malformed JSON: %s", clip(err.Error(), 120))
		}
	}
	if dec.More() {
		return badRequest(CodeInvalidJSON, "unexpected data after the JSON object")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest(CodeInvalidJSON, "unexpected data after the JSON object")
	}
	return nil
}

// DecodeSubscriptionSpec reads a PUT body; values are checked by
// SubscriptionSpec.Resolve.
func DecodeSubscriptionSpec(body []byte) (SubscriptionSpec, error) {
	var spec SubscriptionSpec
	err := decodeStrict(body, &spec, false)
	return spec, err
}

// DecodeReceiveRequest reads a receive body; an empty body takes the
// defaults. Bounds are checked by Service.Receive.
func DecodeReceiveRequest(body []byte) (ReceiveRequest, error) {
	var req ReceiveRequest
	err := decodeStrict(body, &req, true)
	return req, err
}

// DecodeAckRequest reads an ack body.
func DecodeAckRequest(body []byte) (AckRequest, error) {
	if ids, ok := decodeAckIDsFast(body); ok {
		return AckRequest{AckIDs: ids}, nil
	}
	var req AckRequest
	if err := decodeStrict(body, &req, false); err != nil {
		return req, err
	}
	if req.AckIDs == nil {
		return req, badRequest(CodeInvalidAckIDs, "ackIds is missing: want {\"ackIds\":[...]}")
	}
	return req, nil
}

// DecodeNackRequest reads a nack body.
func DecodeNackRequest(body []byte) (NackRequest, error) {
	if ids, ok := decodeAckIDsFast(body); ok {
		return NackRequest{AckIDs: ids}, nil
	}
	var req NackRequest
	if err := decodeStrict(body, &req, false); err != nil {
		return req, err
	}
	if req.AckIDs == nil {
		return req, badRequest(CodeInvalidAckIDs, "ackIds is missing: want {\"ackIds\":[...],\"redeliverAfter\":\"5s\"}")
	}
	return req, nil
}
