package app

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// TestConsoleWebOps: the issue-15 operations on the page. A viewer sees
// the topics, delayed and health pages with no reset or reschedule
// control (and the health page saying how to connect a Prometheus); an
// operator resets a subscription's cursor from the topics page, after
// which the consumer receives the acknowledged messages again, and
// reschedules a delayed message from the delayed page, which the API
// confirms.
func TestConsoleWebOps(t *testing.T) {
	alloc := browser(t)
	h := startEmbedded(t, t.TempDir(), webApps)
	path, full := newTopic(t)
	sub := "/v1/topics/" + path + "/subscriptions/settlement"
	reg := h.do(http.MethodPut, sub, bearer(webWorkerToken), []byte(`{"initialPosition":"earliest","expectedConsumers":["billing-worker"]}`))
	require.Equal(t, http.StatusCreated, reg.Status, reg.Raw)
	before := time.Now().Add(-time.Second).UTC()
	var msgs []string
	for i := range 3 {
		msgs = append(msgs, fmt.Sprintf(`{"payload":"charge %d","key":"order-%d","tags":["PAY_1001"]}`, i, i))
	}
	res := h.do(http.MethodPost, "/v1/topics/"+path+"/messages", bearer(webShopToken), []byte(`{"messages":[`+strings.Join(msgs, ",")+`]}`))
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	consumeAll := func() map[string]bool {
		t.Helper()
		got := map[string]bool{}
		deadline := time.Now().Add(15 * time.Second)
		for len(got) < 3 && time.Now().Before(deadline) {
			var acks []string
			for _, m := range h.receiveAs(sub, webWorkerToken, 500) {
				got[m.UID] = true
				acks = append(acks, `"`+m.AckID+`"`)
			}
			if len(acks) > 0 {
				a := h.do(http.MethodPost, sub+"/ack", bearer(webWorkerToken), []byte(`{"ackIds":[`+strings.Join(acks, ",")+`]}`))
				require.Equal(t, http.StatusOK, a.Status, a.Raw)
			}
		}
		require.Len(t, got, 3)
		return got
	}
	first := consumeAll()

	d := h.do(http.MethodPost, "/v1/topics/"+path+"/messages", bearer(webShopToken),
		[]byte(`{"messages":[{"payload":"remind","key":"order-1","deliverAfter":"2h"}]}`))
	require.Equal(t, http.StatusOK, d.Status, d.Raw)
	delayedUID := d.Results[0].UID

	// The viewer: no operation control anywhere; the health page says how
	// to connect a Prometheus.
	viewer := tab(t, alloc)
	do(t, viewer, signIn(h.base, webViewerToken),
		chromedp.Navigate(h.base+"/console/#/topics"), chromedp.WaitVisible(css(`#main section table`)))
	require.Contains(t, text(t, viewer, "#main"), full)
	noControls := `document.querySelectorAll("#main [data-action], #main button:not([type=submit])").length`
	require.Zero(t, value(t, viewer, chromedp.Evaluate[int](noControls)), "a viewer sees no reset control")
	do(t, viewer, chromedp.Navigate(h.base+"/console/#/delayed?topic="+path), chromedp.WaitVisible(css(`a[href="#/message/`+delayedUID+`"]`)))
	require.Zero(t, value(t, viewer, chromedp.Evaluate[int](noControls)), "a viewer sees no reschedule control")
	do(t, viewer, chromedp.Navigate(h.base+"/console/#/health"), chromedp.WaitVisible(css("#h-alerts")))
	require.Contains(t, text(t, viewer, `section[aria-labelledby="h-alerts"]`), "console.prometheusURL")

	// The operator resets the cursor from the topics page.
	operator := tab(t, alloc)
	do(t, operator, signIn(h.base, webOperatorToken),
		chromedp.Navigate(h.base+"/console/#/topics"),
		chromedp.WaitVisible(css(`button[data-action="reset-cursor"][data-subscription="settlement"]`)),
		chromedp.Click(css(`button[data-action="reset-cursor"][data-subscription="settlement"]`)),
		chromedp.WaitVisible(css(`input[data-input="reset-time"]`)),
		chromedp.SetValue(css(`input[data-input="reset-time"]`), before.Format(time.RFC3339)),
	)
	screenshot(t, operator, "topics-reset")
	do(t, operator,
		chromedp.Click(css(`button[data-action="confirm-reset"]`)),
		chromedp.WaitVisible(css(`#main .state.good`)),
	)
	require.Contains(t, text(t, operator, "#status"), "settlement replays from")
	require.Equal(t, first, consumeAll(), "the consumer receives the acknowledged messages again")

	// The operator reschedules the delayed message from the delayed page.
	to := time.Now().Add(5 * time.Hour).UTC().Truncate(time.Second)
	do(t, operator,
		chromedp.Navigate(h.base+"/console/#/delayed?topic="+path),
		chromedp.WaitVisible(css(`button[data-action="reschedule-delayed"]`)),
		chromedp.Click(css(`button[data-action="reschedule-delayed"]`)),
		chromedp.WaitVisible(css(`input[data-input="reschedule-time"]`)),
		chromedp.SetValue(css(`input[data-input="reschedule-time"]`), to.Format(time.RFC3339)),
	)
	screenshot(t, operator, "delayed-reschedule")
	do(t, operator,
		chromedp.Click(css(`button[data-action="confirm-reschedule"]`)),
		chromedp.WaitVisible(css(`#main .state.good`)),
	)
	require.Contains(t, text(t, operator, "#status"), "is now due")
	g := h.do(http.MethodGet, "/v1/delayed/"+delayedUID, bearer(webShopToken), nil)
	require.Equal(t, http.StatusOK, g.Status, g.Raw)
	var view struct {
		Due time.Time `json:"due"`
	}
	require.NoError(t, json.Unmarshal([]byte(g.Raw), &view), g.Raw)
	require.True(t, view.Due.Equal(to), "%s != %s (%s)", view.Due, to, g.Raw)
}
