package wire

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// MaxEntryBytes bounds one entry read from Pulsar's admin API (GET
// .../ledger/{L}/entry/{E} or a subscription's peek at a position). A batch
// entry holds all of its messages; Pulsar's default maxMessageSize is 5 MiB.
const MaxEntryBytes = 32 << 20

var (
	// ErrMalformedEntry: the broker's answer is not an entry DecodeEntry
	// can read (a bad batch header or record, a properties header that is
	// not a JSON object of strings).
	ErrMalformedEntry = errors.New("wire: malformed entry")
	// ErrEntryTooLarge: the entry is larger than MaxEntryBytes.
	ErrEntryTooLarge = errors.New("wire: entry too large")
)

// EntryMessage is one message of an entry read over the admin API.
type EntryMessage struct {
	// BatchIndex is the message's index in its batch (0 when the entry
	// is not a batch, as pulsar-client-go numbers it); BatchSize is the
	// number of messages in the batch, 0 when the entry is not a batch.
	BatchIndex int32
	BatchSize  int
	// Properties, Key and EventTime are the message's own: in a batch,
	// those of its SingleMessageMetadata, never the entry's headers (the
	// headers carry the first message's, as pulsar-client-go's batch
	// builder copies them). Properties is never nil.
	Properties map[string]string
	Key        string
	EventTime  time.Time // UTC; zero when not set
	// PublishTime and ProducerName are the entry's (UTC; zero when the
	// header is missing or does not parse).
	PublishTime  time.Time
	ProducerName string
	Payload      []byte // a slice of the body given to DecodeEntry
}

// ReadEntry reads an entry's body, failing with ErrEntryTooLarge rather
// than cutting it short when it is larger than MaxEntryBytes.
func ReadEntry(r io.Reader) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r, MaxEntryBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > MaxEntryBytes {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrEntryTooLarge, MaxEntryBytes)
	}
	return body, nil
}

// DecodeEntry decodes an entry as Pulsar's admin REST API answers it: the
// X-Pulsar-* headers and the body, which is the payload of a single
// message, or, when X-Pulsar-num-batch-message is set, a batch: a sequence
// of [4-byte big-endian metadata size][SingleMessageMetadata][payload]
// records. It returns every message of the entry, in order. Any entry that
// is not well formed fails with ErrMalformedEntry; it never panics and
// never reads past the body.
//
// Header names are matched in any case (Go canonicalises them). Entry
// properties come from the JSON header of Pulsar 3.1+ (X-Pulsar-PROPERTY)
// and from the older one header per property (X-Pulsar-Property-<name>),
// whose name is lower-cased: HTTP loses its case, and the sidecar's own
// properties (psc-*) are lower case.
func DecodeEntry(h http.Header, body []byte) ([]EntryMessage, error) {
	base := EntryMessage{
		PublishTime:  ParsePulsarTime(h.Get("X-Pulsar-Publish-Time")),
		ProducerName: h.Get("X-Pulsar-Producer-Name"),
	}
	n := h.Get("X-Pulsar-Num-Batch-Message")
	if n == "" {
		props, err := entryProperties(h)
		if err != nil {
			return nil, err
		}
		m := base
		m.Properties = props
		m.Key = h.Get("X-Pulsar-Partition-Key")
		m.EventTime = ParsePulsarTime(h.Get("X-Pulsar-Event-Time"))
		m.Payload = body
		return []EntryMessage{m}, nil
	}
	count, err := strconv.Atoi(n)
	// Every record takes at least its 4-byte size: a count the body cannot
	// hold is refused before anything is allocated for it.
	if err != nil || count < 1 || count > len(body)/4 {
		return nil, fmt.Errorf("%w: batch size %q for a body of %d bytes", ErrMalformedEntry, n, len(body))
	}
	out := make([]EntryMessage, 0, count)
	b := body
	for i := range count {
		if len(b) < 4 {
			return nil, fmt.Errorf("%w: batch message %d of %d: short header", ErrMalformedEntry, i, count)
		}
		size := binary.BigEndian.Uint32(b)
		b = b[4:]
		if uint64(size) > uint64(len(b)) {
			return nil, fmt.Errorf("%w: batch message %d: metadata of %d bytes past the end", ErrMalformedEntry, i, size)
		}
		md, err := parseSingleMetadata(b[:size])
		if err != nil {
			return nil, fmt.Errorf("%w: batch message %d: %w", ErrMalformedEntry, i, err)
		}
		b = b[size:]
		if md.payloadSize > uint64(len(b)) {
			return nil, fmt.Errorf("%w: batch message %d: payload of %d bytes past the end", ErrMalformedEntry, i, md.payloadSize)
		}
		m := base
		m.BatchIndex, m.BatchSize = int32(i), count
		m.Properties, m.Key, m.Payload = md.properties, md.key, b[:md.payloadSize]
		if md.eventTime > 0 && md.eventTime <= maxMillis {
			m.EventTime = time.UnixMilli(int64(md.eventTime)).UTC()
		}
		b = b[md.payloadSize:]
		out = append(out, m)
	}
	return out, nil
}

// maxMillis is the largest event time (ms since the epoch) kept.
const maxMillis = 1<<63 - 1

// entryProperties reads the entry-level properties.
func entryProperties(h http.Header) (map[string]string, error) {
	props := map[string]string{}
	if js := h.Get("X-Pulsar-Property"); js != "" {
		if err := json.Unmarshal([]byte(js), &props); err != nil {
			return nil, fmt.Errorf("%w: X-Pulsar-PROPERTY: %w", ErrMalformedEntry, err)
		}
		if props == nil { // the header was JSON null
			props = map[string]string{}
		}
	}
	for k, v := range h {
		if name, ok := strings.CutPrefix(http.CanonicalHeaderKey(k), "X-Pulsar-Property-"); ok && len(v) > 0 {
			props[strings.ToLower(name)] = v[0]
		}
	}
	return props, nil
}

// pulsarTimeLayouts are the forms the broker's time headers take: Java's
// "yyyy-MM-dd'T'HH:mm:ss.SSSZ" (+0000), the same with a Z or +00:00
// zone, and RFC 3339 with any fraction.
var pulsarTimeLayouts = []string{"2006-01-02T15:04:05.000-0700", "2006-01-02T15:04:05.000Z07:00", time.RFC3339Nano}

// ParsePulsarTime reads one of the broker's time headers, in UTC; the zero
// time when s is empty or in no known form.
func ParsePulsarTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	for _, layout := range pulsarTimeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}

type singleMetadata struct {
	properties  map[string]string
	key         string
	eventTime   uint64
	payloadSize uint64
}

// parseSingleMetadata decodes the fields of SingleMessageMetadata
// (PulsarApi.proto) that DecodeEntry uses: 1 properties (KeyValue: 1 key,
// 2 value), 2 partition_key, 3 payload_size (required), 5 event_time,
// 6 partition_key_b64_encoded. Others are skipped.
func parseSingleMetadata(b []byte) (singleMetadata, error) {
	md := singleMetadata{properties: map[string]string{}}
	var b64Key, hasSize bool
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return md, protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType, num == 2 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return md, protowire.ParseError(n)
			}
			b = b[n:]
			if num == 2 {
				md.key = string(v)
				continue
			}
			k, val, err := parseKeyValue(v)
			if err != nil {
				return md, err
			}
			md.properties[k] = val
		case (num == 3 || num == 5 || num == 6) && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return md, protowire.ParseError(n)
			}
			b = b[n:]
			switch num {
			case 3:
				md.payloadSize, hasSize = v, true
			case 5:
				md.eventTime = v
			default:
				b64Key = v != 0
			}
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return md, protowire.ParseError(n)
			}
			b = b[n:]
		}
	}
	if !hasSize {
		return md, errors.New("no payload size")
	}
	if b64Key && md.key != "" {
		if raw, err := base64.StdEncoding.DecodeString(md.key); err == nil {
			md.key = string(raw)
		}
	}
	return md, nil
}

// parseKeyValue decodes a KeyValue: 1 key, 2 value.
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
