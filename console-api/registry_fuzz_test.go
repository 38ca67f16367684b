package consoleapi_test

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	consoleapi "github.com/pulsar-sidecar/pulsar-sidecar/console-api"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/config"
	"github.com/pulsar-sidecar/pulsar-sidecar/tagfilter"
)

// badRequest checks that a refusal is a 400 with one of codes.
func badRequest(t *testing.T, err error, codes ...string) {
	t.Helper()
	var e *consoleapi.Error
	require.True(t, errors.As(err, &e), "%v", err)
	require.Equal(t, http.StatusBadRequest, e.Status, e.Message)
	require.Contains(t, codes, e.Code, e.Message)
}

// FuzzAppSpec: the app decoder never panics; an accepted app has a valid
// name, patterns the configuration takes, a known role and a sane rate
// limit; a refusal is a 400 with a stable code.
func FuzzAppSpec(f *testing.F) {
	for _, s := range [][2]string{
		{"billing", `{"produce":["pay/*"],"consume":["pay/settle/x"],"consoleRole":"admin","rateLimit":{"messagesPerSecond":10,"burst":5}}`},
		{"a", `{}`}, {"a", ``}, {"a", `null`}, {"bad name", `{}`}, {"a", `{"produce":["pay"]}`}, {"a", `{"consoleRole":"root"}`},
		{"a", `{"rateLimit":{"burst":3}}`}, {"a", `{"x":1}`}, {"a", `{} {}`}, {"a", `{"produce":["*","*"]}`},
		{strings.Repeat("a", 65), `{}`}, {"a", `{"rateLimit":{"messagesPerSecond":-1}}`},
	} {
		f.Add(s[0], []byte(s[1]))
	}
	f.Fuzz(func(t *testing.T, name string, body []byte) {
		app, err := consoleapi.ParseAppSpec(name, body)
		if err != nil {
			badRequest(t, err, consoleapi.CodeInvalidAppName, consoleapi.CodeInvalidBody, consoleapi.CodeInvalidPermission)
			return
		}
		require.Equal(t, name, app.Name)
		require.LessOrEqual(t, len(name), 64)
		for _, p := range slices.Concat(app.Permissions.Produce, app.Permissions.Consume) {
			require.NoError(t, config.ValidTopicPattern(p))
		}
		require.True(t, slices.IsSorted(app.Permissions.Produce))
		if app.Permissions.Console {
			_, ok := consoleapi.ParseRole(string(app.ConsoleRole))
			require.True(t, ok)
			require.NotEmpty(t, app.ConsoleRole)
		} else {
			require.Empty(t, app.ConsoleRole)
		}
		if app.RateLimit != nil {
			require.Positive(t, app.RateLimit.MessagesPerSecond)
			require.GreaterOrEqual(t, app.RateLimit.Burst, 0)
		}
		require.Empty(t, app.Tokens, "a body never sets tokens")
	})
}

// FuzzTopicSpec: accepted topics are full persistent names of valid
// segments.
func FuzzTopicSpec(f *testing.F) {
	for _, s := range [][4]string{
		{"pay", "settle", "orders", `{"createNamespace":true,"partitions":3}`}, {"pay", "settle", "a*b", `{}`},
		{"pay", "settle", "o", `{"deadLetterTopic":"pay/settle/dlq"}`}, {"pay", "settle", "o", `{"deadLetterTopic":"x"}`},
		{"pay", "", "o", `{}`}, {"pay", "settle", "o", `{"partitions":2000}`}, {"..", "settle", "o", `{}`},
	} {
		f.Add(s[0], s[1], s[2], []byte(s[3]))
	}
	f.Fuzz(func(t *testing.T, tenant, ns, topic string, body []byte) {
		tp, _, err := consoleapi.ParseTopicSpec(tenant, ns, topic, body)
		if err != nil {
			badRequest(t, err, consoleapi.CodeInvalidTopic, consoleapi.CodeInvalidBody)
			return
		}
		require.Equal(t, "persistent://"+tenant+"/"+ns+"/"+topic, tp.Name)
		require.NoError(t, config.ValidTopicPattern(tenant+"/"+ns+"/"+topic))
		require.NotEqual(t, "*", topic)
		require.GreaterOrEqual(t, tp.Partitions, 0)
		if tp.DeadLetterTopic != "" {
			_, err := consoleapi.NormalizeTopic(tp.DeadLetterTopic)
			require.NoError(t, err)
		}
	})
}

// FuzzSubscriptionSpec: an accepted subscription's filter compiles (in its
// canonical form), its type and consumers are valid.
func FuzzSubscriptionSpec(f *testing.F) {
	for _, s := range []string{
		`{"tagFilter":"A || B","expectedConsumers":["billing"],"type":"key_shared"}`, `{"tagFilter":"A ||"}`, `{}`, ``,
		`{"type":"exclusive"}`, `{"expectedConsumers":["a b"]}`, `{"maxDeliveries":-1}`, `{"initialPosition":"middle"}`,
		`{"deadLetterTopic":"dlq"}`, `{"deadLetterTopic":"a/b"}`, `{"tagFilter":"(A && !B) || C"}`,
	} {
		f.Add("settlement", []byte(s))
	}
	f.Add("bad name", []byte(`{}`))
	f.Fuzz(func(t *testing.T, name string, body []byte) {
		s, o, err := consoleapi.ParseSubscriptionSpec("pay", "settle", "orders", name, body)
		if err != nil {
			badRequest(t, err, consoleapi.CodeInvalidSubscription, consoleapi.CodeInvalidBody, consoleapi.CodeInvalidTagFilter,
				consoleapi.CodeInvalidAppName, consoleapi.CodeInvalidTopic)
			return
		}
		require.Equal(t, "persistent://pay/settle/orders", s.Topic)
		require.Equal(t, name, s.Name)
		f, err := tagfilter.Compile(s.TagFilter)
		require.NoError(t, err)
		require.Equal(t, s.TagFilter, f.String(), "canonical")
		require.Contains(t, []string{"shared", "key_shared"}, s.Type)
		require.NotNil(t, s.ExpectedConsumers)
		require.GreaterOrEqual(t, o.MaxDeliveries, 0)
		require.Contains(t, []string{"", "latest", "earliest"}, o.InitialPosition)
	})
}

// FuzzRotateBody: the grace period is 0 to 7 days or a 400.
func FuzzRotateBody(f *testing.F) {
	for _, s := range []string{`{"graceSeconds":60}`, `{}`, ``, `{"graceSeconds":-1}`, `{"graceSeconds":1e99}`, `{"grace":1}`, `[]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		d, err := consoleapi.ParseRotateBody(body)
		if err != nil {
			badRequest(t, err, consoleapi.CodeInvalidBody)
			return
		}
		require.GreaterOrEqual(t, d, time.Duration(0))
		require.LessOrEqual(t, d, consoleapi.MaxTokenGrace)
	})
}
