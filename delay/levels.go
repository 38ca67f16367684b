package delay

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/wire"
)

// Delay levels: a fixed set of delays, one Pulsar topic each. A message
// produced with a level waits in that level's topic, with its real topic,
// due time and everything it carries as properties; a forwarder per level
// reads the topic's head and forwards each message when it is due (see
// forwarder.go). Because every message in a level waits equally long,
// publish order is due order, so only the head needs watching: memory does
// not grow with the number of waiting messages, and the volume is bounded
// only by the broker's storage. See docs/adr/040-delay-levels.md.

// DefaultLevels are the levels configured when none are given.
const DefaultLevels = "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h"

// DefaultLevelTopic names the level topics: one global set in a namespace
// the sidecar owns. {level} is replaced by the level's name.
const DefaultLevelTopic = "persistent://public/psc-delay/level-{level}"

// DefaultLevelSubscription is the forwarders' Failover subscription on
// every level topic.
const DefaultLevelSubscription = "psc-delay-forwarder"

// ErrUnknownLevel: a request named a level that is not configured.
var ErrUnknownLevel = errors.New("delay: unknown delay level")

// Level is one configured delay level.
type Level struct {
	// Name is the level as configured and as requested, e.g. "30s". It is
	// part of the level's topic name.
	Name  string
	Delay time.Duration
}

// ParseLevel reads one level: a Go duration of at least one millisecond,
// written with digits, '.' and unit letters only (it becomes part of a
// topic name).
func ParseLevel(s string) (Level, error) {
	if s == "" {
		return Level{}, fmt.Errorf("%w: empty level", ErrConfig)
	}
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'a' || r > 'z') && r != '.' {
			return Level{}, fmt.Errorf("%w: level %q: only digits, '.' and lower-case unit letters (1s, 30s, 5m, 2h)", ErrConfig, s)
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return Level{}, fmt.Errorf("%w: level %q: %w", ErrConfig, s, err)
	}
	if d < time.Millisecond {
		return Level{}, fmt.Errorf("%w: level %q: shorter than 1ms", ErrConfig, s)
	}
	return Level{Name: s, Delay: d}, nil
}

// ParseLevels reads levels separated by spaces or commas, such as
// DefaultLevels. Two levels may not have the same delay ("1m" and "60s").
// The result is sorted by delay.
func ParseLevels(s string) ([]Level, error) {
	return parseLevelNames(strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }))
}

func parseLevelNames(names []string) ([]Level, error) {
	out := make([]Level, 0, len(names))
	for _, n := range names {
		lv, err := ParseLevel(strings.TrimSpace(n))
		if err != nil {
			return nil, err
		}
		for _, o := range out {
			if o.Delay == lv.Delay {
				return nil, fmt.Errorf("%w: levels %q and %q are the same delay", ErrConfig, o.Name, lv.Name)
			}
		}
		out = append(out, lv)
	}
	slices.SortFunc(out, func(a, b Level) int { return int(a.Delay - b.Delay) })
	return out, nil
}

// LevelsConfig configures the level mode. The zero value gives the default
// levels.
type LevelsConfig struct {
	// Disabled turns the level mode off: no level topics, no forwarders,
	// HasLevel is false for everything.
	Disabled bool
	// Levels are the level names (see ParseLevel); empty means
	// DefaultLevels.
	Levels []string
	// Topic is the template of the level topics' names; "{level}" is
	// replaced by a level's name. Default DefaultLevelTopic.
	Topic string
	// Subscription is the forwarders' subscription name; default
	// DefaultLevelSubscription. Every replica subscribes with Failover, so
	// one forwards and the others stand by.
	Subscription string
	// ReceiverQueueSize is each forwarder consumer's receiver queue;
	// default 16. The forwarder's memory is bounded by this many entries (a
	// batched entry holds up to the producer's batch size of messages) plus
	// MaxInFlight messages, whatever the backlog.
	ReceiverQueueSize int
	// MaxInFlight is how many due messages of one level may be between
	// hand-over to the producer and the broker's acknowledgement; default
	// 16. Hand-over is sequential, so forwards keep the level's order
	// unless one fails and is retried. 1 forwards strictly one at a time.
	MaxInFlight int
	// ForwardTimeout bounds one hand-over of a forward; default 30 s. The
	// publisher's own send timeout bounds the wait for the broker.
	ForwardTimeout time.Duration
	// CancelMargin is added to the longest level to give the lifetime of a
	// cancellation mark in Redis (see Engine.Cancel); default 24 h. A
	// cancelled level message that waits longer than its level plus this
	// margin (forwarders down that long) is delivered after all.
	CancelMargin time.Duration
}

func (c LevelsConfig) withDefaults() (LevelsConfig, []Level, error) {
	if c.Disabled {
		return c, nil, nil
	}
	var (
		lvs []Level
		err error
	)
	if len(c.Levels) == 0 {
		lvs, err = ParseLevels(DefaultLevels)
	} else {
		lvs, err = parseLevelNames(c.Levels)
	}
	if err != nil {
		return c, nil, err
	}
	if c.Topic == "" {
		c.Topic = DefaultLevelTopic
	}
	if strings.Count(c.Topic, "{level}") != 1 {
		return c, nil, fmt.Errorf("%w: level topic %q must contain {level} once", ErrConfig, c.Topic)
	}
	if c.Subscription == "" {
		c.Subscription = DefaultLevelSubscription
	}
	if c.ReceiverQueueSize <= 0 {
		c.ReceiverQueueSize = 16
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 16
	}
	if c.ForwardTimeout <= 0 {
		c.ForwardTimeout = 30 * time.Second
	}
	if c.CancelMargin <= 0 {
		c.CancelMargin = 24 * time.Hour
	}
	return c, lvs, nil
}

// levelTopic is the topic of level lv under template.
func levelTopic(template string, lv Level) string {
	return strings.Replace(template, "{level}", lv.Name, 1)
}

// levelMessage is what goes into a level topic for req: the payload, key
// and event time unchanged; the properties plus the real topic, the level
// and the due time.
func levelMessage(req *Request, lv Level, due time.Time) *pulsar.ProducerMessage {
	p := pulsarProperties(req.Properties, req.UID, req.App, req.Tags, 3)
	p[PropDelayTopic] = req.Topic
	p[PropDelayLevel] = lv.Name
	p[PropDelayDue] = formatDue(due)
	return &pulsar.ProducerMessage{Payload: req.Payload, Key: req.Key, EventTime: req.EventTime, Properties: p}
}

// ErrCorruptLevelMessage: a message in a level topic lacks what the
// forwarder needs (real topic, due time, uid). It cannot be delivered.
var ErrCorruptLevelMessage = errors.New("delay: level message without topic, due time or uid")

// held is a level message that a forwarder waits on.
type held struct {
	msg      pulsar.Message
	target   string
	uid      string
	app      string
	tags     []string
	due      time.Time
	accepted time.Time // due minus the level: when the sidecar took it
}

// decodeHeld reads what the forwarder needs from a level message of lv.
func decodeHeld(msg pulsar.Message, lv Level) (held, error) {
	p := msg.Properties()
	h := held{msg: msg, target: p[PropDelayTopic], uid: p[PropUID], app: p[PropApp], tags: wire.ParseTags(p[PropTags])}
	if h.target == "" || h.uid == "" {
		return h, ErrCorruptLevelMessage
	}
	due, err := parseDue(p[PropDelayDue])
	if err != nil {
		return h, fmt.Errorf("%w: %s: %w", ErrCorruptLevelMessage, PropDelayDue, err)
	}
	h.due, h.accepted = due, due.Add(-lv.Delay)
	return h, nil
}

// forwardMessage is the message published to the real topic: the level
// message without the real-topic property.
func (h *held) forwardMessage() *pulsar.ProducerMessage {
	src := h.msg.Properties()
	p := make(map[string]string, len(src))
	for k, v := range src {
		if k != PropDelayTopic {
			p[k] = v
		}
	}
	pm := &pulsar.ProducerMessage{Payload: h.msg.Payload(), Key: h.msg.Key(), Properties: p}
	if et := h.msg.EventTime(); et.UnixMilli() != 0 { // the client reads "none" as the epoch
		pm.EventTime = et
	}
	return pm
}
