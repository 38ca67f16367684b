package app

import (
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/config"
	"github.com/pulsar-sidecar/pulsar-sidecar/proxy"
)

// The console page's tests drive a real headless chromium (Debian's
// chromium package) against the sidecar as the binary builds it: the
// embedded mode, with apps. They skip when no chromium is installed.
//
// go test ./app/ -run TestConsoleWeb -console-screenshots ../docs/console
// also writes screenshots of the main pages.
var consoleScreenshots = flag.String("console-screenshots", "", "directory to write the console page's screenshots to (docs/console)")

const (
	webShopToken     = "web-shop-token-0001"
	webWorkerToken   = "web-worker-token-0001"
	webViewerToken   = "web-viewer-token-0001"
	webOperatorToken = "web-operator-token-0001"
)

// webApps are the apps of the page's tests: a producer, a consumer, a
// console viewer and a console operator.
func webApps(c *config.Config) {
	c.Apps = []config.App{
		{Name: "shop", TokenSHA256: proxy.HashToken(webShopToken), Produce: []string{"*"}},
		{Name: "billing-worker", TokenSHA256: proxy.HashToken(webWorkerToken), Consume: []string{"*"}},
		{Name: "support", TokenSHA256: proxy.HashToken(webViewerToken), Console: true},
		{Name: "oncall", TokenSHA256: proxy.HashToken(webOperatorToken), ConsoleRole: "operator"},
	}
}

func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium installed (apt-get install -y chromium): the console page's browser tests are skipped")
	return ""
}

// browser starts a headless chromium at laptop size; each tab made from
// the returned context is its own user (sessionStorage is per tab).
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)), chromedp.NoSandbox, chromedp.WindowSize(1366, 900),
		chromedp.Flag("disable-dev-shm-usage", true))
	alloc, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	return alloc
}

// tab opens a new tab; it is closed when the test ends.
func tab(t *testing.T, alloc context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	require.NoError(t, chromedp.Do(ctx)) // starts the browser: no deadline on this first call, or it would end the browser
	return ctx
}

// do runs browser steps with a deadline.
func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	require.NoError(t, chromedp.Do(ctx, steps...))
}

// value runs one browser action with a deadline and returns its value.
func value[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	require.NoError(t, err)
	return v
}

// text is the visible text of the first element sel matches.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return value(t, ctx, chromedp.Text(chromedp.CSS(sel)))
}

func css(sel string) chromedp.CSS { return chromedp.CSS(sel) }

func signIn(base, token string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.Navigate(base+"/console/"),
		chromedp.WaitVisible(css("#token")),
		chromedp.SendKeys(css("#token"), token),
		chromedp.Click(css(`button[type="submit"]`)),
		chromedp.WaitVisible(css("#nav")),
	)
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if *consoleScreenshots == "" {
		return
	}
	do(t, ctx, chromedp.Sleep(200*time.Millisecond))
	png := value(t, ctx, chromedp.FullScreenshot(100)) // quality 100 is PNG
	require.NoError(t, os.MkdirAll(*consoleScreenshots, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(*consoleScreenshots, name+".png"), png, 0o644))
}

// TestConsoleWebFindConsumedMessage is the page's main flow: a message
// produced over HTTP and consumed over HTTP by billing-worker is found by
// its business key, opened, and shown consumed by billing-worker; the
// topics, delayed and health pages render. The user is a viewer, who sees
// no write button; an operator sees one and cancels a delayed message with
// it, which the API confirms.
func TestConsoleWebFindConsumedMessage(t *testing.T) {
	alloc := browser(t)
	h := startEmbedded(t, t.TempDir(), webApps)
	path, full := newTopic(t)
	sub := "/v1/topics/" + path + "/subscriptions/settlement"
	reg := h.do(http.MethodPut, sub, bearer(webWorkerToken),
		[]byte(`{"tagFilter":"PAY_1001","initialPosition":"earliest","expectedConsumers":["billing-worker"]}`))
	require.Equal(t, http.StatusCreated, reg.Status, reg.Raw)

	res := h.do(http.MethodPost, "/v1/topics/"+path+"/messages", bearer(webShopToken),
		[]byte(`{"messages":[{"payload":"{\"order\":\"o-4711\",\"amount\":1250}","key":"order-4711","tags":["PAY_1001"],"properties":{"currency":"EUR"}}]}`))
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	uid := res.Results[0].UID

	var got struct {
		Messages []struct {
			AckID string `json:"ackId"`
			UID   string `json:"uid"`
		} `json:"messages"`
	}
	r := h.do(http.MethodPost, sub+"/receive", bearer(webWorkerToken), []byte(`{"max":10,"waitMs":5000}`))
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	require.NoError(t, json.Unmarshal([]byte(r.Raw), &got))
	require.Len(t, got.Messages, 1, r.Raw)
	require.Equal(t, uid, got.Messages[0].UID)
	ack := h.do(http.MethodPost, sub+"/ack", bearer(webWorkerToken), []byte(`{"ackIds":["`+got.Messages[0].AckID+`"]}`))
	require.Equal(t, http.StatusOK, ack.Status, ack.Raw)

	// The trace store is written asynchronously: wait until the API says
	// consumed, so the page has it to show.
	require.Eventually(t, func() bool {
		r := h.do(http.MethodGet, "/console/v1/messages/"+uid+"/consumption", bearer(webViewerToken), nil)
		return r.Status == http.StatusOK && strings.Contains(r.Raw, `"state":"consumed"`) && strings.Contains(r.Raw, `"consumer":"billing-worker"`)
	}, 15*time.Second, 100*time.Millisecond)

	// A delayed message for the delayed page (the wheel: cancellable).
	d := h.do(http.MethodPost, "/v1/topics/"+path+"/messages", bearer(webShopToken),
		[]byte(`{"messages":[{"payload":"remind","key":"order-4711","tags":["PAY_1001"],"deliverAfter":"2h"}]}`))
	require.Equal(t, http.StatusOK, d.Status, d.Raw)
	delayedUID := d.Results[0].UID

	viewer := tab(t, alloc)
	do(t, viewer, signIn(h.base, webViewerToken))
	require.Equal(t, "viewer", text(t, viewer, `[data-testid="role"]`))

	// Find it by its business key; the result links to the message.
	link := `a[href="#/message/` + uid + `"]`
	do(t, viewer,
		chromedp.Navigate(h.base+"/console/#/search"),
		chromedp.WaitVisible(css(`input[name="q"]`)),
		chromedp.SendKeys(css(`input[name="q"]`), "order-4711"),
		chromedp.Click(css(`form[role="search"] button[type="submit"]`)),
		chromedp.WaitVisible(css(link)),
	)
	require.NotContains(t, text(t, viewer, "#main"), "null", "no placeholder leaks into the page")
	results := text(t, viewer, "#main table")
	require.Contains(t, results, full)
	require.Contains(t, results, "key", "matched by the business key")
	screenshot(t, viewer, "search")

	// Open it: content behind the payload switch, properties, consumption.
	do(t, viewer, chromedp.Click(css(link)), chromedp.WaitVisible(css("#consumption-title")))
	consumption := text(t, viewer, `section[aria-labelledby="consumption-title"] table`)
	require.Contains(t, consumption, "settlement")
	require.Contains(t, consumption, "consumed")
	require.Contains(t, consumption, "billing-worker")
	summary := text(t, viewer, `section[aria-labelledby="summary-title"]`)
	require.Contains(t, summary, "order-4711")
	require.Contains(t, summary, "shop")
	require.True(t, value(t, viewer, chromedp.Evaluate[bool](`document.getElementById("payload").hidden`)), "the payload is hidden until asked for")
	do(t, viewer, chromedp.Click(css("#show-payload")), chromedp.WaitVisible(css("#payload")))
	require.Equal(t, `{"order":"o-4711","amount":1250}`, text(t, viewer, "#payload"))
	props := text(t, viewer, `section[aria-labelledby="content-title"] table`)
	require.Contains(t, props, "currency")
	require.Contains(t, props, "EUR")
	screenshot(t, viewer, "message")

	do(t, viewer, chromedp.Navigate(h.base+"/console/#/topics"), chromedp.WaitVisible(css(`#main section table`)))
	topics := text(t, viewer, "#main")
	require.Contains(t, topics, full)
	require.Contains(t, topics, "settlement")
	require.Contains(t, topics, "PAY_1001")
	screenshot(t, viewer, "topics")

	do(t, viewer, chromedp.Navigate(h.base+"/console/#/health"), chromedp.WaitVisible(css("#h-trace")))
	health := text(t, viewer, "#main")
	require.Contains(t, health, "Trace lag")
	require.Contains(t, health, "Delay lag")
	screenshot(t, viewer, "health")

	// The viewer sees the delayed message and no button to cancel it.
	row := `a[href="#/message/` + delayedUID + `"]`
	do(t, viewer, chromedp.Navigate(h.base+"/console/#/delayed?topic="+path), chromedp.WaitVisible(css(row)))
	buttons := value(t, viewer, chromedp.Evaluate[int](`document.querySelectorAll("#main button:not([type=submit])").length`))
	require.Zero(t, buttons, "a viewer sees no write buttons")

	// The operator sees one and cancels the message with it.
	operator := tab(t, alloc)
	do(t, operator, signIn(h.base, webOperatorToken),
		chromedp.Navigate(h.base+"/console/#/delayed?topic="+path),
		chromedp.WaitVisible(css(`button[data-action="cancel-delayed"]`)))
	screenshot(t, operator, "delayed")
	do(t, operator,
		chromedp.Click(css(`button[data-action="cancel-delayed"]`)),
		chromedp.WaitVisible(css(`button[data-action="confirm-cancel"]`)),
		chromedp.Click(css(`button[data-action="confirm-cancel"]`)),
		chromedp.WaitVisible(css(`#main .state.good`)),
	)
	require.Equal(t, "Cancelled "+delayedUID+".", text(t, operator, "#status"))
	gone := h.do(http.MethodGet, "/v1/delayed/"+delayedUID, bearer(webShopToken), nil)
	require.Equal(t, http.StatusNotFound, gone.Status, gone.Raw)
}

// TestConsoleWebSignIn: without a token the page asks for one; a wrong one
// is refused with the API's message and the form stays.
func TestConsoleWebSignIn(t *testing.T) {
	alloc := browser(t)
	h := startEmbedded(t, t.TempDir(), webApps)
	ctx := tab(t, alloc)
	do(t, ctx,
		chromedp.Navigate(h.base+"/console/"),
		chromedp.WaitVisible(css("#token")),
		chromedp.SendKeys(css("#token"), "not-a-token"),
		chromedp.Click(css(`button[type="submit"]`)),
		chromedp.WaitVisible(css(`#main p[role="alert"]`)),
	)
	require.Contains(t, text(t, ctx, `#main p[role="alert"]`), "Bearer")
	require.True(t, value(t, ctx, chromedp.Evaluate[bool](`document.getElementById("nav").hidden`)))
	// An app without the console permission is refused too.
	do(t, ctx,
		chromedp.SendKeys(css("#token"), webShopToken),
		chromedp.Click(css(`button[type="submit"]`)),
		chromedp.Sleep(300*time.Millisecond),
		chromedp.WaitVisible(css(`#main p[role="alert"]`)),
	)
	require.Contains(t, text(t, ctx, `#main p[role="alert"]`), "console permission")
}

// TestConsoleWebResendDeadLetter: a viewer sees a subscription's dead
// letter with its reason and no way to resend it; an operator selects it
// and resends it from the page, and the subscription receives it again
// with its uid.
func TestConsoleWebResendDeadLetter(t *testing.T) {
	alloc := browser(t)
	h := startEmbedded(t, t.TempDir(), webApps)
	_, full, sub, uid := deadLetter(t, h)
	page := h.base + "/console/#/dead-letters?topic=" + full + "&subscription=settlement"
	row := `a[href="#/message/` + uid + `"]`

	viewer := tab(t, alloc)
	do(t, viewer, signIn(h.base, webViewerToken), chromedp.Navigate(page), chromedp.WaitVisible(css(row)))
	require.Contains(t, text(t, viewer, `section[aria-labelledby="dl-title"] table`), "maxDeliveries 1")
	controls := value(t, viewer, chromedp.Evaluate[int](`document.querySelectorAll("#main button, #main input[type=checkbox]").length`))
	require.Zero(t, controls, "a viewer sees no resend controls")

	operator := tab(t, alloc)
	do(t, operator, signIn(h.base, webOperatorToken), chromedp.Navigate(page), chromedp.WaitVisible(css(row)),
		chromedp.Click(css(`section[aria-labelledby="dl-title"] input[type="checkbox"]`)))
	screenshot(t, operator, "dead-letters")
	do(t, operator,
		chromedp.Click(css(`button[data-action="resend"]`)),
		chromedp.WaitVisible(css(`#main .state.good`)),
	)
	require.Equal(t, "Resent 1 of 1 to "+full+".", text(t, operator, "#status"))
	got := h.receiveAs(sub, webWorkerToken, 5000)
	require.Len(t, got, 1)
	require.Equal(t, uid, got[0].UID)
}

// TestConsoleWebOpenDevMode: in the embedded dev mode (no apps, loopback)
// the page opens without a token, as an admin, with no sign-out.
func TestConsoleWebOpenDevMode(t *testing.T) {
	alloc := browser(t)
	h := startEmbedded(t, t.TempDir(), nil)
	ctx := tab(t, alloc)
	do(t, ctx, chromedp.Navigate(h.base+"/console"), chromedp.WaitVisible(css("#nav")), chromedp.WaitVisible(css(`input[name="q"]`)))
	require.Equal(t, "admin", text(t, ctx, `[data-testid="role"]`))
	header := text(t, ctx, "header")
	require.Contains(t, header, "open dev mode")
	require.NotContains(t, header, "null")
	require.NotContains(t, header, "Sign out")
	require.Equal(t, "/console/", value(t, ctx, chromedp.Evaluate[string](`location.pathname`)), "/console redirects to the page")
}
