package consoleapi

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// Providers answer the stats that other components own. Each is optional:
// a missing one is answered as null with a note, never with a made-up
// number. Implementations are safe for concurrent use and honour ctx.
type Providers struct {
	TagBacklog TagBacklogProvider
	Delay      DelayProvider
	Spool      SpoolProvider
	Clusters   ClusterHealthProvider
	// Schedules tells a waiting delayed message from a lost one.
	Schedules ScheduleProvider
}

// TagBacklogProvider counts a subscription's backlog per tag (the consume
// path's tag filtering knows it). subscription "" means every subscription
// of the topic. An error wrapping ErrSubscriptionNotFound is answered 404
// SUBSCRIPTION_NOT_FOUND and one wrapping ErrInvalidTopic 400
// INVALID_TOPIC, each with the error's text; any other is a 503.
type TagBacklogProvider interface {
	TagBacklog(ctx context.Context, topic, subscription string) ([]TagBacklog, error)
}

// TagBacklog is the backlog of one tag on one subscription: messages with
// the tag that match the subscription's filter and are not acknowledged
// yet (docs/adr/060-consume.md, "Per-tag backlog").
type TagBacklog struct {
	Subscription string `json:"subscription"`
	Tag          string `json:"tag"`
	// Messages is the count over the scanned part of the backlog: all of
	// it when Exact, else its head (ScannedMessages long), and Estimated
	// scales it to the broker's whole backlog.
	Messages        int64      `json:"messages"`
	Exact           bool       `json:"exact"`
	ScannedMessages int64      `json:"scannedMessages"`
	Estimated       *int64     `json:"estimated,omitempty"`
	Oldest          *time.Time `json:"oldestPublishTime"`
	// Ready and InFlight are the part replicas hold: read and waiting for a
	// receive, and delivered with the lease running.
	Ready    int64 `json:"ready"`
	InFlight int64 `json:"inFlight"`
}

// DelayProvider reports the delayed messages waiting (package delay).
type DelayProvider interface {
	DelayStats(ctx context.Context) (DelayStats, error)
}

// DelayStats is the depth of delayed delivery.
type DelayStats struct {
	Pending   int64            `json:"pending"`           // scheduled, not yet fired
	ByLevel   map[string]int64 `json:"byLevel,omitempty"` // per delay level ("30s", "5m"...) or mode ("wheel", "native")
	NextDueAt *time.Time       `json:"nextDueAt"`
	Lateness  *float64         `json:"latenessSeconds"` // how late the last fired message was, when known
}

// SpoolProvider reports the local durable spool (spool).
type SpoolProvider interface {
	SpoolStats(ctx context.Context) (SpoolStats, error)
}

// SpoolStats is the depth of the local spool.
type SpoolStats struct {
	Messages  int64      `json:"messages"`
	Bytes     int64      `json:"bytes"`
	Oldest    *time.Time `json:"oldest"`
	Replaying bool       `json:"replaying"`
}

// ClusterHealthProvider reports the Pulsar clusters the data plane uses.
type ClusterHealthProvider interface {
	ClusterHealth(ctx context.Context) ([]ClusterHealth, error)
}

// ClusterHealth is one cluster as the data plane sees it.
type ClusterHealth struct {
	Name      string    `json:"name"`
	Role      string    `json:"role"` // "primary" or "disaster-recovery"
	Healthy   bool      `json:"healthy"`
	Breaker   string    `json:"breaker,omitempty"` // closed, open, half-open
	LastError string    `json:"lastError,omitempty"`
	CheckedAt time.Time `json:"checkedAt"`
}

// statsAnswer wraps every stats answer: data is null when nobody provides
// it, and note says why.
type statsAnswer struct {
	Data any    `json:"data"`
	Note string `json:"note,omitempty"`
}

// Errors a provider returns for the caller's mistakes (see
// TagBacklogProvider).
var (
	ErrSubscriptionNotFound = errors.New("consoleapi: subscription not found")
	ErrInvalidTopic         = errors.New("consoleapi: invalid topic")
)

func statsError(err error) error {
	switch {
	case errors.Is(err, ErrSubscriptionNotFound):
		return &Error{Status: http.StatusNotFound, Code: CodeSubscriptionNotFound, Message: callerMessage(err, ErrSubscriptionNotFound), Err: err}
	case errors.Is(err, ErrInvalidTopic):
		return &Error{Status: http.StatusBadRequest, Code: CodeInvalidTopic, Message: callerMessage(err, ErrInvalidTopic), Err: err}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &Error{Status: http.StatusGatewayTimeout, Code: CodeStatsUnavailable, Message: "the stats provider did not answer in time", Err: err}
	}
	return &Error{Status: http.StatusServiceUnavailable, Code: CodeStatsUnavailable, Message: "the stats provider failed; try again", Err: err}
}

// callerMessage is a provider's text for a 4xx without the sentinel's
// package prefix: fmt.Errorf("%w: subscription x is not registered",
// ErrSubscriptionNotFound) shows "subscription x is not registered".
func callerMessage(err, sentinel error) string {
	return strings.TrimPrefix(err.Error(), sentinel.Error()+": ")
}

// topicBacklog is one topic's backlog in GET /stats/backlog.
type topicBacklog struct {
	*TopicStats
	Topic string `json:"topic"`
	// MissingSubscriptions are registered for the topic but absent on the
	// broker: nothing is delivered to them.
	MissingSubscriptions []string `json:"missingSubscriptions"`
	Error                string   `json:"error,omitempty"`
}

// GET /stats/backlog?topic=&cluster=
func (a *API) statsBacklog(c *gin.Context) error {
	q := c.Request.URL.Query()
	b := a.brokerFor(q.Get("cluster"))
	if b == nil {
		c.JSON(http.StatusOK, statsAnswer{Note: "no broker is configured: backlog is unknown"})
		return nil
	}
	ctx, cancel := a.ctx(c)
	defer cancel()
	var topics []string
	if t := q.Get("topic"); t != "" {
		topic, err := NormalizeTopic(t)
		if err != nil {
			return err
		}
		topics = []string{topic}
	} else {
		reg, err := a.opts.Registry.Topics(ctx)
		if err != nil {
			return registryError(err)
		}
		for _, t := range reg {
			topics = append(topics, t.Name)
		}
		if len(topics) == 0 {
			c.JSON(http.StatusOK, statsAnswer{Data: []topicBacklog{}, Note: "no topics are registered: pass topic="})
			return nil
		}
	}
	out := make([]topicBacklog, 0, len(topics))
	for _, topic := range topics {
		tb := topicBacklog{Topic: topic, MissingSubscriptions: []string{}}
		st, err := b.Stats(ctx, topic)
		switch {
		case err == nil:
			tb.TopicStats = st
		case len(topics) == 1 && errors.Is(err, ErrTopicNotFound):
			return errorf(http.StatusNotFound, CodeTopicNotFound, "the broker does not know topic %s", topic)
		case len(topics) == 1:
			return &Error{Status: http.StatusServiceUnavailable, Code: CodeBrokerUnavailable, Message: "the broker could not be asked", Err: err}
		case errors.Is(err, ErrTopicNotFound):
			tb.Error = "the broker does not know this topic"
		default:
			a.log.Warn("console could not read topic stats", "topic", topic, "err", err)
			tb.Error = "the broker could not be asked"
		}
		subs, err := a.opts.Registry.Subscriptions(ctx, topic)
		if err != nil {
			return registryError(err)
		}
		for _, s := range subs {
			if st == nil || !slices.ContainsFunc(st.Subscriptions, func(x SubscriptionStats) bool { return x.Name == s.Name }) {
				tb.MissingSubscriptions = append(tb.MissingSubscriptions, s.Name)
			}
		}
		out = append(out, tb)
	}
	c.JSON(http.StatusOK, statsAnswer{Data: out})
	return nil
}

// GET /stats/tag-backlog?topic=&subscription=
func (a *API) statsTagBacklog(c *gin.Context) error {
	q := c.Request.URL.Query()
	if q.Get("topic") == "" {
		return badParam("topic is required")
	}
	topic, err := NormalizeTopic(q.Get("topic"))
	if err != nil {
		return err
	}
	p := a.opts.Providers.TagBacklog
	if p == nil {
		c.JSON(http.StatusOK, statsAnswer{Note: "no component provides per-tag backlog: the consume engine is not running on this sidecar"})
		return nil
	}
	ctx, cancel := a.ctx(c)
	defer cancel()
	rows, err := p.TagBacklog(ctx, topic, q.Get("subscription"))
	if err != nil {
		return statsError(err)
	}
	if rows == nil {
		rows = []TagBacklog{}
	}
	c.JSON(http.StatusOK, statsAnswer{Data: rows})
	return nil
}

// GET /stats/delay
func (a *API) statsDelay(c *gin.Context) error {
	return provide(a, c, a.opts.Providers.Delay, "no component provides delay stats (the delay scheduler is not wired in)",
		func(ctx context.Context, p DelayProvider) (any, error) { return p.DelayStats(ctx) })
}

// GET /stats/spool
func (a *API) statsSpool(c *gin.Context) error {
	return provide(a, c, a.opts.Providers.Spool, "no component provides spool stats (the local spool is not wired in)",
		func(ctx context.Context, p SpoolProvider) (any, error) { return p.SpoolStats(ctx) })
}

// GET /stats/clusters
func (a *API) statsClusters(c *gin.Context) error {
	return provide(a, c, a.opts.Providers.Clusters, "no component provides cluster health (the produce path's circuit breakers are not wired in)",
		func(ctx context.Context, p ClusterHealthProvider) (any, error) {
			rows, err := p.ClusterHealth(ctx)
			if rows == nil {
				rows = []ClusterHealth{}
			}
			return rows, err
		})
}

// provide answers a parameterless stats route from an optional provider.
func provide[P comparable](a *API, c *gin.Context, p P, missing string, get func(context.Context, P) (any, error)) error {
	var zero P
	if p == zero {
		c.JSON(http.StatusOK, statsAnswer{Note: missing})
		return nil
	}
	ctx, cancel := a.ctx(c)
	defer cancel()
	v, err := get(ctx, p)
	if err != nil {
		return statsError(err)
	}
	c.JSON(http.StatusOK, statsAnswer{Data: v})
	return nil
}
