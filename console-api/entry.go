package consoleapi

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// decodeEntry builds the message id names from an entry answered by the
// admin ledger/entry endpoint: the whole body for a single message, or the
// id.Batch-th message of a batch entry (X-Pulsar-num-batch-message set).
func decodeEntry(topic string, id MessageID, h http.Header, body []byte) (*BrokerMessage, error) {
	m := &BrokerMessage{
		Topic:        topic,
		ID:           id,
		PublishTime:  parsePulsarTime(h.Get("X-Pulsar-Publish-Time")),
		EventTime:    parsePulsarTime(h.Get("X-Pulsar-Event-Time")),
		ProducerName: h.Get("X-Pulsar-Producer-Name"),
		Properties:   entryProperties(h),
		Key:          h.Get("X-Pulsar-Partition-Key"),
	}
	n := h.Get("X-Pulsar-Num-Batch-Message")
	if n == "" {
		m.Payload = body
		return m, nil
	}
	count, err := strconv.Atoi(n)
	if err != nil || count < 1 {
		return nil, fmt.Errorf("consoleapi: message %s: bad batch size %q", id, n)
	}
	m.BatchSize = count
	index := max(int(id.Batch), 0)
	if index >= count {
		return nil, fmt.Errorf("message %s: the entry holds %d messages: %w", id, count, ErrNotRetained)
	}
	single, err := splitBatch(body, count, index)
	if err != nil {
		return nil, fmt.Errorf("consoleapi: message %s: %w", id, err)
	}
	m.Payload = single.payload
	// In a batch, properties, key and event time are each message's own.
	// The entry's (the headers) are the first message's, as
	// pulsar-client-go's batch builder copies them, so they must not be
	// merged into the others.
	m.Properties = single.properties
	if m.Properties == nil {
		m.Properties = map[string]string{}
	}
	m.Key = ""
	if single.hasKey {
		m.Key = single.key
	}
	m.EventTime = time.Time{}
	if single.eventTime > 0 {
		m.EventTime = time.UnixMilli(int64(single.eventTime)).UTC()
	}
	return m, nil
}

// singleMessage is one message of a batch: Pulsar's SingleMessageMetadata
// fields we show, and the payload.
type singleMessage struct {
	properties map[string]string
	key        string
	hasKey     bool
	eventTime  uint64
	payload    []byte
}

var errBatch = errors.New("malformed batch entry")

// splitBatch walks a batch payload, a sequence of [4-byte big-endian
// metadata size][SingleMessageMetadata][payload], and returns message
// index.
func splitBatch(b []byte, count, index int) (singleMessage, error) {
	for i := 0; i < count; i++ {
		if len(b) < 4 {
			return singleMessage{}, fmt.Errorf("%w: message %d: short header", errBatch, i)
		}
		size := binary.BigEndian.Uint32(b)
		b = b[4:]
		if uint64(size) > uint64(len(b)) {
			return singleMessage{}, fmt.Errorf("%w: message %d: metadata of %d bytes past the end", errBatch, i, size)
		}
		md, err := parseSingleMetadata(b[:size])
		if err != nil {
			return singleMessage{}, fmt.Errorf("%w: message %d: %w", errBatch, i, err)
		}
		b = b[size:]
		if md.payloadSize < 0 || int64(md.payloadSize) > int64(len(b)) {
			return singleMessage{}, fmt.Errorf("%w: message %d: payload of %d bytes past the end", errBatch, i, md.payloadSize)
		}
		if i == index {
			md.payload = b[:md.payloadSize]
			return md.singleMessage, nil
		}
		b = b[md.payloadSize:]
	}
	return singleMessage{}, fmt.Errorf("%w: fewer than %d messages", errBatch, index+1)
}

type singleMetadata struct {
	singleMessage
	payloadSize int32
}

// parseSingleMetadata decodes the fields of SingleMessageMetadata we use:
// 1 properties (KeyValue: 1 key, 2 value), 2 partition_key, 3 payload_size,
// 5 event_time, 6 partition_key_b64_encoded. Others are skipped.
func parseSingleMetadata(b []byte) (singleMetadata, error) {
	var md singleMetadata
	var b64Key bool
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return md, protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			kv, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return md, protowire.ParseError(n)
			}
			b = b[n:]
			k, v, err := parseKeyValue(kv)
			if err != nil {
				return md, err
			}
			if md.properties == nil {
				md.properties = map[string]string{}
			}
			md.properties[k] = v
		case num == 2 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return md, protowire.ParseError(n)
			}
			b = b[n:]
			md.key, md.hasKey = string(v), true
		case num == 3 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return md, protowire.ParseError(n)
			}
			b = b[n:]
			md.payloadSize = int32(v)
		case num == 5 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return md, protowire.ParseError(n)
			}
			b = b[n:]
			md.eventTime = v
		case num == 6 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return md, protowire.ParseError(n)
			}
			b = b[n:]
			b64Key = v != 0
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return md, protowire.ParseError(n)
			}
			b = b[n:]
		}
	}
	if b64Key && md.hasKey {
		if raw, err := base64.StdEncoding.DecodeString(md.key); err == nil {
			md.key = string(raw)
		}
	}
	return md, nil
}

func parseKeyValue(b []byte) (k, v string, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", "", protowire.ParseError(n)
		}
		b = b[n:]
		if typ != protowire.BytesType || (num != 1 && num != 2) {
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return "", "", protowire.ParseError(n)
			}
			b = b[n:]
			continue
		}
		val, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return "", "", protowire.ParseError(n)
		}
		b = b[n:]
		if num == 1 {
			k = string(val)
		} else {
			v = string(val)
		}
	}
	return k, v, nil
}
