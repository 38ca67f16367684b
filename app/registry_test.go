package app

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/config"
	"github.com/pulsar-sidecar/pulsar-sidecar/proxy"
)

// The apps of the registry tests: a console admin, operator and viewer,
// and a producer.
const (
	regAdminToken    = "reg-admin-token-0001"
	regOperatorToken = "reg-operator-token-0001"
	regViewerToken   = "reg-viewer-token-0001"
	regShopToken     = "reg-shop-token-0001"
)

func regApps(c *config.Config) {
	c.Apps = []config.App{
		{Name: "root", TokenSHA256: proxy.HashToken(regAdminToken), ConsoleRole: "admin"},
		{Name: "oncall", TokenSHA256: proxy.HashToken(regOperatorToken), ConsoleRole: "operator"},
		{Name: "support", TokenSHA256: proxy.HashToken(regViewerToken), Console: true},
		{Name: "shop", TokenSHA256: proxy.HashToken(regShopToken), Produce: []string{"*"}},
	}
}

// startReplica runs a second sidecar on the first one's broker and Redis
// (another data directory and port): the replica of a shared gateway.
func startReplica(t *testing.T, h *harness, edit func(*config.Config)) *harness {
	t.Helper()
	cfg := testConfig(t, h.broker, h.redis)
	cfg.Node = "test-node-2"
	if edit != nil {
		edit(&cfg)
	}
	a, err := New(cfg, WithLogger(testLogger(t)))
	require.NoError(t, err)
	require.NoError(t, a.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		require.NoError(t, a.Stop(ctx))
	})
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &harness{t: t, app: a, broker: h.broker, redis: h.redis, base: "http://" + a.Addr(),
		http: &http.Client{Transport: validatingTransport{t: t, base: tr}, Timeout: 30 * time.Second}}
}

// call sends a console request with a JSON body as the app of token ("":
// none).
func (h *harness) call(method, path, token, body string) response {
	h.t.Helper()
	hdr := http.Header{}
	if body != "" {
		hdr.Set("Content-Type", "application/json")
	}
	if token != "" {
		hdr.Set("Authorization", "Bearer "+token)
	}
	return h.do(method, "/console/v1"+path, hdr, []byte(body))
}

type auditEntry struct {
	ID, Actor, Role, Action, Kind, Object, TokenID, ReplacedTokenID string
	Before, After                                                   json.RawMessage
}

// audit returns the audit log page of query as the admin.
func (h *harness) audit(query string) ([]auditEntry, string) {
	h.t.Helper()
	r := h.call(http.MethodGet, "/audit"+query, regAdminToken, "")
	require.Equal(h.t, http.StatusOK, r.Status, r.Raw)
	var page struct {
		Entries []auditEntry
		Next    string
	}
	require.NoError(h.t, json.Unmarshal([]byte(r.Raw), &page))
	return page.Entries, page.Next
}

type issued struct {
	App, ID, Token, ReplacedID string
	ReplacedExpiresAt          *time.Time
}

func decodeIssued(t *testing.T, r response) issued {
	t.Helper()
	require.Equal(t, http.StatusCreated, r.Status, r.Raw)
	var out issued
	require.NoError(t, json.Unmarshal([]byte(r.Raw), &out))
	require.True(t, strings.HasPrefix(out.Token, "psc_"), out.Token)
	return out
}

// produceStatus produces one message to topic path p with token.
func (h *harness) produceStatus(p, token string) int {
	h.t.Helper()
	return h.produceJSON(p, `{"messages":[{"payload":"x"}]}`, "Authorization", "Bearer "+token).Status
}

// eventually waits until cond holds and returns how long it took.
func eventually(t *testing.T, cond func() bool, within time.Duration, msg string) time.Duration {
	t.Helper()
	start := time.Now()
	require.Eventually(t, cond, within, 20*time.Millisecond, msg)
	return time.Since(start)
}

// TestRegistryWrites: every registry write through the console API, as
// the admin, with its audit entry; the data plane on this replica and on
// a second one (same Redis) follows each change.
func TestRegistryWrites(t *testing.T) {
	h := start(t, regApps)
	h2 := startReplica(t, h, regApps)
	path, _ := newTopic(t)

	// The bootstrap wrote the configured apps once; the second replica
	// found them and wrote nothing.
	entries, _ := h.audit("")
	require.Len(t, entries, 1)
	require.Equal(t, "registry.bootstrap", entries[0].Action)
	require.Equal(t, "config", entries[0].Actor)
	require.NotContains(t, string(entries[0].After), proxy.HashToken(regShopToken), "no token hash in the audit log")

	// Create an app: no token yet.
	r := h.call(http.MethodPut, "/registry/apps/billing", regAdminToken,
		`{"description":"billing service","produce":["pay/*"],"consume":["pay/settle/*"],"rateLimit":{"messagesPerSecond":1000}}`)
	require.Equal(t, http.StatusCreated, r.Status, r.Raw)
	entries, _ = h.audit("?kind=app&object=billing")
	require.Len(t, entries, 1)
	require.Equal(t, "app.create", entries[0].Action)
	require.Equal(t, "root", entries[0].Actor)
	require.Equal(t, "admin", entries[0].Role)
	require.Empty(t, entries[0].Before)
	require.Contains(t, string(entries[0].After), `"produce":["pay/*"]`)

	// Update it: 200, before and after in the audit entry.
	r = h.call(http.MethodPut, "/registry/apps/billing", regAdminToken, `{"produce":["pay/*","refund/*"],"consume":["pay/settle/*"]}`)
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	entries, _ = h.audit("?kind=app&object=billing&limit=1")
	require.Equal(t, "app.update", entries[0].Action)
	require.Contains(t, string(entries[0].Before), `"produce":["pay/*"]`)
	require.Contains(t, string(entries[0].After), `"produce":["pay/*","refund/*"]`)

	// Issue a token: it produces at once here, and on the replica within
	// the reload interval.
	tok := decodeIssued(t, h.call(http.MethodPost, "/registry/apps/billing/tokens", regAdminToken, ""))
	require.Equal(t, "billing", tok.App)
	require.Equal(t, http.StatusOK, h.produceStatus(path, tok.Token))
	took := eventually(t, func() bool { return h2.produceStatus(path, tok.Token) == http.StatusOK }, 3*time.Second, "the replica takes the new token")
	t.Logf("new token accepted by the second replica after %v", took)
	// The consume API reads the same live apps: the new token may
	// register a subscription on a topic its consume patterns allow.
	reg := h.do(http.MethodPut, "/v1/topics/"+path+"/subscriptions/billing-own", jsonHeader("Authorization", "Bearer "+tok.Token), []byte(`{}`))
	require.Equal(t, http.StatusCreated, reg.Status, reg.Raw)
	reg = h.do(http.MethodPut, "/v1/topics/other/ns/t/subscriptions/billing-own", jsonHeader("Authorization", "Bearer "+tok.Token), []byte(`{}`))
	require.Equal(t, http.StatusForbidden, reg.Status, "outside its consume patterns: %s", reg.Raw)
	entries, _ = h.audit("?object=billing&limit=1")
	require.Equal(t, "token.issue", entries[0].Action)
	require.Equal(t, tok.ID, entries[0].TokenID)
	r = h.call(http.MethodGet, "/registry/apps/billing", regViewerToken, "")
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	require.Contains(t, r.Raw, `"id":"`+tok.ID+`"`)
	require.NotContains(t, r.Raw, tok.Token)
	require.NotContains(t, r.Raw, proxy.HashToken(tok.Token))

	// Rotate with a grace period: both work until it ends.
	rot := decodeIssued(t, h.call(http.MethodPost, "/registry/apps/billing/tokens/"+tok.ID+"/rotate", regAdminToken, `{"graceSeconds":3600}`))
	require.Equal(t, tok.ID, rot.ReplacedID)
	require.NotNil(t, rot.ReplacedExpiresAt)
	require.WithinDuration(t, time.Now().Add(time.Hour), *rot.ReplacedExpiresAt, time.Minute)
	require.Equal(t, http.StatusOK, h.produceStatus(path, tok.Token), "in its grace period")
	require.Equal(t, http.StatusOK, h.produceStatus(path, rot.Token))
	eventually(t, func() bool { return h2.produceStatus(path, rot.Token) == http.StatusOK }, 3*time.Second, "the replica takes the rotated-in token")

	// Rotate without one: the old token is refused at once here and
	// within the reload interval on the replica.
	rot2 := decodeIssued(t, h.call(http.MethodPost, "/registry/apps/billing/tokens/"+rot.ID+"/rotate", regAdminToken, ""))
	require.Equal(t, http.StatusUnauthorized, h.produceStatus(path, rot.Token))
	took = eventually(t, func() bool { return h2.produceStatus(path, rot.Token) == http.StatusUnauthorized }, 3*time.Second, "the replica refuses the rotated token")
	t.Logf("rotated token refused by the second replica after %v", took)
	eventually(t, func() bool { return h2.produceStatus(path, rot2.Token) == http.StatusOK }, 3*time.Second, "the replica takes the new token")
	entries, _ = h.audit("?object=billing&limit=1")
	require.Equal(t, "token.rotate", entries[0].Action)
	require.Equal(t, rot2.ID, entries[0].TokenID)
	require.Equal(t, rot.ID, entries[0].ReplacedTokenID)

	// Revoke: refused on both.
	r = h.call(http.MethodDelete, "/registry/apps/billing/tokens/"+rot2.ID, regAdminToken, "")
	require.Equal(t, http.StatusNoContent, r.Status, r.Raw)
	require.Equal(t, http.StatusUnauthorized, h.produceStatus(path, rot2.Token))
	eventually(t, func() bool { return h2.produceStatus(path, rot2.Token) == http.StatusUnauthorized }, 3*time.Second, "the replica refuses the revoked token")
	entries, _ = h.audit("?object=billing&limit=1")
	require.Equal(t, "token.revoke", entries[0].Action)
	require.Equal(t, rot2.ID, entries[0].TokenID)
	r = h.call(http.MethodDelete, "/registry/apps/billing/tokens/"+rot2.ID, regAdminToken, "")
	require.Equal(t, http.StatusNotFound, r.Status, r.Raw)
	require.Equal(t, "TOKEN_NOT_FOUND", r.code())

	// A topic, with its tenant and namespace created on the broker.
	r = h.call(http.MethodPut, "/registry/topics/onboard/orders/created", regAdminToken, `{"description":"new orders","createNamespace":true}`)
	require.Equal(t, http.StatusCreated, r.Status, r.Raw)
	res, err := http.Get(h.broker.AdminURL() + "/admin/v2/namespaces/onboard")
	require.NoError(t, err)
	nsList, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode, string(nsList))
	require.Contains(t, string(nsList), `"onboard/orders"`)
	eventually(t, func() bool {
		return strings.Contains(h2.call(http.MethodGet, "/registry/topics", regViewerToken, "").Raw, `"persistent://onboard/orders/created"`)
	}, 3*time.Second, "the replica reads the same registry")
	r = h.call(http.MethodPut, "/registry/topics/onboard/orders/created", regAdminToken, `{"description":"orders","partitions":4}`)
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	entries, _ = h.audit("?kind=topic&object=onboard/orders/created")
	require.Len(t, entries, 2)
	require.Equal(t, []string{"topic.update", "topic.create"}, []string{entries[0].Action, entries[1].Action})
	require.Contains(t, string(entries[0].Before), `"new orders"`)
	require.Contains(t, string(entries[0].After), `"partitions":4`)

	// A subscription with a tag filter and expected consumers: the consume
	// API's registration, listed by both replicas.
	subPath := "/registry/subscriptions/" + path + "/settlement"
	r = h.call(http.MethodPut, subPath, regAdminToken, `{"tagFilter":"PAY || REFUND","expectedConsumers":["billing"]}`)
	require.Equal(t, http.StatusCreated, r.Status, r.Raw)
	r = h2.call(http.MethodGet, "/registry/subscriptions?topic="+path, regViewerToken, "")
	require.Contains(t, r.Raw, `"name":"settlement"`)
	require.Contains(t, r.Raw, `"expectedConsumers":["billing"]`)
	r = h.call(http.MethodPut, subPath, regAdminToken, `{"tagFilter":"PAY","type":"key_shared"}`)
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	entries, _ = h.audit("?object=" + path + "/settlement")
	require.Len(t, entries, 2)
	require.Equal(t, "subscription.update", entries[0].Action)
	require.Contains(t, string(entries[0].Before), `PAY || REFUND`)
	r = h.call(http.MethodDelete, subPath, regAdminToken, "")
	require.Equal(t, http.StatusNoContent, r.Status, r.Raw)
	r = h.call(http.MethodDelete, subPath, regAdminToken, "")
	require.Equal(t, http.StatusNotFound, r.Status, r.Raw)
	require.Equal(t, "SUBSCRIPTION_NOT_FOUND", r.code())
	entries, _ = h.audit("?kind=subscription&limit=1")
	require.Equal(t, "subscription.delete", entries[0].Action)

	// Delete the topic and the app.
	r = h.call(http.MethodDelete, "/registry/topics/onboard/orders/created", regAdminToken, "")
	require.Equal(t, http.StatusNoContent, r.Status, r.Raw)
	r = h.call(http.MethodDelete, "/registry/apps/billing", regAdminToken, "")
	require.Equal(t, http.StatusNoContent, r.Status, r.Raw)
	r = h.call(http.MethodGet, "/registry/apps/billing", regViewerToken, "")
	require.Equal(t, http.StatusNotFound, r.Status, r.Raw)
	entries, _ = h.audit("?object=billing&limit=1")
	require.Equal(t, "app.delete", entries[0].Action)
	require.NotEmpty(t, entries[0].Before)

	// The only admin cannot demote or delete itself.
	r = h.call(http.MethodPut, "/registry/apps/root", regAdminToken, `{"consoleRole":"viewer"}`)
	require.Equal(t, http.StatusConflict, r.Status, r.Raw)
	require.Equal(t, "LAST_ADMIN", r.code())
	r = h.call(http.MethodDelete, "/registry/apps/root", regAdminToken, "")
	require.Equal(t, "LAST_ADMIN", r.code())

	// No token, no hash anywhere in the log.
	all, _ := h.audit("?limit=1000")
	raw, err := json.Marshal(all)
	require.NoError(t, err)
	for _, tk := range []string{tok.Token, rot.Token, rot2.Token} {
		require.NotContains(t, string(raw), tk)
		require.NotContains(t, string(raw), proxy.HashToken(tk))
	}
}

// TestRegistryAuditPages: newest first, in pages, filtered by object;
// the operator reads it, a viewer may not.
func TestRegistryAuditPages(t *testing.T) {
	h := start(t, regApps)
	for _, name := range []string{"a1", "a2", "a3", "a4", "a5"} {
		r := h.call(http.MethodPut, "/registry/apps/"+name, regAdminToken, `{}`)
		require.Equal(t, http.StatusCreated, r.Status, r.Raw)
	}
	var got []string
	cursor := ""
	for range 10 {
		q := "?kind=app&limit=2"
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		page, next := h.audit(q)
		for _, e := range page {
			got = append(got, e.Object)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	require.Equal(t, []string{"a5", "a4", "a3", "a2", "a1"}, got)

	r := h.call(http.MethodGet, "/audit?object=a3", regOperatorToken, "")
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	require.Contains(t, r.Raw, `"object":"a3"`)
	require.NotContains(t, r.Raw, `"object":"a2"`)
	r = h.call(http.MethodGet, "/audit", regViewerToken, "")
	require.Equal(t, http.StatusForbidden, r.Status, r.Raw)
	require.Equal(t, "FORBIDDEN", r.code())
	r = h.call(http.MethodGet, "/audit?cursor=nope", regAdminToken, "")
	require.Equal(t, "INVALID_CURSOR", r.code())
	r = h.call(http.MethodGet, "/audit?kind=token", regAdminToken, "")
	require.Equal(t, "INVALID_PARAMETER", r.code())
}

// TestRegistryWritesRefused: every write refuses a viewer and an operator
// (403), no token (401), and bad input (400 with a stable code); none of
// them changes the registry or the audit log.
func TestRegistryWritesRefused(t *testing.T) {
	h := start(t, regApps)
	path, _ := newTopic(t)
	r := h.call(http.MethodPut, "/registry/apps/victim", regAdminToken, `{"produce":["*"]}`)
	require.Equal(t, http.StatusCreated, r.Status, r.Raw)
	// The token answer is not to be cached anywhere.
	req, err := http.NewRequest(http.MethodPost, h.base+"/console/v1/registry/apps/victim/tokens", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+regAdminToken)
	res, err := h.http.Do(req)
	require.NoError(t, err)
	var tok issued
	require.NoError(t, json.NewDecoder(res.Body).Decode(&tok))
	res.Body.Close()
	require.Equal(t, http.StatusCreated, res.StatusCode)
	require.Equal(t, "no-store", res.Header.Get("Cache-Control"))
	r = h.call(http.MethodPut, "/registry/subscriptions/"+path+"/keep", regAdminToken, `{}`)
	require.Equal(t, http.StatusCreated, r.Status, r.Raw)
	r = h.call(http.MethodPut, "/registry/topics/"+path, regAdminToken, `{}`)
	require.Equal(t, http.StatusCreated, r.Status, r.Raw)

	state := func() string {
		var b strings.Builder
		for _, p := range []string{"/registry/apps", "/registry/topics", "/registry/subscriptions"} {
			r := h.call(http.MethodGet, p, regViewerToken, "")
			require.Equal(t, http.StatusOK, r.Status, r.Raw)
			b.WriteString(r.Raw)
		}
		entries, _ := h.audit("?limit=1000")
		raw, _ := json.Marshal(entries)
		b.Write(raw)
		return b.String()
	}
	before := state()

	writes := []struct{ method, path, body string }{
		{http.MethodPut, "/registry/apps/victim", `{"produce":[]}`},
		{http.MethodPut, "/registry/apps/intruder", `{"produce":["*"],"consoleRole":"admin"}`},
		{http.MethodDelete, "/registry/apps/victim", ""},
		{http.MethodPost, "/registry/apps/victim/tokens", ""},
		{http.MethodPost, "/registry/apps/victim/tokens/" + tok.ID + "/rotate", ""},
		{http.MethodDelete, "/registry/apps/victim/tokens/" + tok.ID, ""},
		{http.MethodPut, "/registry/topics/" + path, `{"description":"x"}`},
		{http.MethodDelete, "/registry/topics/" + path, ""},
		{http.MethodPut, "/registry/subscriptions/" + path + "/other", `{}`},
		{http.MethodDelete, "/registry/subscriptions/" + path + "/keep", ""},
	}
	for _, w := range writes {
		for _, who := range []struct {
			token, code string
			status      int
		}{
			{regViewerToken, "FORBIDDEN", http.StatusForbidden},
			{regOperatorToken, "FORBIDDEN", http.StatusForbidden},
			{regShopToken, "FORBIDDEN", http.StatusForbidden}, // no console permission
			{"", "UNAUTHENTICATED", http.StatusUnauthorized},
			{"not-a-token", "UNAUTHENTICATED", http.StatusUnauthorized},
		} {
			r := h.call(w.method, w.path, who.token, w.body)
			require.Equal(t, who.status, r.Status, "%s %s as %q: %s", w.method, w.path, who.token, r.Raw)
			require.Equal(t, who.code, r.code(), "%s %s", w.method, w.path)
		}
	}

	bad := []struct{ method, path, body, code string }{
		{http.MethodPut, "/registry/apps/bad%20name", `{}`, "INVALID_APP_NAME"},
		{http.MethodPut, "/registry/apps/x", `{"produce":["pay/set tle/*"]}`, "INVALID_PERMISSION"},
		{http.MethodPut, "/registry/apps/x", `{"consume":["pay"]}`, "INVALID_PERMISSION"},
		{http.MethodPut, "/registry/apps/x", `{"produce":["*"],"token":"mine"}`, "INVALID_BODY"},
		{http.MethodPut, "/registry/apps/x", `{"consoleRole":"root"}`, "INVALID_BODY"},
		{http.MethodPut, "/registry/apps/x", `{"rateLimit":{"burst":5}}`, "INVALID_BODY"},
		{http.MethodPut, "/registry/apps/x", `[`, "INVALID_BODY"},
		{http.MethodPost, "/registry/apps/victim/tokens", `{"token":"chosen"}`, "INVALID_BODY"},
		{http.MethodPost, "/registry/apps/victim/tokens/" + tok.ID + "/rotate", `{"graceSeconds":-1}`, "INVALID_BODY"},
		{http.MethodPost, "/registry/apps/victim/tokens/" + tok.ID + "/rotate", `{"graceSeconds":999999999}`, "INVALID_BODY"},
		{http.MethodPost, "/registry/apps/victim/tokens/nope/rotate", ``, "TOKEN_NOT_FOUND"},
		{http.MethodPost, "/registry/apps/ghost/tokens", ``, "APP_NOT_FOUND"},
		{http.MethodPut, "/registry/topics/pay/settle/a*b", `{}`, "INVALID_TOPIC"},
		{http.MethodPut, "/registry/topics/" + path, `{"partitions":-1}`, "INVALID_BODY"},
		{http.MethodPut, "/registry/topics/" + path, `{"deadLetterTopic":"a/b"}`, "INVALID_TOPIC"},
		{http.MethodPut, "/registry/subscriptions/" + path + "/s1", `{"tagFilter":"A ||"}`, "INVALID_TAG_FILTER"},
		{http.MethodPut, "/registry/subscriptions/" + path + "/s1", `{"type":"exclusive"}`, "INVALID_SUBSCRIPTION"},
		{http.MethodPut, "/registry/subscriptions/" + path + "/s1", `{"expectedConsumers":["no way"]}`, "INVALID_APP_NAME"},
		{http.MethodPut, "/registry/subscriptions/" + path + "/s%20", `{}`, "INVALID_SUBSCRIPTION"},
		{http.MethodDelete, "/registry/topics/pay/settle/never", ``, "TOPIC_NOT_REGISTERED"},
	}
	for _, b := range bad {
		r := h.call(b.method, b.path, regAdminToken, b.body)
		require.Equal(t, b.code, r.code(), "%s %s %s: %s", b.method, b.path, b.body, r.Raw)
		require.GreaterOrEqual(t, r.Status, 400)
		require.Less(t, r.Status, 500)
	}
	require.Equal(t, before, state(), "refused writes changed nothing")
	require.Equal(t, http.StatusOK, h.produceStatus(path, tok.Token), "the victim's token still works")
}

// TestRegistryEmbeddedRestart: in the embedded mode (the default run) the
// registry survives a clean restart: the app created through the console
// and its token still work, and the configuration is not written again.
func TestRegistryEmbeddedRestart(t *testing.T) {
	dir := t.TempDir()
	h := startEmbedded(t, dir, regApps)
	path, _ := newTopic(t)
	r := h.call(http.MethodPut, "/registry/apps/kept", regAdminToken, `{"produce":["pay/*"]}`)
	require.Equal(t, http.StatusCreated, r.Status, r.Raw)
	tok := decodeIssued(t, h.call(http.MethodPost, "/registry/apps/kept/tokens", regAdminToken, ""))
	r = h.call(http.MethodDelete, "/registry/apps/shop", regAdminToken, "")
	require.Equal(t, http.StatusNoContent, r.Status, r.Raw)
	require.Equal(t, http.StatusOK, h.produceStatus(path, tok.Token))
	h.stoppedByTest = true
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	require.NoError(t, h.app.Stop(ctx))
	cancel()

	h2 := startEmbedded(t, dir, regApps)
	require.Equal(t, http.StatusOK, h2.produceStatus(path, tok.Token), "the token survived the restart")
	require.Equal(t, http.StatusUnauthorized, h2.produceStatus(path, regShopToken),
		"the deleted configured app stays deleted: the configuration is only a bootstrap")
	r = h2.call(http.MethodGet, "/audit?object=kept", regAdminToken, "")
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	require.Contains(t, r.Raw, `"action":"token.issue"`)
}
