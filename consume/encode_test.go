package consume

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func strp(s string) *string { return &s }

// The hand-written receive answer is byte for byte json.Marshal's.
func TestReceiveResponseMatchesEncodingJSON(t *testing.T) {
	cases := []ReceiveResponse{
		{},
		{Messages: []Message{}},
		{Messages: []Message{{AckID: "abc", MessageID: "1:2:0:-1", PublishTime: "2026-01-02T03:04:05.006Z"}}},
		{Messages: []Message{{
			AckID: "AQEA_-x", UID: "01a1febd-a652-7066-9b35-1755ba8d0f86", MessageID: "7:8:3:12", Cluster: "dr",
			Payload: strp(`{"amount":"12.50","note":"<b>&\u2028\u2029 \x01\x1f\t\n\r\"\\ é 💶"}`),
			Key:     "order\x00key\xff", App: "billing\u2028", IdempotencyKey: "charge-<42>", DuplicateRisk: true,
			Tags:        []string{"PAY_1001", "PAY<2>"},
			Properties:  map[string]string{"z": "last", "a": "first", "m\x7f": "mid\xc3", "": "empty"},
			PublishTime: "2026-01-02T03:04:05.006Z", EventTime: "2025-12-31T23:59:59.999Z", RedeliveryCount: 3,
			DeadLetter: &DeadLetterInfo{Reason: "delivered 16 times", OriginalMessageID: "1:2:0:-1",
				OriginalTopic: "persistent://t/n/x", OriginalCluster: "primary", Subscription: "billing", Deliveries: 16},
		}, {
			AckID: "x", MessageID: "1:3:0:-1", PayloadBase64: "AAEC", PublishTime: "2026-01-02T03:04:05.006Z",
			Payload: strp(""), DeadLetter: &DeadLetterInfo{Reason: "r"},
		}}},
	}
	for i, c := range cases {
		want, err := json.Marshal(&c)
		require.NoError(t, err)
		require.Equal(t, string(want), string(appendReceiveResponse(nil, &c)), "case %d", i)
	}
}

func TestFormatTime(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	times := []time.Time{time.Unix(0, 0), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 3, 29, 1, 30, 0, 5e6, time.FixedZone("x", 5*3600+1800))}
	for range 10000 {
		times = append(times, time.UnixMilli(r.Int64N(1<<45)).Add(time.Duration(r.IntN(1e6))))
	}
	for _, tm := range times {
		require.Equal(t, tm.UTC().Format(TimeLayout), formatTime(tm))
	}
}

// Whatever the fast ack decoder accepts, the strict decoder reads the same
// way; what it refuses goes to the strict decoder.
func FuzzDecodeAckIDsFast(f *testing.F) {
	for _, s := range []string{`{"ackIds":["a","b-_9"]}`, ` { "ackIds" : [ ] } `, `{"ackIds":["a"],"x":1}`,
		`{"ackIds":["a\u0041"]}`, `{"ackIds":["a"]}{}`, `{"ackIds":["a",]}`, `{"ackIds":null}`, `{"ackIds":[""]}`,
		`{"ackIds":["a"],"ackIds":["b"]}`, "{\"ackIds\":[\"a\"]}\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ids, ok := decodeAckIDsFast(body)
		if !ok {
			return
		}
		var req AckRequest
		require.NoError(t, decodeStrict(body, &req, false), "fast accepted %q", body)
		require.Equal(t, req.AckIDs, ids)
		got, err := DecodeAckRequest(body)
		require.NoError(t, err)
		require.Equal(t, ids, got.AckIDs)
	})
}

// BenchmarkReceiveAnswer is one receive answer of 1000 messages shaped as
// in BenchmarkConsumeHTTP: written by encoding/json, by hand, and read
// back as the benchmark's client does (encoding/json, ackIds only).
func BenchmarkReceiveAnswer(b *testing.B) {
	msgs := make([]Message, 1000)
	for i := range msgs {
		msgs[i] = Message{AckID: "AQEAxAWQzgGkBP___w8AAAGaq7c0SQAAAAAAAAAAAAAAAAAAAAEBAaH-vaZScGabNRdVuo0PhhIqbpNHgLHhzpbYpVEj",
			UID: "01a1febd-a652-7066-9b35-1755ba8d0f86", MessageID: "7:8:0:12", Payload: strp(strings.Repeat("x", 100)),
			Tags: []string{"PAY_2001", "PAY_HIT"}, PublishTime: "2026-01-02T03:04:05.006Z"}
	}
	r := &ReceiveResponse{Messages: msgs}
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = json.Marshal(r)
		}
	})
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf = appendReceiveResponse(buf[:0], r)
		}
	})
	b.Run("client-decode", func(b *testing.B) {
		raw := appendReceiveResponse(nil, r)
		b.ReportAllocs()
		for b.Loop() {
			var got struct{ Messages []struct{ AckID string } }
			if err := json.NewDecoder(bytes.NewReader(raw)).Decode(&got); err != nil || len(got.Messages) != 1000 {
				b.Fatal(err)
			}
		}
	})
}
