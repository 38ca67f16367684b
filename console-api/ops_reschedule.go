package consoleapi

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/wire"
)

// DelayedRescheduler moves a scheduled message to a new due time. A
// DelayedProvider that implements it lets operators reschedule.
type DelayedRescheduler interface {
	// RescheduleDelayed gives the message with this uid the new due time
	// and returns it as now scheduled; by names who asked (for the trace).
	// Errors: ErrNotFound (nothing with that uid is scheduled),
	// ErrNotReschedulable (its mode cannot be moved), ErrInFlight (a
	// replica is forwarding it), ErrInvalidTime (beyond the maximum delay).
	RescheduleDelayed(ctx context.Context, uid string, due time.Time, by string) (Delayed, error)
}

// Errors of a DelayedRescheduler.
var (
	ErrNotReschedulable = errors.New("consoleapi: this delayed message cannot be rescheduled")
	ErrInFlight         = errors.New("consoleapi: the delayed message is being forwarded")
	ErrInvalidTime      = errors.New("consoleapi: invalid time")
)

var rescheduleRoutes = []Route{
	{Method: http.MethodPost, Path: "/delayed/:uid/reschedule", handler: (*API).rescheduleDelayed},
}

func init() { routes = append(routes, rescheduleRoutes...) }

// ParseRescheduleBody reads {"deliverAt":"<RFC 3339>"}: the new due time,
// which must be after now.
func ParseRescheduleBody(body []byte, now time.Time) (time.Time, error) {
	due, err := parseTimeBody(body, "deliverAt")
	if err != nil {
		return time.Time{}, err
	}
	if !due.After(now) {
		return time.Time{}, errorf(http.StatusBadRequest, CodeInvalidTime, "deliverAt %s is not in the future", due.UTC().Format(time.RFC3339))
	}
	return due.UTC(), nil
}

// POST /delayed/:uid/reschedule (operator) with {"deliverAt":"..."}.
func (a *API) rescheduleDelayed(c *gin.Context) error {
	if err := a.require(c, RoleOperator); err != nil {
		return err
	}
	uid := c.Param("uid")
	if !wire.ValidUID(uid) {
		return badParam("uid %q: want the sidecar's uid (8-4-4-4-12 lower-case hex)", truncate(uid, 60))
	}
	body, err := readOpBody(c)
	if err != nil {
		return err
	}
	due, err := ParseRescheduleBody(body, time.Now())
	if err != nil {
		return err
	}
	rs, ok := a.opts.Ops.Delayed.(DelayedRescheduler)
	if !ok {
		return errorf(http.StatusServiceUnavailable, CodeStatsUnavailable, "no delay engine that can reschedule runs on this sidecar")
	}
	p, _ := PrincipalFrom(c)
	by := p.App
	if by == "" {
		by = "console"
	}
	ctx, cancel := a.ctx(c)
	defer cancel()
	res, err := rs.RescheduleDelayed(ctx, uid, due, by)
	switch {
	case errors.Is(err, ErrNotFound):
		return errorf(http.StatusNotFound, CodeMessageNotFound, "no scheduled message has uid %s (already delivered or cancelled? native delayed messages live in Pulsar and are not listed)", uid)
	case errors.Is(err, ErrNotReschedulable):
		return errorf(http.StatusConflict, CodeNotReschedulable, "%s", callerMessage(err, ErrNotReschedulable))
	case errors.Is(err, ErrInFlight):
		return errorf(http.StatusConflict, CodeMessageInFlight, "a replica is forwarding %s right now: it is being delivered", uid)
	case errors.Is(err, ErrInvalidTime):
		return errorf(http.StatusBadRequest, CodeInvalidTime, "%s", callerMessage(err, ErrInvalidTime))
	case err != nil:
		return statsError(err)
	}
	a.log.Info("console: delayed message rescheduled", "uid", uid, "due", due, "by", by, "role", a.roleOf(c))
	c.JSON(http.StatusOK, res)
	return nil
}
