package app

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
)

// TestConsumeAnswerSaysAppKeyAndRisk: what the produce path writes reaches
// the HTTP consumer (app, idempotencyKey, duplicateRisk), and a "key"
// subscription drops a copy of the key under another uid (issue 12's crash
// window, written here by a native producer as that sidecar did), while a
// "uid" subscription shows the consumer both, with the fields it needs to
// drop the copy itself.
func TestConsumeAnswerSaysAppKeyAndRisk(t *testing.T) {
	h := startApp(t, nil)
	path, full := newTopic(t)
	byKey := h.register(path, "by-key", `{"initialPosition":"earliest","dedupe":"key"}`)
	byUID := h.register(path, "by-uid", `{"initialPosition":"earliest"}`)

	res := h.produceJSON(path, `{"messages":[{"payload":"charge","idempotencyKey":"charge-o-9"},{"payload":"plain"}]}`)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	msgs := h.readAll(full)
	require.Len(t, msgs, 2)
	props := maps.Clone(msgs[0].Properties())
	require.Equal(t, "charge-o-9", props[produce.PropIdempotencyKey])
	props[produce.PropUID] = uuid.Must(uuid.NewV7()).String() // another uid, same app and key
	props[produce.PropDuplicateRisk] = "true"
	p, err := h.client.CreateProducer(pulsar.ProducerOptions{Topic: full})
	require.NoError(t, err)
	_, err = p.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte("charge"), Properties: props})
	require.NoError(t, err)
	p.Close()

	type msg struct {
		AckID          string `json:"ackId"`
		UID            string `json:"uid"`
		App            string `json:"app"`
		IdempotencyKey string `json:"idempotencyKey"`
		DuplicateRisk  *bool  `json:"duplicateRisk"`
	}
	recv := func(sub string, want int) []msg {
		var out []msg
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			r := h.do(http.MethodPost, sub+"/receive", jsonHeader(), []byte(`{"max":10,"waitMs":500}`))
			require.Equal(t, http.StatusOK, r.Status, r.Raw)
			var page struct{ Messages []msg }
			require.NoError(t, json.Unmarshal([]byte(r.Raw), &page))
			out = append(out, page.Messages...)
			if len(page.Messages) == 0 && len(out) >= want {
				break
			}
			ids := make([]string, 0, len(page.Messages))
			for _, m := range page.Messages {
				ids = append(ids, `"`+m.AckID+`"`)
			}
			if len(ids) > 0 {
				a := h.do(http.MethodPost, sub+"/ack", jsonHeader(), []byte(`{"ackIds":[`+strings.Join(ids, ",")+`]}`))
				require.Equal(t, http.StatusOK, a.Status, a.Raw)
			}
		}
		return out
	}

	keyed := recv(byKey, 2)
	require.Len(t, keyed, 2, "the copy under another uid is dropped: %+v", keyed)
	require.Equal(t, res.Results[0].UID, keyed[0].UID)
	require.Equal(t, "dev", keyed[0].App, "protected mode's app")
	require.Equal(t, "charge-o-9", keyed[0].IdempotencyKey)
	require.NotNil(t, keyed[0].DuplicateRisk)
	require.False(t, *keyed[0].DuplicateRisk)
	require.Equal(t, res.Results[1].UID, keyed[1].UID)
	require.Empty(t, keyed[1].IdempotencyKey)

	all := recv(byUID, 3)
	require.Len(t, all, 3, "dedupe by uid delivers both uids of the key")
	require.Equal(t, "charge-o-9", all[2].IdempotencyKey)
	require.Equal(t, "dev", all[2].App)
	require.True(t, *all[2].DuplicateRisk)
}
