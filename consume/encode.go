package consume

import (
	"bytes"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/jsonenc"
)

// The receive answer is the largest thing the consume API writes: per
// message an ackId, ids, the payload, tags, properties and two times. It is
// written by hand here instead of by encoding/json's reflection, byte for
// byte what json.Marshal writes for ReceiveResponse (encode_test.go checks
// that, and a fuzz test checks the string escaping), at a fraction of the
// cost and without a value per field.

// bufPool holds answer buffers; big ones are not kept.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

const maxPooledBuf = 4 << 20

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > maxPooledBuf {
		return
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

// appendReceiveResponse appends r as json.Marshal would.
func appendReceiveResponse(b []byte, r *ReceiveResponse) []byte {
	b = append(b, `{"messages":`...)
	if r.Messages == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range r.Messages {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendMessage(b, &r.Messages[i])
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

func appendMessage(b []byte, m *Message) []byte {
	b = append(b, `{"ackId":`...)
	b = jsonenc.AppendString(b, m.AckID)
	if m.UID != "" {
		b = append(b, `,"uid":`...)
		b = jsonenc.AppendString(b, m.UID)
	}
	b = append(b, `,"messageId":`...)
	b = jsonenc.AppendString(b, m.MessageID)
	if m.Cluster != "" {
		b = append(b, `,"cluster":`...)
		b = jsonenc.AppendString(b, m.Cluster)
	}
	if m.Payload != nil {
		b = append(b, `,"payload":`...)
		b = jsonenc.AppendString(b, *m.Payload)
	}
	if m.PayloadBase64 != "" {
		b = append(b, `,"payloadBase64":`...)
		b = jsonenc.AppendString(b, m.PayloadBase64)
	}
	if m.Key != "" {
		b = append(b, `,"key":`...)
		b = jsonenc.AppendString(b, m.Key)
	}
	if m.App != "" {
		b = append(b, `,"app":`...)
		b = jsonenc.AppendString(b, m.App)
	}
	if m.IdempotencyKey != "" {
		b = append(b, `,"idempotencyKey":`...)
		b = jsonenc.AppendString(b, m.IdempotencyKey)
	}
	b = append(b, `,"duplicateRisk":`...)
	b = strconv.AppendBool(b, m.DuplicateRisk)
	if len(m.Tags) > 0 {
		b = append(b, `,"tags":[`...)
		for i, t := range m.Tags {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonenc.AppendString(b, t)
		}
		b = append(b, ']')
	}
	if len(m.Properties) > 0 {
		b = append(b, `,"properties":{`...)
		var arr [16]string
		keys := arr[:0]
		for k := range m.Properties {
			keys = append(keys, k)
		}
		slices.Sort(keys) // encoding/json sorts map keys
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonenc.AppendString(b, k)
			b = append(b, ':')
			b = jsonenc.AppendString(b, m.Properties[k])
		}
		b = append(b, '}')
	}
	b = append(b, `,"publishTime":`...)
	b = jsonenc.AppendString(b, m.PublishTime)
	if m.EventTime != "" {
		b = append(b, `,"eventTime":`...)
		b = jsonenc.AppendString(b, m.EventTime)
	}
	b = append(b, `,"redeliveryCount":`...)
	b = strconv.AppendInt(b, int64(m.RedeliveryCount), 10)
	if d := m.DeadLetter; d != nil {
		b = append(b, `,"deadLetter":{"reason":`...)
		b = jsonenc.AppendString(b, d.Reason)
		for _, f := range [...]struct{ name, v string }{
			{`,"originalMessageId":`, d.OriginalMessageID}, {`,"originalTopic":`, d.OriginalTopic},
			{`,"originalCluster":`, d.OriginalCluster}, {`,"subscription":`, d.Subscription},
		} {
			if f.v != "" {
				b = append(b, f.name...)
				b = jsonenc.AppendString(b, f.v)
			}
		}
		if d.Deliveries != 0 {
			b = append(b, `,"deliveries":`...)
			b = strconv.AppendInt(b, int64(d.Deliveries), 10)
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

// formatTime formats t as TimeLayout in UTC (RFC 3339 with milliseconds,
// "Z"), without time.Format's layout interpretation.
func formatTime(t time.Time) string {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.Format(TimeLayout)
	}
	hour, minute, sec := t.Clock()
	ms := t.Nanosecond() / 1e6
	var buf [24]byte
	put := func(i, v, n int) {
		for j := i + n - 1; j >= i; j-- {
			buf[j] = byte('0' + v%10)
			v /= 10
		}
	}
	put(0, year, 4)
	buf[4] = '-'
	put(5, int(month), 2)
	buf[7] = '-'
	put(8, day, 2)
	buf[10] = 'T'
	put(11, hour, 2)
	buf[13] = ':'
	put(14, minute, 2)
	buf[16] = ':'
	put(17, sec, 2)
	buf[19] = '.'
	put(20, ms, 3)
	buf[23] = 'Z'
	return string(buf[:])
}

// decodeAckIDsFast reads the usual ack and nack body, {"ackIds":["...",...]}
// with tokens of base64url characters and optional whitespace, without
// encoding/json. ok is false for anything else, which the caller then
// decodes strictly (and so answers with the precise error); for every body
// it accepts, the strict decoder gives the same list (a fuzz test checks).
func decodeAckIDsFast(body []byte) (ids []string, ok bool) {
	i := 0
	ws := func() {
		for i < len(body) && (body[i] == ' ' || body[i] == '\t' || body[i] == '\n' || body[i] == '\r') {
			i++
		}
	}
	lit := func(s string) bool {
		if len(body)-i < len(s) || string(body[i:i+len(s)]) != s {
			return false
		}
		i += len(s)
		return true
	}
	ws()
	if !lit("{") {
		return nil, false
	}
	ws()
	if !lit(`"ackIds"`) {
		return nil, false
	}
	ws()
	if !lit(":") {
		return nil, false
	}
	ws()
	if !lit("[") {
		return nil, false
	}
	ws()
	ids = make([]string, 0, min(bytes.Count(body, []byte{'"'})/2, 1<<16))
	if !lit("]") {
		for {
			if !lit(`"`) {
				return nil, false
			}
			start := i
			for i < len(body) && isTokenByte(body[i]) {
				i++
			}
			end := i
			if !lit(`"`) {
				return nil, false
			}
			ids = append(ids, string(body[start:end]))
			ws()
			if lit("]") {
				break
			}
			if !lit(",") {
				return nil, false
			}
			ws()
		}
	}
	ws()
	if !lit("}") {
		return nil, false
	}
	ws()
	return ids, i == len(body)
}

func isTokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}
