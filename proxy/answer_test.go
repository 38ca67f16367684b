package proxy

import (
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
	"github.com/stretchr/testify/require"
)

// TestAppendProduceResponse: the hand-written encoder writes exactly what
// encoding/json writes for the same answer.
func TestAppendProduceResponse(t *testing.T) {
	for _, results := range [][]Result{
		nil,
		{},
		{{UID: "01a1fe6b-9473-7e22-9d4f-3d7c230592fe", MessageID: "12:3:0:0", Status: produce.StatusPersisted, Cluster: "primary"}},
		{{UID: "u1", Status: produce.StatusScheduled, Cluster: "c", DeliverAt: "2025-03-01T12:15:00Z"},
			{UID: "u2", MessageID: "1:2:3:4", Status: produce.StatusSpooled},
			{UID: "u3", Status: produce.StatusFailover, Cluster: "dr", Duplicate: true, DuplicateRisk: true}},
		{{UID: "u4", Status: produce.StatusFailed, DuplicateRisk: true, Error: &ErrorBody{Code: CodeProduceTimeout, Message: "a <b> & \"c\"\n\t\\ é \u2028 \x01"}}},
		{{UID: "bad utf-8 \xff\xfe", Status: produce.Status("odd\x7f"), Cluster: "<script>"}},
	} {
		want, err := json.Marshal(produceResponse{Results: results})
		require.NoError(t, err)
		require.Equal(t, string(want), string(appendProduceResponse(nil, results)))
	}
}

// TestWriteProduceAnswer: the headers and body a client sees.
func TestWriteProduceAnswer(t *testing.T) {
	w := httptest.NewRecorder()
	writeProduceAnswer(w, []Result{{UID: "u", MessageID: "1:2:0:0", Status: produce.StatusPersisted, Cluster: "primary"}})
	require.Equal(t, 200, w.Code)
	require.Equal(t, "application/json; charset=utf-8", w.Header().Get("Content-Type"))
	require.JSONEq(t, `{"results":[{"uid":"u","messageId":"1:2:0:0","status":"persisted","cluster":"primary"}]}`, w.Body.String())
}

// FuzzAppendProduceResponse compares the encoder with encoding/json on any
// strings, including ones a broker, a cluster name or an error could hold.
func FuzzAppendProduceResponse(f *testing.F) {
	f.Add("01a1fe6b-9473-7e22-9d4f-3d7c230592fe", "1:2:0:0", "persisted", "primary", "", "", "", false, false)
	f.Add("u", "", "failed", "", "2025-03-01T12:15:00Z", "PRODUCE_TIMEOUT", "a <b> & \"c\"\n\u2028", true, true)
	f.Add("\xff", "\x00", "\\", "é", "\x7f", "&amp;", "\u2029", false, true)
	f.Fuzz(func(t *testing.T, uid, msgID, status, cluster, deliverAt, code, message string, dup, risk bool) {
		r := Result{UID: uid, MessageID: msgID, Status: produce.Status(status), Cluster: cluster, DeliverAt: deliverAt,
			Duplicate: dup, DuplicateRisk: risk}
		if code != "" || message != "" {
			r.Error = &ErrorBody{Code: code, Message: message}
		}
		results := []Result{r, {UID: message, Status: produce.Status(code)}}
		want, err := json.Marshal(produceResponse{Results: results})
		require.NoError(t, err)
		require.Equal(t, string(want), string(appendProduceResponse(nil, results)))
	})
}
