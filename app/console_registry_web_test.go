package app

import (
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// TestConsoleWebRotateToken: an admin rotates an app's token on the
// Registry page; the new token is shown once, the old one is refused over
// HTTP at once and the new one produces; the Audit page lists the rotation
// by token id. A viewer sees the registry without any write control and
// no Audit link.
func TestConsoleWebRotateToken(t *testing.T) {
	alloc := browser(t)
	h := startEmbedded(t, t.TempDir(), regApps)
	path, _ := newTopic(t)
	require.Equal(t, http.StatusOK, h.produceStatus(path, regShopToken))

	admin := tab(t, alloc)
	rotate := `button[data-action="rotate-token"][aria-label="Rotate token config of shop"]`
	do(t, admin, signIn(h.base, regAdminToken),
		chromedp.Navigate(h.base+"/console/#/registry"),
		chromedp.WaitVisible(css(rotate)),
	)
	require.Equal(t, "admin", text(t, admin, `[data-testid="role"]`))
	screenshot(t, admin, "registry")
	do(t, admin,
		chromedp.Click(css(rotate)),
		chromedp.WaitVisible(css(`button[data-action="confirm-rotate"]`)),
		chromedp.Click(css(`button[data-action="confirm-rotate"]`)),
		chromedp.WaitVisible(css(`#new-token`)),
	)
	newToken := value(t, admin, chromedp.Evaluate[string](`document.getElementById("new-token").value`))
	require.True(t, strings.HasPrefix(newToken, "psc_"), newToken)
	require.Contains(t, text(t, admin, "#status"), "Rotated token config of shop")
	require.Contains(t, text(t, admin, "#new-token-area"), "not shown again")

	require.Equal(t, http.StatusUnauthorized, h.produceStatus(path, regShopToken), "the old token is refused at once")
	require.Equal(t, http.StatusOK, h.produceStatus(path, newToken), "the new token produces")

	// Shown once: the page reloaded lists the token by id only.
	do(t, admin, chromedp.Navigate(h.base+"/console/#/search"), chromedp.Navigate(h.base+"/console/#/registry"),
		chromedp.WaitVisible(css(`#apps-title`)))
	html := value(t, admin, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
	require.NotContains(t, html, newToken)

	do(t, admin, chromedp.Navigate(h.base+"/console/#/audit"), chromedp.WaitVisible(css(`#main table`)))
	audit := text(t, admin, "#main table")
	require.Contains(t, audit, "token.rotate")
	require.Contains(t, audit, "replaces config")
	require.NotContains(t, audit, newToken)
	screenshot(t, admin, "audit")

	viewer := tab(t, alloc)
	do(t, viewer, signIn(h.base, regViewerToken),
		chromedp.Navigate(h.base+"/console/#/registry"),
		chromedp.WaitVisible(css(`#subs-title`)),
	)
	require.Equal(t, "viewer", text(t, viewer, `[data-testid="role"]`))
	require.Contains(t, text(t, viewer, "#main"), "shop", "the viewer sees the registry")
	controls := value(t, viewer, chromedp.Evaluate[int](`document.querySelectorAll("#main button, #main form, #main input, #main select").length`))
	require.Zero(t, controls, "a viewer sees no registry write control")
	require.True(t, value(t, viewer, chromedp.Evaluate[bool](`document.querySelector('#nav a[data-page="audit"]').closest("li").hidden`)),
		"no Audit link for a viewer")
}

// TestConsoleWebRegistryForms: an admin creates an app with the form,
// issues its first token (shown once) and the token produces over HTTP.
func TestConsoleWebRegistryForms(t *testing.T) {
	alloc := browser(t)
	h := startEmbedded(t, t.TempDir(), regApps)
	path, _ := newTopic(t)
	admin := tab(t, alloc)
	do(t, admin, signIn(h.base, regAdminToken),
		chromedp.Navigate(h.base+"/console/#/registry"),
		chromedp.WaitVisible(css(`#app-form`)),
		chromedp.SendKeys(css(`#app-form input[name="name"]`), "refunds"),
		chromedp.SendKeys(css(`#app-form input[name="produce"]`), "pay/*"),
		chromedp.Click(css(`button[data-action="save-app"]`)),
		chromedp.WaitVisible(css(`button[aria-label="Issue a token for refunds"]`)),
		chromedp.Click(css(`button[aria-label="Issue a token for refunds"]`)),
		chromedp.WaitVisible(css(`#new-token`)),
	)
	tok := value(t, admin, chromedp.Evaluate[string](`document.getElementById("new-token").value`))
	require.Equal(t, http.StatusOK, h.produceStatus(path, tok))
	r := h.call(http.MethodGet, "/registry/apps/refunds", regViewerToken, "")
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	require.Contains(t, r.Raw, `"produce":["pay/*"]`)
}
