package consoleapi

import (
	"context"
	"errors"
	"time"
)

// Broker is what the console asks a Pulsar cluster: retained message
// content, subscription cursors and topic stats. PulsarAdmin implements it
// over the admin REST API; tests use it against minipulsar. Methods are
// safe for concurrent use and honour ctx's deadline.
type Broker interface {
	// Message returns the message at id on topic (for a partitioned topic,
	// the partition's own name). It fails with ErrNotRetained when the
	// broker does not hold it (never had it, or retention removed it).
	Message(ctx context.Context, topic string, id MessageID) (*BrokerMessage, error)
	// Partitions returns the topic's partition count; 0 means not
	// partitioned.
	Partitions(ctx context.Context, topic string) (int, error)
	// Cursors returns the cursors of a non-partitioned topic or of one
	// partition, by subscription name. ErrTopicNotFound when the broker does
	// not know the topic.
	Cursors(ctx context.Context, topic string) (map[string]Cursor, error)
	// Stats returns the topic's stats, summed over partitions for a
	// partitioned topic. ErrTopicNotFound when the broker does not know it.
	Stats(ctx context.Context, topic string) (*TopicStats, error)
}

// Errors of a Broker.
var (
	ErrNotRetained   = errors.New("consoleapi: the broker does not hold this message")
	ErrTopicNotFound = errors.New("consoleapi: the broker does not know this topic")
)

// BrokerMessage is one message as the broker holds it.
type BrokerMessage struct {
	Topic        string
	ID           MessageID
	Payload      []byte
	Properties   map[string]string
	Key          string
	PublishTime  time.Time // zero when the broker did not say
	EventTime    time.Time // zero when unset
	ProducerName string
	BatchSize    int // messages in the entry; 0 when it is not a batch
}

// TopicStats are a topic's counters and per-subscription backlog.
type TopicStats struct {
	Topic         string              `json:"topic"`
	Partitions    int                 `json:"partitions"`
	MsgRateIn     float64             `json:"msgRateIn"`
	MsgRateOut    float64             `json:"msgRateOut"`
	StorageSize   int64               `json:"storageSize"`
	Subscriptions []SubscriptionStats `json:"subscriptions"`
}

// SubscriptionStats is one subscription's backlog and rates.
type SubscriptionStats struct {
	Name                string          `json:"name"`
	Type                string          `json:"type"`
	MsgBacklog          int64           `json:"msgBacklog"`
	MsgBacklogNoDelayed int64           `json:"msgBacklogNoDelayed"`
	MsgDelayed          int64           `json:"msgDelayed"`
	UnackedMessages     int64           `json:"unackedMessages"`
	BacklogBytes        int64           `json:"backlogBytes"`
	MsgRateOut          float64         `json:"msgRateOut"`
	MsgRateRedeliver    float64         `json:"msgRateRedeliver"`
	OldestBacklogTime   *time.Time      `json:"oldestBacklogPublishTime"` // null when the backlog is empty or the broker does not say
	Consumers           []ConsumerStats `json:"consumers"`
}

// ConsumerStats is one connected consumer of a subscription.
type ConsumerStats struct {
	Name            string `json:"name"`
	Address         string `json:"address"`
	UnackedMessages int64  `json:"unackedMessages"`
	ConnectedSince  string `json:"connectedSince,omitempty"`
}
