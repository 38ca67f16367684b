package consoleapi

import (
	"fmt"
	"net/http"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/wire"
)

// decodeEntry builds the message id names from an entry answered by the
// admin ledger/entry endpoint (decoded by wire.DecodeEntry): the entry's
// one message, or the id.Batch-th message of a batch entry. A batch index
// the entry does not hold is ErrNotRetained; an entry that does not decode
// fails with wire.ErrMalformedEntry.
func decodeEntry(topic string, id MessageID, h http.Header, body []byte) (*BrokerMessage, error) {
	msgs, err := wire.DecodeEntry(h, body)
	if err != nil {
		return nil, fmt.Errorf("consoleapi: message %s: %w", id, err)
	}
	index := 0
	if msgs[0].BatchSize > 0 {
		index = max(int(id.Batch), 0)
		if index >= len(msgs) {
			return nil, fmt.Errorf("message %s: the entry holds %d messages: %w", id, len(msgs), ErrNotRetained)
		}
	}
	em := msgs[index]
	return &BrokerMessage{
		Topic: topic, ID: id, Payload: em.Payload, Properties: em.Properties, Key: em.Key,
		PublishTime: em.PublishTime, EventTime: em.EventTime, ProducerName: em.ProducerName, BatchSize: em.BatchSize,
	}, nil
}
