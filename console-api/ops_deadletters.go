package consoleapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/wire"
)

// DeadLetterProvider reads and resends the dead letters of the registered
// subscriptions. Errors wrapping ErrSubscriptionNotFound are answered 404
// SUBSCRIPTION_NOT_FOUND, ErrInvalidTopic 400 INVALID_TOPIC; others 503.
type DeadLetterProvider interface {
	// DeadLetterTopics lists the registered subscriptions of topic (every
	// topic when "") with their dead-letter topics.
	DeadLetterTopics(ctx context.Context, topic string) ([]DeadLetterTopic, error)
	// DeadLetters reads up to limit messages that subscription of topic
	// dead-lettered, oldest first; more is true when there are others.
	DeadLetters(ctx context.Context, topic, subscription string, limit int) (msgs []DeadLetter, more bool, err error)
	// Resend publishes the dead letters with these ids (their ids in the
	// dead-letter topic) to their original topic again, with their uid,
	// key, tags, properties and payload, so that subscription receives
	// them once more; by names who asked (for the trace and the log).
	Resend(ctx context.Context, topic, subscription string, messageIDs []string, by string) ([]ResendResult, error)
	// ExportDeadLetters calls f with every dead letter of subscription
	// (oldest first, as DeadLetters reads them) and its payload, until f
	// fails.
	ExportDeadLetters(ctx context.Context, topic, subscription string, f func(DeadLetter, []byte) error) error
}

// DeadLetterTopic is one subscription's dead-letter topic.
type DeadLetterTopic struct {
	Topic           string `json:"topic"`
	Subscription    string `json:"subscription"`
	DeadLetterTopic string `json:"deadLetterTopic"`
	MaxDeliveries   int    `json:"maxDeliveries"`
}

// DeadLetter is one message in a dead-letter topic.
type DeadLetter struct {
	MessageID         string            `json:"messageId"` // in the dead-letter topic
	UID               string            `json:"uid"`
	Key               string            `json:"key,omitempty"`
	Tags              []string          `json:"tags"`
	App               string            `json:"app,omitempty"`
	Reason            string            `json:"reason"`
	Deliveries        int               `json:"deliveries"`
	OriginalTopic     string            `json:"originalTopic"`
	OriginalMessageID string            `json:"originalMessageId,omitempty"`
	OriginalCluster   string            `json:"originalCluster,omitempty"`
	PublishTime       time.Time         `json:"publishTime"` // when it was dead-lettered
	PayloadBytes      int               `json:"payloadBytes"`
	Properties        map[string]string `json:"properties"` // the user's, without psc-*
}

// ResendResult is the outcome of one resend.
type ResendResult struct {
	MessageID string `json:"messageId"` // the dead letter's
	UID       string `json:"uid,omitempty"`
	// Status is resent, not_found (no dead letter of this subscription has
	// the id) or failed.
	Status       string `json:"status"`
	NewMessageID string `json:"newMessageId,omitempty"` // on the original topic
	Cluster      string `json:"cluster,omitempty"`
	Error        string `json:"error,omitempty"`
}

// MaxResend is the most dead letters one resend request names.
const MaxResend = 100

var deadLetterRoutes = []Route{
	{Method: http.MethodGet, Path: "/dead-letters", Params: []string{"topic"}, handler: (*API).listDeadLetterTopics},
	{Method: http.MethodGet, Path: "/dead-letters/messages", Params: []string{"topic", "subscription", "limit"}, handler: (*API).listDeadLetters},
	{Method: http.MethodGet, Path: "/dead-letters/export", Params: []string{"topic", "subscription"}, handler: (*API).exportDeadLetters},
	{Method: http.MethodPost, Path: "/dead-letters/resend", Params: []string{"topic", "subscription"}, handler: (*API).resendDeadLetters},
}

func init() { routes = append(routes, deadLetterRoutes...) }

func (a *API) deadLetterProvider() (DeadLetterProvider, error) {
	if a.opts.Ops.DeadLetters == nil {
		return nil, errorf(http.StatusServiceUnavailable, CodeStatsUnavailable, "no consume engine runs on this sidecar: there are no dead letters here")
	}
	return a.opts.Ops.DeadLetters, nil
}

// GET /dead-letters?topic=
func (a *API) listDeadLetterTopics(c *gin.Context) error {
	var topic string
	if t := c.Query("topic"); t != "" {
		var err error
		if topic, err = NormalizeTopic(t); err != nil {
			return err
		}
	}
	p, err := a.deadLetterProvider()
	if err != nil {
		return err
	}
	ctx, cancel := a.ctx(c)
	defer cancel()
	rows, err := p.DeadLetterTopics(ctx, topic)
	if err != nil {
		return statsError(err)
	}
	if rows == nil {
		rows = []DeadLetterTopic{}
	}
	c.JSON(http.StatusOK, gin.H{"data": rows})
	return nil
}

// subscriptionParams reads the required topic and subscription.
func subscriptionParams(c *gin.Context) (topic, sub string, err error) {
	t, s := c.Query("topic"), c.Query("subscription")
	if t == "" || s == "" {
		return "", "", badParam("topic and subscription are required")
	}
	if topic, err = NormalizeTopic(t); err != nil {
		return "", "", err
	}
	if len(s) > 255 {
		return "", "", badParam("subscription is longer than 255 bytes")
	}
	return topic, s, nil
}

// GET /dead-letters/messages?topic=&subscription=&limit=
func (a *API) listDeadLetters(c *gin.Context) error {
	topic, sub, err := subscriptionParams(c)
	if err != nil {
		return err
	}
	limit, err := parseLimit(c.Request.URL.Query(), 100)
	if err != nil {
		return err
	}
	p, err := a.deadLetterProvider()
	if err != nil {
		return err
	}
	ctx, cancel := a.ctx(c)
	defer cancel()
	msgs, more, err := p.DeadLetters(ctx, topic, sub, limit)
	if err != nil {
		return statsError(err)
	}
	if msgs == nil {
		msgs = []DeadLetter{}
	}
	c.JSON(http.StatusOK, gin.H{"data": msgs, "more": more})
	return nil
}

// maxResendBody caps the resend request's body.
const maxResendBody = 64 << 10

// ParseResendBody reads {"messageIds":["ledger:entry:partition:batch",...]}:
// 1 to MaxResend well-formed ids, duplicates dropped, no other field.
func ParseResendBody(body []byte) ([]string, error) {
	var req struct {
		MessageIDs []string `json:"messageIds"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, badParam("the body must be {\"messageIds\":[\"ledger:entry:partition:batch\",...]}: %s", truncate(err.Error(), 120))
	}
	if dec.More() {
		return nil, badParam("the body holds more than one JSON value")
	}
	if len(req.MessageIDs) == 0 || len(req.MessageIDs) > MaxResend {
		return nil, badParam("messageIds: give 1 to %d ids, got %d", MaxResend, len(req.MessageIDs))
	}
	out := make([]string, 0, len(req.MessageIDs))
	for _, id := range req.MessageIDs {
		parts, err := wire.ParseMessageID(id)
		if err != nil {
			return nil, errorf(http.StatusBadRequest, CodeInvalidMessageID, "messageIds: %q is not ledger:entry:partition:batch", truncate(id, 60))
		}
		canon := wire.FormatIDParts(parts.LedgerID, parts.EntryID, parts.Partition, parts.BatchIdx)
		if !slices.Contains(out, canon) {
			out = append(out, canon)
		}
	}
	return out, nil
}

// POST /dead-letters/resend?topic=&subscription= (operator)
func (a *API) resendDeadLetters(c *gin.Context) error {
	if err := a.require(c, RoleOperator); err != nil {
		return err
	}
	topic, sub, err := subscriptionParams(c)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(io.LimitReader(c.Request.Body, maxResendBody+1))
	if err != nil {
		return badParam("the body could not be read")
	}
	if len(body) > maxResendBody {
		return badParam("the body is larger than %d bytes", maxResendBody)
	}
	ids, err := ParseResendBody(body)
	if err != nil {
		return err
	}
	p, err := a.deadLetterProvider()
	if err != nil {
		return err
	}
	who, _ := PrincipalFrom(c)
	by := who.App
	if by == "" {
		by = "console"
	}
	// Resending publishes through the durable sender, which may take a
	// while per message: a longer bound than reads.
	ctx, cancel := context.WithTimeout(c.Request.Context(), 3*a.opts.Timeout)
	defer cancel()
	res, err := p.Resend(ctx, topic, sub, ids, by)
	if err != nil {
		return statsError(err)
	}
	n := 0
	for _, r := range res {
		if r.Status == "resent" {
			n++
		}
	}
	a.log.Info("console: dead letters resent", "topic", topic, "subscription", sub, "asked", len(ids), "resent", n, "by", by, "role", a.roleOf(c))
	c.JSON(http.StatusOK, gin.H{"results": res})
	return nil
}

// exportedDeadLetter is one line of GET /dead-letters/export.
type exportedDeadLetter struct {
	DeadLetter
	Encoding string `json:"encoding"` // "utf-8" or "base64"
	Payload  string `json:"payload"`
}

// GET /dead-letters/export?topic=&subscription=: every dead letter of the
// subscription with its payload, one JSON object per line.
func (a *API) exportDeadLetters(c *gin.Context) error {
	topic, sub, err := subscriptionParams(c)
	if err != nil {
		return err
	}
	p, err := a.deadLetterProvider()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), 3*a.opts.Timeout)
	defer cancel()
	started := false
	enc := json.NewEncoder(c.Writer)
	err = p.ExportDeadLetters(ctx, topic, sub, func(d DeadLetter, payload []byte) error {
		if !started {
			c.Header("Content-Type", "application/x-ndjson")
			c.Header("Content-Disposition", `attachment; filename="dead-letters.jsonl"`)
			c.Status(http.StatusOK)
			started = true
		}
		line := exportedDeadLetter{DeadLetter: d, Encoding: "utf-8", Payload: string(payload)}
		if !utf8.Valid(payload) {
			line.Encoding, line.Payload = "base64", base64.StdEncoding.EncodeToString(payload)
		}
		return enc.Encode(line)
	})
	if err != nil && !started {
		return statsError(err)
	}
	if err != nil {
		a.log.Warn("console: dead-letter export cut short", "topic", topic, "subscription", sub, "err", err)
		return nil // the answer has begun: the client sees a short file
	}
	if !started {
		c.Header("Content-Type", "application/x-ndjson")
		c.Status(http.StatusOK)
	}
	return nil
}
