package consoleapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// CursorResetter resets the cursors of the subscriptions registered
// through the consume API (issue 15). Errors wrapping
// ErrSubscriptionNotFound are answered 404 SUBSCRIPTION_NOT_FOUND,
// ErrInvalidTopic 400 INVALID_TOPIC, ErrBrokerUnavailable 503
// BROKER_UNAVAILABLE; others 503 STATS_UNAVAILABLE.
type CursorResetter interface {
	// ResetCursor moves subscription of topic so that every message
	// published at or after at is delivered again to its HTTP consumers,
	// even those already acknowledged; by names who asked (for the trace
	// and the log).
	ResetCursor(ctx context.Context, topic, subscription string, at time.Time, by string) (CursorReset, error)
}

// CursorReset is the outcome of a reset.
type CursorReset struct {
	Topic        string    `json:"topic"`
	Subscription string    `json:"subscription"`
	ResetTo      time.Time `json:"resetTo"`
	// OperationID is the uid of the reset's cursor_reset trace event
	// (GET /messages/{operationId}/timeline).
	OperationID string `json:"operationId"`
	// ClearedStates is how many delivery-state entries (leases, acks,
	// dead-letter marks) the reset removed.
	ClearedStates int64 `json:"clearedStates"`
	// NotifiedReplicas is how many other replicas were told to drop the
	// messages they held of the subscription.
	NotifiedReplicas int `json:"notifiedReplicas"`
}

// ErrBrokerUnavailable is what an operations provider returns when the
// broker's admin API is not configured or failed (503 BROKER_UNAVAILABLE).
var ErrBrokerUnavailable = errors.New("consoleapi: the broker's admin API is unavailable")

var resetRoutes = []Route{
	{Method: http.MethodPost, Path: "/subscriptions/reset-cursor", Params: []string{"topic", "subscription"}, handler: (*API).resetCursor},
}

func init() { routes = append(routes, resetRoutes...) }

// maxOpBody caps the body of the small operations (reset, reschedule).
const maxOpBody = 4 << 10

// readOpBody reads a small operation's body.
func readOpBody(c *gin.Context) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(c.Request.Body, maxOpBody+1))
	if err != nil {
		return nil, badParam("the body could not be read")
	}
	if len(body) > maxOpBody {
		return nil, badParam("the body is larger than %d bytes", maxOpBody)
	}
	return body, nil
}

// ParseResetBody reads {"time":"<RFC 3339>"}: the time to replay from. It
// must not be later than now (plus a minute of clock skew): a reset to the
// future would skip messages, which is not what a replay is for.
func ParseResetBody(body []byte, now time.Time) (time.Time, error) {
	at, err := parseTimeBody(body, "time")
	if err != nil {
		return time.Time{}, err
	}
	if at.After(now.Add(time.Minute)) {
		return time.Time{}, errorf(http.StatusBadRequest, CodeInvalidTime, "time %s is in the future: a reset replays from a past time", at.UTC().Format(time.RFC3339))
	}
	if at.Year() < 1970 {
		return time.Time{}, errorf(http.StatusBadRequest, CodeInvalidTime, "time %s is before 1970", at.UTC().Format(time.RFC3339))
	}
	return at.UTC(), nil
}

// parseTimeBody reads a body that is one JSON object with one field, an
// RFC 3339 time: {"<field>":"2026-01-02T15:04:05Z"}. It is the body of the
// reset and reschedule operations.
func parseTimeBody(body []byte, field string) (time.Time, error) {
	var req map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	example := fmt.Sprintf("{%q:\"2026-01-02T15:04:05Z\"}", field)
	if err := dec.Decode(&req); err != nil {
		return time.Time{}, badParam("the body must be %s: %s", example, truncate(err.Error(), 120))
	}
	if dec.More() {
		return time.Time{}, badParam("the body holds more than one JSON value")
	}
	var value string
	for k, v := range req {
		if k != field {
			return time.Time{}, badParam("the body must be %s: unknown field %q", example, truncate(k, 60))
		}
		if err := json.Unmarshal(v, &value); err != nil {
			return time.Time{}, badParam("the body must be %s: %s is not a string", example, field)
		}
	}
	t, err := time.Parse(time.RFC3339Nano, value)
	if err != nil {
		return time.Time{}, errorf(http.StatusBadRequest, CodeInvalidTime, "%s %q is not an RFC 3339 time such as 2026-01-02T15:04:05Z", field, truncate(value, 60))
	}
	return t, nil
}

// POST /subscriptions/reset-cursor?topic=&subscription= (operator) with
// {"time":"..."}.
func (a *API) resetCursor(c *gin.Context) error {
	if err := a.require(c, RoleOperator); err != nil {
		return err
	}
	topic, sub, err := subscriptionParams(c)
	if err != nil {
		return err
	}
	body, err := readOpBody(c)
	if err != nil {
		return err
	}
	at, err := ParseResetBody(body, time.Now())
	if err != nil {
		return err
	}
	if a.opts.Ops.Cursors == nil {
		return errorf(http.StatusServiceUnavailable, CodeBrokerUnavailable, "cursor reset needs the consume engine and the broker's admin API (pulsar.adminURL)")
	}
	p, _ := PrincipalFrom(c)
	by := p.App
	if by == "" {
		by = "console"
	}
	ctx, cancel := a.ctx(c)
	defer cancel()
	res, err := a.opts.Ops.Cursors.ResetCursor(ctx, topic, sub, at, by)
	if errors.Is(err, ErrBrokerUnavailable) {
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeBrokerUnavailable, Message: "the broker did not reset the cursor; try again", Err: err}
	}
	if err != nil {
		return statsError(err)
	}
	a.log.Info("console: subscription cursor reset", "topic", topic, "subscription", sub, "to", at, "by", by, "role", a.roleOf(c),
		"operationId", res.OperationID)
	c.JSON(http.StatusOK, res)
	return nil
}
