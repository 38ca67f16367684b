package consoleapi

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric names of the backlog collector (see Collector).
const (
	MetricBacklogMessages  = "psc_subscription_backlog_messages"
	MetricUnackedMessages  = "psc_subscription_unacked_messages"
	MetricBacklogOldestAge = "psc_subscription_backlog_oldest_age_seconds"
	MetricBacklogStatsUp   = "psc_subscription_stats_up"
)

var (
	descBacklog = prometheus.NewDesc(MetricBacklogMessages,
		"Messages in a subscription's backlog, from the broker's topic stats (registered topics only).",
		[]string{"topic", "subscription"}, nil)
	descUnacked = prometheus.NewDesc(MetricUnackedMessages,
		"Messages delivered to a subscription's consumers and not acknowledged yet.",
		[]string{"topic", "subscription"}, nil)
	descOldest = prometheus.NewDesc(MetricBacklogOldestAge,
		"Age of the oldest message in a subscription's backlog; 0 when the backlog is empty.",
		[]string{"topic", "subscription"}, nil)
	descUp = prometheus.NewDesc(MetricBacklogStatsUp,
		"1 when the broker answered the topic's stats at the last scrape, else 0.",
		[]string{"topic"}, nil)
)

// Collector exports the backlog of every registered topic's subscriptions
// from the default Broker, read at scrape time (one stats request per
// topic, bounded by Options.Timeout), so the alert rules in
// docs/alerts/pulsar-sidecar.rules.yml have a backlog to watch. The app
// registers it beside its other metrics:
//
//	reg.MustRegister(api.Collector())
//
// Without a Broker it exports nothing.
func (a *API) Collector() prometheus.Collector { return backlogCollector{a: a} }

type backlogCollector struct{ a *API }

func (backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descBacklog
	ch <- descUnacked
	ch <- descOldest
	ch <- descUp
}

func (c backlogCollector) Collect(ch chan<- prometheus.Metric) {
	b := c.a.opts.Broker
	if b == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.a.opts.Timeout)
	defer cancel()
	topics, err := c.a.opts.Registry.Topics(ctx)
	if err != nil {
		c.a.log.Warn("backlog metrics: registry failed", "err", err)
		return
	}
	now := time.Now()
	for _, t := range topics {
		st, err := b.Stats(ctx, t.Name)
		if err != nil {
			c.a.log.Debug("backlog metrics: no stats", "topic", t.Name, "err", err)
			ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 0, t.Name)
			continue
		}
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 1, t.Name)
		for _, s := range st.Subscriptions {
			ch <- prometheus.MustNewConstMetric(descBacklog, prometheus.GaugeValue, float64(s.MsgBacklog), t.Name, s.Name)
			ch <- prometheus.MustNewConstMetric(descUnacked, prometheus.GaugeValue, float64(s.UnackedMessages), t.Name, s.Name)
			age := 0.0
			if s.OldestBacklogTime != nil && s.MsgBacklog > 0 {
				age = max(now.Sub(*s.OldestBacklogTime).Seconds(), 0)
			}
			ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, age, t.Name, s.Name)
		}
	}
}
