package consoleapi

import (
	"time"

	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// eventJSON is a trace event as the console shows it.
type eventJSON struct {
	ID           string            `json:"id"`
	Type         tracer.Type       `json:"type"`
	Time         time.Time         `json:"time"`
	UID          string            `json:"uid"`
	MessageID    string            `json:"messageId,omitempty"`
	Topic        string            `json:"topic,omitempty"`
	Key          string            `json:"key,omitempty"`
	Tags         []string          `json:"tags,omitempty"`
	App          string            `json:"app,omitempty"`
	ClientIP     string            `json:"clientIp,omitempty"`
	Node         string            `json:"node,omitempty"`
	Cluster      string            `json:"cluster,omitempty"`
	Subscription string            `json:"subscription,omitempty"`
	Consumer     string            `json:"consumer,omitempty"`
	LatencyMs    float64           `json:"latencyMs,omitempty"`
	Error        string            `json:"error,omitempty"`
	Attempt      int               `json:"attempt,omitempty"`
	Properties   map[string]string `json:"properties,omitempty"`
}

func toEventJSON(ev *tracer.Event) eventJSON {
	return eventJSON{
		ID: ev.ID, Type: ev.Type, Time: ev.Time.UTC(), UID: ev.UID, MessageID: ev.MessageID, Topic: ev.Topic,
		Key: ev.Key, Tags: ev.Tags, App: ev.App, ClientIP: ev.ClientIP, Node: ev.Node, Cluster: ev.Cluster,
		Subscription: ev.Subscription, Consumer: ev.Consumer, LatencyMs: float64(ev.Latency) / float64(time.Millisecond),
		Error: ev.Error, Attempt: ev.Attempt, Properties: ev.Properties,
	}
}

func toEventsJSON(evs []tracer.Event) []eventJSON {
	out := make([]eventJSON, len(evs))
	for i := range evs {
		out[i] = toEventJSON(&evs[i])
	}
	return out
}

// messageInfo is what a timeline says about its message.
type messageInfo struct {
	UID       string   `json:"uid"`
	MessageID string   `json:"messageId,omitempty"`
	Topic     string   `json:"topic,omitempty"`
	Key       string   `json:"key,omitempty"`
	Tags      []string `json:"tags"`
	App       string   `json:"app,omitempty"`      // the producing app
	ClientIP  string   `json:"clientIp,omitempty"` // the producer's address
	Cluster   string   `json:"cluster,omitempty"`  // where the broker message id lives
	// Status is where the message is in its life (tracer.StatusOf,
	// refined by API.lifecycle).
	Status      string     `json:"status,omitempty"`
	AcceptedAt  *time.Time `json:"acceptedAt"`
	PersistedAt *time.Time `json:"persistedAt"`
	// DeliverAt and DelayMode describe a message that is scheduled (or
	// whose schedule was lost).
	DeliverAt *time.Time `json:"deliverAt,omitempty"`
	DelayMode string     `json:"delayMode,omitempty"`
}

// brokerSteps are the events after which a broker holds the message under
// their MessageID: the latest one names where consumers see it.
func brokerStep(t tracer.Type) bool {
	switch t {
	case tracer.Persisted, tracer.FailedOver, tracer.Replayed, tracer.Fired:
		return true
	}
	return false
}

func produceStep(t tracer.Type) bool {
	switch t {
	case tracer.Accepted, tracer.Persisted, tracer.Retried, tracer.FailedOver, tracer.Spooled, tracer.Replayed, tracer.Scheduled:
		return true
	}
	return false
}

// summarize reads a message's identity from its timeline (in time order).
func summarize(uid string, evs []tracer.Event) messageInfo {
	info := messageInfo{UID: uid, Tags: []string{}}
	var anyID, anyCluster string
	for i := range evs {
		ev := &evs[i]
		if info.Topic == "" && ev.Topic != "" && produceStep(ev.Type) {
			info.Topic = ev.Topic
		}
		if info.Key == "" {
			info.Key = ev.Key
		}
		if len(info.Tags) == 0 && len(ev.Tags) > 0 {
			info.Tags = ev.Tags
		}
		if produceStep(ev.Type) {
			if info.App == "" {
				info.App = ev.App
			}
			if info.ClientIP == "" {
				info.ClientIP = ev.ClientIP
			}
		}
		if ev.Type == tracer.Accepted && info.AcceptedAt == nil {
			t := ev.Time
			info.AcceptedAt = &t
		}
		if ev.MessageID != "" {
			if brokerStep(ev.Type) {
				info.MessageID, info.Cluster = ev.MessageID, ev.Cluster
				if ev.Topic != "" {
					info.Topic = ev.Topic
				}
				if info.PersistedAt == nil {
					t := ev.Time
					info.PersistedAt = &t
				}
			} else if anyID == "" {
				anyID, anyCluster = ev.MessageID, ev.Cluster
			}
		}
	}
	if info.MessageID == "" {
		info.MessageID, info.Cluster = anyID, anyCluster
	}
	if info.Topic == "" {
		for i := range evs {
			if evs[i].Topic != "" {
				info.Topic = evs[i].Topic
				break
			}
		}
	}
	return info
}
