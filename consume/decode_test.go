package consume

import (
	"errors"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/tagfilter"
)

func TestDecoders(t *testing.T) {
	cases := []struct {
		name string
		body string
		dec  func([]byte) error
		code string
	}{
		{"receive empty body", "", decReceive, ""},
		{"receive whitespace", "  \n", decReceive, ""},
		{"receive ok", `{"max":5,"waitMs":100}`, decReceive, ""},
		{"receive array", `[1]`, decReceive, CodeInvalidJSON},
		{"receive unknown", `{"max":5,"timeout":1}`, decReceive, CodeUnknownField},
		{"receive float", `{"max":1.5}`, decReceive, CodeInvalidJSON},
		{"receive null", `null`, decReceive, CodeInvalidJSON},
		{"ack ok", `{"ackIds":["a"]}`, decAck, ""},
		{"ack missing", `{}`, decAck, CodeInvalidAckIDs},
		{"ack not list", `{"ackIds":"a"}`, decAck, CodeInvalidJSON},
		{"ack empty body", ``, decAck, CodeInvalidJSON},
		{"ack two objects", `{"ackIds":["a"]}{"ackIds":["b"]}`, decAck, CodeInvalidJSON},
		{"nack ok", `{"ackIds":["a"],"redeliverAfter":"5s"}`, decNack, ""},
		{"nack unknown", `{"ackIds":["a"],"delay":"5s"}`, decNack, CodeUnknownField},
		{"spec ok", `{"tagFilter":"A || B","type":"shared"}`, decSpec, ""},
		{"spec truncated", `{"tagFilter":"A`, decSpec, CodeInvalidJSON},
		{"spec consumers not strings", `{"expectedConsumers":[1]}`, decSpec, CodeInvalidJSON},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.dec([]byte(c.body))
			if c.code == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			e := AsError(err)
			require.Equal(t, c.code, e.Code, e.Message)
			require.Equal(t, http.StatusBadRequest, e.Status)
		})
	}
}

func decReceive(b []byte) error { _, err := DecodeReceiveRequest(b); return err }
func decAck(b []byte) error     { _, err := DecodeAckRequest(b); return err }
func decNack(b []byte) error    { _, err := DecodeNackRequest(b); return err }
func decSpec(b []byte) error    { _, err := DecodeSubscriptionSpec(b); return err }

func TestResolveDefaults(t *testing.T) {
	ref := SubscriptionRef{Tenant: "t", Namespace: "n", Topic: "orders", Subscription: "billing"}
	s, err := SubscriptionSpec{}.Resolve(ref, Defaults{})
	require.NoError(t, err)
	require.Equal(t, "*", s.TagFilter)
	require.True(t, s.Filter().MatchAll())
	require.Equal(t, TypeShared, s.Type)
	require.Equal(t, "30s", s.AckTimeout)
	require.Equal(t, 16, s.MaxDeliveries)
	require.Equal(t, "t/n/orders-billing-DLQ", s.DeadLetterTopic)
	require.Equal(t, PositionLatest, s.InitialPosition)

	s, err = SubscriptionSpec{DeadLetterTopic: "x/y/z", AckTimeout: "2m"}.Resolve(ref, Defaults{MaxDeliveries: 3})
	require.NoError(t, err)
	require.Equal(t, "x/y/z", s.DeadLetterTopic)
	require.Equal(t, 3, s.MaxDeliveries)
	require.Equal(t, "2m0s", s.AckTimeout)

	long := ref
	long.Topic = "a123456789012345678901234567890123456789012345678901234567890123456789"
	_, err = SubscriptionSpec{}.Resolve(long, Defaults{})
	require.Equal(t, CodeInvalidDeadLetterTopic, AsError(err).Code, "the default dead-letter name would be too long")
}

// FuzzDecodeRequests: no body makes a decoder panic; every failure is a
// 400 *Error; an accepted spec either resolves into a subscription whose
// canonical filter compiles to itself, or fails with a 400 *Error.
func FuzzDecodeRequests(f *testing.F) {
	for _, s := range []string{
		`{"max":100,"waitMs":5000}`, `{"ackIds":["abc"],"redeliverAfter":"1s"}`, ``,
		`{"tagFilter":"PAY_1001 || PAY_1002","type":"key_shared","ackTimeout":"30s","maxDeliveries":16,"deadLetterTopic":"t/n/d","expectedConsumers":["a"],"initialPosition":"earliest"}`,
		`{"tagFilter":"(A && !B"}`, `{"ackIds":null}`, `{"max":-1}`, `[{}]`, `{"a":1}`, "{\"tagFilter\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	ref := SubscriptionRef{Tenant: "t", Namespace: "n", Topic: "x", Subscription: "s"}
	check := func(t *testing.T, err error) {
		if err == nil {
			return
		}
		var e *Error
		if !errors.As(err, &e) || e.Status != http.StatusBadRequest || e.Code == "" || e.Message == "" {
			t.Fatalf("error %v is not a 400 *Error with a code and message", err)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		_, err := DecodeReceiveRequest(body)
		check(t, err)
		_, err = DecodeAckRequest(body)
		check(t, err)
		_, err = DecodeNackRequest(body)
		check(t, err)
		spec, err := DecodeSubscriptionSpec(body)
		check(t, err)
		if err != nil {
			return
		}
		sub, err := spec.Resolve(ref, Defaults{})
		check(t, err)
		if err != nil {
			return
		}
		again, err := tagfilter.Compile(sub.TagFilter)
		if err != nil || again.String() != sub.TagFilter {
			t.Fatalf("canonical filter %q does not compile to itself: %v", sub.TagFilter, err)
		}
	})
}
