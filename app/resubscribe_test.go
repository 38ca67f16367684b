package app

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestResubscribeIsQuiet: re-registering a subscription (a new tag filter
// makes the engine close and re-create its consumer) fails nothing, so
// it logs no ERROR line, from the Pulsar client or anyone else.
func TestResubscribeIsQuiet(t *testing.T) {
	h, logs := startAccessLogged(t, nil)
	path, _ := newTopic(t)
	sub := h.register(path, "workers", `{"tagFilter":"A","initialPosition":"earliest"}`)
	res := h.produceJSON(path, `{"messages":[{"payload":"a","tags":["A"]},{"payload":"b","tags":["B"]}]}`)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	r := h.do(http.MethodPost, sub+"/receive", jsonHeader(), []byte(`{"max":10,"waitMs":3000}`))
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	for i, spec := range []string{
		`{"tagFilter":"B","initialPosition":"earliest"}`,
		`{"tagFilter":"B","initialPosition":"earliest"}`, // the same again
		`{"tagFilter":"A || B","type":"key_shared","initialPosition":"earliest"}`,
		`{"tagFilter":"A","ackTimeout":"10s","maxDeliveries":3,"initialPosition":"earliest"}`,
	} {
		put := h.do(http.MethodPut, sub, jsonHeader(), []byte(spec))
		require.Equal(t, http.StatusOK, put.Status, "re-register %d: %s", i, put.Raw)
		r := h.do(http.MethodPost, sub+"/receive", jsonHeader(), []byte(`{"max":10,"waitMs":1000}`))
		require.Equal(t, http.StatusOK, r.Status, r.Raw)
	}
	del := h.do(http.MethodDelete, sub, nil, nil)
	require.Equal(t, http.StatusNoContent, del.Status, del.Raw)
	time.Sleep(500 * time.Millisecond) // the client logs its reconnects after the answers
	var errs []map[string]any
	logs.mu.Lock()
	raw := logs.buf.String()
	logs.mu.Unlock()
	for _, l := range splitLines(t, raw) {
		if l["level"] == "ERROR" {
			errs = append(errs, l)
		}
	}
	for _, l := range splitLines(t, raw) {
		if l["level"] != "INFO" {
			t.Logf("%v", l)
		}
	}
	require.Empty(t, errs, "ERROR lines although nothing failed")
}
