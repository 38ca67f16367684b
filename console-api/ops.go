package consoleapi

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/wire"
)

// Roles of console users (issue 15). A role allows what the roles below it
// allow:
//
//	viewer    reads everything the console shows
//	operator  also acts on messages: cancels delayed messages, resends dead letters
//	admin     also changes the registry and tokens
//
// An Authorizer that leaves Principal.Role empty makes a viewer; the open
// dev mode (Options.Open, loopback only) makes an admin.
type Role string

// The roles, lowest first.
const (
	RoleViewer   Role = "viewer"
	RoleOperator Role = "operator"
	RoleAdmin    Role = "admin"
)

// Roles lists the roles, lowest first.
var Roles = []Role{RoleViewer, RoleOperator, RoleAdmin}

// ParseRole reads a role's name; "" is a viewer.
func ParseRole(s string) (Role, bool) {
	if s == "" {
		return RoleViewer, true
	}
	for _, r := range Roles {
		if string(r) == s {
			return r, true
		}
	}
	return "", false
}

func (r Role) rank() int {
	switch r {
	case RoleAdmin:
		return 2
	case RoleOperator:
		return 1
	}
	return 0
}

// Allows reports whether r may do what need needs.
func (r Role) Allows(need Role) bool { return r.rank() >= need.rank() }

// Ops are the providers of the console's operations and of the stats the
// web page shows besides Providers; a missing one is answered as null with
// a note (reads) or 503 (writes).
type Ops struct {
	Delayed     DelayedProvider
	Trace       TraceStatsProvider
	DeadLetters DeadLetterProvider // ops_deadletters.go
	Cursors     CursorResetter     // ops_reset.go
	Alerts      AlertsProvider     // ops_alerts.go
}

// DelayedProvider lists scheduled (delayed) messages.
type DelayedProvider interface {
	// ListDelayed returns up to limit scheduled messages in due order: of
	// one topic and key when both are set; else the earliest of all,
	// scanning at most scan of them and keeping those of topic when it is
	// set. The bool says whether the scan may have missed some of topic's.
	ListDelayed(ctx context.Context, q DelayedQuery) ([]Delayed, bool, error)
	// CancelDelayed cancels the scheduled message with this uid (a wheel
	// message is removed, a level message gets a cancel mark), recording
	// a cancelled trace event. It fails with an error wrapping ErrNotFound
	// when nothing with that uid is scheduled. InFlight in the answer
	// means a replica may be delivering it right now.
	CancelDelayed(ctx context.Context, uid string) (DelayedCancel, error)
}

// DelayedCancel is the outcome of a cancel.
type DelayedCancel struct {
	UID       string `json:"uid"`
	Mode      string `json:"mode"`
	Cancelled bool   `json:"cancelled"`
	InFlight  bool   `json:"inFlight"`
}

// ErrNotFound is what an operations provider returns for a message it
// does not have (404 MESSAGE_NOT_FOUND).
var ErrNotFound = errors.New("consoleapi: not found")

// DelayedQuery selects scheduled messages.
type DelayedQuery struct {
	Topic, Key string // full topic name
	Limit      int
}

// Delayed is one scheduled message.
type Delayed struct {
	UID          string            `json:"uid"`
	Mode         string            `json:"mode"`
	Level        string            `json:"level,omitempty"`
	Topic        string            `json:"topic"`
	Key          string            `json:"key,omitempty"`
	Tags         []string          `json:"tags"`
	App          string            `json:"app,omitempty"`
	Due          time.Time         `json:"due"`
	Properties   map[string]string `json:"properties"`
	PayloadBytes int               `json:"payloadBytes"`
	InFlight     bool              `json:"inFlight"` // a replica is forwarding it now
}

// TraceStatsProvider says how far the trace store is behind.
type TraceStatsProvider interface {
	TraceStats(ctx context.Context) (TraceStats, error)
}

// TraceStats is the trace pipeline's state: what the console's answers
// may not show yet.
type TraceStats struct {
	// LagSeconds is the age of the oldest event waiting for the store; 0
	// when none waits.
	LagSeconds    float64 `json:"lagSeconds"`
	Queued        int     `json:"queued"`      // events in memory waiting for the store
	OutboxBytes   int64   `json:"outboxBytes"` // events on disk waiting for the store
	Recorded      uint64  `json:"recorded"`
	Written       uint64  `json:"written"`
	Dropped       uint64  `json:"dropped"` // refused because the queue was full or the pipeline closed
	SinkFailures  uint64  `json:"sinkFailures"`
	Throttled     bool    `json:"throttled"`
	StoreDegraded bool    `json:"storeDegraded"` // events are waiting on disk because the store failed or lags
}

// opsRoutes are the endpoints of this file; they join routes (so the
// OpenAPI test sees them) before anything reads it.
var opsRoutes = []Route{
	{Method: http.MethodGet, Path: "/whoami", handler: (*API).whoami},
	{Method: http.MethodGet, Path: "/delayed", Params: []string{"topic", "key", "limit"}, handler: (*API).listDelayed},
	{Method: http.MethodGet, Path: "/stats/trace", handler: (*API).statsTrace},
	{Method: http.MethodDelete, Path: "/delayed/:uid", handler: (*API).cancelDelayed},
}

func init() { routes = append(routes, opsRoutes...) }

// roleOf is the caller's role.
func (a *API) roleOf(c *gin.Context) Role {
	p, ok := PrincipalFrom(c)
	if !ok {
		return RoleViewer
	}
	if a.opts.Open && p.App == "" {
		return RoleAdmin
	}
	r, ok := ParseRole(string(p.Role))
	if !ok {
		return RoleViewer
	}
	return r
}

// require refuses callers whose role is below need (403 FORBIDDEN).
func (a *API) require(c *gin.Context, need Role) error {
	if have := a.roleOf(c); !have.Allows(need) {
		return errorf(http.StatusForbidden, CodeForbidden, "this needs the %s role; the caller is a %s", need, have)
	}
	return nil
}

// GET /whoami: the caller and its role, so that the web page shows only
// the actions the caller may take.
func (a *API) whoami(c *gin.Context) error {
	p, _ := PrincipalFrom(c)
	c.JSON(http.StatusOK, gin.H{"app": p.App, "role": a.roleOf(c), "open": a.opts.Open})
	return nil
}

// GET /delayed?topic=&key=&limit=
func (a *API) listDelayed(c *gin.Context) error {
	q := c.Request.URL.Query()
	dq := DelayedQuery{Key: q.Get("key")}
	var err error
	if dq.Limit, err = parseLimit(q, 100); err != nil {
		return err
	}
	if t := q.Get("topic"); t != "" {
		if dq.Topic, err = NormalizeTopic(t); err != nil {
			return err
		}
	}
	if dq.Key != "" && dq.Topic == "" {
		return badParam("key needs topic: keys are per topic")
	}
	if a.opts.Ops.Delayed == nil {
		c.JSON(http.StatusOK, statsAnswer{Note: "no delay engine: nothing is scheduled here"})
		return nil
	}
	ctx, cancel := a.ctx(c)
	defer cancel()
	rows, partial, err := a.opts.Ops.Delayed.ListDelayed(ctx, dq)
	if err != nil {
		return statsError(err)
	}
	if rows == nil {
		rows = []Delayed{}
	}
	ans := statsAnswer{Data: rows}
	if partial {
		ans.Note = "without key, the earliest scheduled messages of every topic were scanned and those of this topic kept: later ones may be missing; add key= for all of one key"
	}
	c.JSON(http.StatusOK, ans)
	return nil
}

// GET /stats/trace
func (a *API) statsTrace(c *gin.Context) error {
	if a.opts.Ops.Trace == nil {
		c.JSON(http.StatusOK, statsAnswer{Note: "no trace pipeline is plugged in"})
		return nil
	}
	ctx, cancel := a.ctx(c)
	defer cancel()
	st, err := a.opts.Ops.Trace.TraceStats(ctx)
	if err != nil {
		return statsError(err)
	}
	c.JSON(http.StatusOK, statsAnswer{Data: st})
	return nil
}

// DELETE /delayed/:uid (operator)
func (a *API) cancelDelayed(c *gin.Context) error {
	if err := a.require(c, RoleOperator); err != nil {
		return err
	}
	uid := c.Param("uid")
	if !wire.ValidUID(uid) {
		return badParam("uid %q: want the sidecar's uid (8-4-4-4-12 lower-case hex)", truncate(uid, 60))
	}
	if a.opts.Ops.Delayed == nil {
		return errorf(http.StatusServiceUnavailable, CodeStatsUnavailable, "no delay engine runs on this sidecar")
	}
	ctx, cancel := a.ctx(c)
	defer cancel()
	res, err := a.opts.Ops.Delayed.CancelDelayed(ctx, uid)
	if errors.Is(err, ErrNotFound) {
		return errorf(http.StatusNotFound, CodeMessageNotFound, "no scheduled message has uid %s (already delivered or cancelled?)", uid)
	}
	if err != nil {
		return statsError(err)
	}
	p, _ := PrincipalFrom(c)
	a.log.Info("console: delayed message cancelled", "uid", uid, "by", p.App, "role", a.roleOf(c), "inFlight", res.InFlight)
	c.JSON(http.StatusOK, res)
	return nil
}
