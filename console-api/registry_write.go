package consoleapi

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/config"
	"github.com/pulsar-sidecar/pulsar-sidecar/tagfilter"
)

// Registry writes (admin only). The registry must be a *RedisRegistry;
// over a StaticRegistry they answer 501 REGISTRY_READ_ONLY.
var registryWriteRoutes = []Route{
	{Method: http.MethodPut, Path: "/registry/apps/:name", handler: (*API).putApp},
	{Method: http.MethodDelete, Path: "/registry/apps/:name", handler: (*API).deleteApp},
	{Method: http.MethodPost, Path: "/registry/apps/:name/tokens", handler: (*API).issueToken},
	{Method: http.MethodPost, Path: "/registry/apps/:name/tokens/:id/rotate", handler: (*API).rotateToken},
	{Method: http.MethodDelete, Path: "/registry/apps/:name/tokens/:id", handler: (*API).revokeToken},
	{Method: http.MethodPut, Path: "/registry/topics/:tenant/:namespace/:topic", handler: (*API).putTopic},
	{Method: http.MethodDelete, Path: "/registry/topics/:tenant/:namespace/:topic", handler: (*API).deleteTopic},
	{Method: http.MethodPut, Path: "/registry/subscriptions/:tenant/:namespace/:topic/:subscription", handler: (*API).putSubscription},
	{Method: http.MethodDelete, Path: "/registry/subscriptions/:tenant/:namespace/:topic/:subscription", handler: (*API).deleteSubscription},
	{Method: http.MethodGet, Path: "/audit", Params: []string{"kind", "object", "limit", "cursor"}, handler: (*API).listAudit},
}

func init() { routes = append(routes, registryWriteRoutes...) }

// Limits of registry writes.
const (
	maxRegistryBody  = 64 << 10
	MaxTokensPerApp  = 10
	MaxPatterns      = 100
	MaxTokenGrace    = 7 * 24 * time.Hour
	maxDescription   = 1000
	maxExpectedApps  = 100
	tokenRandomBytes = 32
)

var (
	appNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
	subNameRE = regexp.MustCompile(`^[A-Za-z0-9_=:.-]{1,128}$`)
	tokenIDRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
)

func (a *API) editor() (*RedisRegistry, error) {
	if r, ok := a.opts.Registry.(*RedisRegistry); ok {
		return r, nil
	}
	return nil, errorf(http.StatusNotImplemented, CodeRegistryReadOnly, "this console's registry is the configuration file: it cannot be changed here")
}

// decodeStrict reads one JSON object with no unknown field; an empty body
// is an empty object.
func decodeStrict(body []byte, v any, shape string) error {
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errorf(http.StatusBadRequest, CodeInvalidBody, "the body must be %s: %s", shape, truncate(err.Error(), 160))
	}
	if dec.More() {
		return errorf(http.StatusBadRequest, CodeInvalidBody, "the body holds more than one JSON value")
	}
	return nil
}

func readBody(c *gin.Context) ([]byte, error) {
	body, err := readLimited(c.Request, maxRegistryBody)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, CodeInvalidBody, "the body is unreadable or over %d bytes", maxRegistryBody)
	}
	return body, nil
}

// AppSpec is the body of PUT /registry/apps/{name}.
type AppSpec struct {
	Description string     `json:"description"`
	Produce     []string   `json:"produce"`
	Consume     []string   `json:"consume"`
	ConsoleRole string     `json:"consoleRole"` // "" (no console), viewer, operator, admin
	RateLimit   *RateLimit `json:"rateLimit"`
}

const appShape = `{"description":"...","produce":["tenant/ns/*"],"consume":[...],"consoleRole":"viewer|operator|admin","rateLimit":{"messagesPerSecond":100,"burst":200}}`

// ParseAppSpec checks an app's name and PUT body: a valid name, topic
// patterns as the configuration takes them, a known console role and a
// sane rate limit. The App has no tokens.
func ParseAppSpec(name string, body []byte) (App, error) {
	if !appNameRE.MatchString(name) {
		return App{}, errorf(http.StatusBadRequest, CodeInvalidAppName, "app name %q: want 1-64 of A-Z a-z 0-9 _ . -", truncate(name, 70))
	}
	var s AppSpec
	if err := decodeStrict(body, &s, appShape); err != nil {
		return App{}, err
	}
	if len(s.Description) > maxDescription {
		return App{}, errorf(http.StatusBadRequest, CodeInvalidBody, "description: at most %d bytes", maxDescription)
	}
	if len(s.Produce) > MaxPatterns || len(s.Consume) > MaxPatterns {
		return App{}, errorf(http.StatusBadRequest, CodeInvalidPermission, "at most %d patterns per action", MaxPatterns)
	}
	for _, list := range [][]string{s.Produce, s.Consume} {
		for _, p := range list {
			if err := config.ValidTopicPattern(p); err != nil {
				return App{}, errorf(http.StatusBadRequest, CodeInvalidPermission, "%s", truncate(err.Error(), 200))
			}
		}
	}
	app := App{Name: name, Description: s.Description,
		Permissions: Permissions{Produce: nonNil(slices.Compact(slices.Sorted(slices.Values(s.Produce)))),
			Consume: nonNil(slices.Compact(slices.Sorted(slices.Values(s.Consume))))}}
	if s.ConsoleRole != "" {
		r, ok := ParseRole(s.ConsoleRole)
		if !ok {
			return App{}, errorf(http.StatusBadRequest, CodeInvalidBody, "consoleRole %q: want viewer, operator or admin (or nothing: no console)", truncate(s.ConsoleRole, 20))
		}
		app.ConsoleRole, app.Permissions.Console = r, true
	}
	if rl := s.RateLimit; rl != nil {
		switch {
		case rl.MessagesPerSecond < 0 || rl.MessagesPerSecond > 1e9 || rl.Burst < 0 || rl.Burst > 1e9:
			return App{}, errorf(http.StatusBadRequest, CodeInvalidBody, "rateLimit: messagesPerSecond and burst must be from 0 to 1e9")
		case rl.MessagesPerSecond == 0 && rl.Burst != 0:
			return App{}, errorf(http.StatusBadRequest, CodeInvalidBody, "rateLimit.burst is set but messagesPerSecond is 0 (no limit)")
		case rl.MessagesPerSecond > 0:
			app.RateLimit = &RateLimit{MessagesPerSecond: rl.MessagesPerSecond, Burst: rl.Burst}
		}
	}
	return app, nil
}

// TopicSpec is the body of PUT /registry/topics/{tenant}/{namespace}/{topic}.
type TopicSpec struct {
	Description     string `json:"description"`
	Partitions      int    `json:"partitions"`
	DeadLetterTopic string `json:"deadLetterTopic"`
	// CreateNamespace asks the broker to create the topic's tenant and
	// namespace if they do not exist.
	CreateNamespace bool `json:"createNamespace"`
}

const topicShape = `{"description":"...","partitions":0,"deadLetterTopic":"tenant/ns/topic","createNamespace":false}`

// ParseTopicSpec checks a topic's path and PUT body.
func ParseTopicSpec(tenant, namespace, topic string, body []byte) (Topic, bool, error) {
	name, err := NormalizeTopic(tenant + "/" + namespace + "/" + topic)
	if err != nil {
		return Topic{}, false, err
	}
	for _, seg := range []string{tenant, namespace, topic} {
		if err := config.ValidTopicPattern(tenant + "/" + namespace + "/" + seg); err != nil || seg == "*" {
			return Topic{}, false, errorf(http.StatusBadRequest, CodeInvalidTopic, "topic %q: want letters, digits or _ = : . - in each segment", truncate(name, 100))
		}
	}
	var s TopicSpec
	if err := decodeStrict(body, &s, topicShape); err != nil {
		return Topic{}, false, err
	}
	if len(s.Description) > maxDescription {
		return Topic{}, false, errorf(http.StatusBadRequest, CodeInvalidBody, "description: at most %d bytes", maxDescription)
	}
	if s.Partitions < 0 || s.Partitions > 1024 {
		return Topic{}, false, errorf(http.StatusBadRequest, CodeInvalidBody, "partitions: from 0 (not partitioned) to 1024")
	}
	t := Topic{Name: name, Description: s.Description, Partitions: s.Partitions}
	if s.DeadLetterTopic != "" {
		if t.DeadLetterTopic, err = NormalizeTopic(s.DeadLetterTopic); err != nil {
			return Topic{}, false, err
		}
	}
	return t, s.CreateNamespace, nil
}

// SubscriptionBody is the body of PUT /registry/subscriptions/{tenant}/{namespace}/{topic}/{subscription}.
type SubscriptionBody struct {
	TagFilter         string   `json:"tagFilter"`
	Type              string   `json:"type"` // shared (default) or key_shared
	ExpectedConsumers []string `json:"expectedConsumers"`
	SubscriptionOptions
}

const subscriptionShape = `{"tagFilter":"A || B","type":"shared|key_shared","expectedConsumers":["app"],"maxDeliveries":16,"deadLetterTopic":"...","initialPosition":"latest|earliest"}`

// ParseSubscriptionSpec checks a subscription's path and PUT body: a
// persistent topic, a valid name, a tag filter that compiles, known
// consumer app names.
func ParseSubscriptionSpec(tenant, namespace, topic, name string, body []byte) (Subscription, SubscriptionOptions, error) {
	var none SubscriptionOptions
	full, err := NormalizeTopic(tenant + "/" + namespace + "/" + topic)
	if err != nil {
		return Subscription{}, none, err
	}
	if !subNameRE.MatchString(name) {
		return Subscription{}, none, errorf(http.StatusBadRequest, CodeInvalidSubscription, "subscription %q: want 1-128 of A-Z a-z 0-9 _ = : . -", truncate(name, 130))
	}
	var s SubscriptionBody
	if err := decodeStrict(body, &s, subscriptionShape); err != nil {
		return Subscription{}, none, err
	}
	f, err := tagfilter.Compile(s.TagFilter)
	if err != nil {
		return Subscription{}, none, errorf(http.StatusBadRequest, CodeInvalidTagFilter, "tagFilter %q: %s", truncate(s.TagFilter, 100), truncate(err.Error(), 160))
	}
	switch strings.ToLower(s.Type) {
	case "", "shared":
		s.Type = "shared"
	case "key_shared":
		s.Type = "key_shared"
	default:
		return Subscription{}, none, errorf(http.StatusBadRequest, CodeInvalidSubscription, "type %q: want shared or key_shared", truncate(s.Type, 20))
	}
	if len(s.ExpectedConsumers) > maxExpectedApps {
		return Subscription{}, none, errorf(http.StatusBadRequest, CodeInvalidSubscription, "expectedConsumers: at most %d", maxExpectedApps)
	}
	for _, c := range s.ExpectedConsumers {
		if !appNameRE.MatchString(c) {
			return Subscription{}, none, errorf(http.StatusBadRequest, CodeInvalidAppName, "expectedConsumers: %q is not an app name", truncate(c, 70))
		}
	}
	o := s.SubscriptionOptions
	if o.MaxDeliveries < 0 || o.MaxDeliveries > 1000 {
		return Subscription{}, none, errorf(http.StatusBadRequest, CodeInvalidSubscription, "maxDeliveries: from 1 to 1000 (0: the default)")
	}
	switch o.InitialPosition {
	case "", "latest", "earliest":
	default:
		return Subscription{}, none, errorf(http.StatusBadRequest, CodeInvalidSubscription, "initialPosition: want latest or earliest")
	}
	if d := o.DeadLetterTopic; d != "" {
		if strings.Contains(d, "/") {
			if _, err := NormalizeTopic(d); err != nil {
				return Subscription{}, none, err
			}
		} else if !subNameRE.MatchString(d) {
			return Subscription{}, none, errorf(http.StatusBadRequest, CodeInvalidTopic, "deadLetterTopic %q: want topic or tenant/namespace/topic", truncate(d, 100))
		}
	}
	return Subscription{Topic: full, Name: name, TagFilter: f.String(), Type: s.Type,
		ExpectedConsumers: nonNil(slices.Compact(slices.Sorted(slices.Values(s.ExpectedConsumers))))}, o, nil
}

// ParseRotateBody reads {"graceSeconds":n}: how long the replaced token
// keeps working (0, the default: it is revoked at once; at most 7 days).
func ParseRotateBody(body []byte) (time.Duration, error) {
	var s struct {
		GraceSeconds int64 `json:"graceSeconds"`
	}
	if err := decodeStrict(body, &s, `{"graceSeconds":0}`); err != nil {
		return 0, err
	}
	if s.GraceSeconds < 0 || s.GraceSeconds > int64(MaxTokenGrace/time.Second) {
		return 0, errorf(http.StatusBadRequest, CodeInvalidBody, "graceSeconds: from 0 (revoke at once) to %d", int64(MaxTokenGrace/time.Second))
	}
	return time.Duration(s.GraceSeconds) * time.Second, nil
}

// IssuedToken is the answer to issuing or rotating a token: the only time
// the token is shown.
type IssuedToken struct {
	App       string    `json:"app"`
	ID        string    `json:"id"`
	Token     string    `json:"token"`
	CreatedAt time.Time `json:"createdAt"`
	// ReplacedID and ReplacedExpiresAt describe the rotated token: it
	// stops working at ReplacedExpiresAt (now, without a grace period).
	ReplacedID        string     `json:"replacedId,omitempty"`
	ReplacedExpiresAt *time.Time `json:"replacedExpiresAt,omitempty"`
}

// newToken returns a fresh bearer token ("psc_" and 43 base64url
// characters of 32 random bytes) and its hex SHA-256, the form the data
// plane checks (proxy.HashToken).
func newToken() (token, sha string) {
	var b [tokenRandomBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	token = "psc_" + base64.RawURLEncoding.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(token))
	return token, hex.EncodeToString(sum[:])
}

func (a *API) writer(c *gin.Context) (*RedisRegistry, Principal, Role, error) {
	if err := a.require(c, RoleAdmin); err != nil {
		return nil, Principal{}, "", err
	}
	ed, err := a.editor()
	if err != nil {
		return nil, Principal{}, "", err
	}
	p, _ := PrincipalFrom(c)
	return ed, p, a.roleOf(c), nil
}

func appIndex(doc *RegistryDoc, name string) int {
	return slices.IndexFunc(doc.Apps, func(a StoredApp) bool { return a.Name == name })
}

func appView(a StoredApp) json.RawMessage {
	d := RegistryDoc{Apps: []StoredApp{a}}
	normalizeDoc(&d)
	return mustJSON(d.Apps[0].App)
}

// admins counts the apps with the console admin role.
func admins(doc *RegistryDoc) int {
	n := 0
	for _, a := range doc.Apps {
		if a.Permissions.Console && a.ConsoleRole == RoleAdmin {
			n++
		}
	}
	return n
}

func lastAdmin(before, after int) error {
	if before > 0 && after == 0 {
		return errorf(http.StatusConflict, CodeLastAdmin, "this change would leave no app with the console admin role: nobody could change the registry afterwards")
	}
	return nil
}

// PUT /registry/apps/:name (admin): create (201) or update (200) an app;
// its tokens are kept.
func (a *API) putApp(c *gin.Context) error {
	ed, p, role, err := a.writer(c)
	if err != nil {
		return err
	}
	body, err := readBody(c)
	if err != nil {
		return err
	}
	app, err := ParseAppSpec(c.Param("name"), body)
	if err != nil {
		return err
	}
	created := false
	var out App
	err = ed.mutate(c.Request.Context(), func(doc *RegistryDoc) (*AuditEntry, error) {
		e := &AuditEntry{Actor: p.App, Role: role, Kind: "app", Object: app.Name}
		before := admins(doc)
		i := appIndex(doc, app.Name)
		if i < 0 {
			created = true
			e.Action = "app.create"
			doc.Apps = append(doc.Apps, StoredApp{App: app, Secrets: []StoredToken{}})
			i = len(doc.Apps) - 1
		} else {
			created = false
			e.Action = "app.update"
			e.Before = appView(doc.Apps[i])
			doc.Apps[i].App = app
		}
		if err := lastAdmin(before, admins(doc)); err != nil {
			return nil, err
		}
		e.After = appView(doc.Apps[i])
		_ = json.Unmarshal(e.After, &out)
		return e, nil
	})
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	c.JSON(status, out)
	return nil
}

// DELETE /registry/apps/:name (admin): the app and every token of it.
func (a *API) deleteApp(c *gin.Context) error {
	ed, p, role, err := a.writer(c)
	if err != nil {
		return err
	}
	name := c.Param("name")
	err = ed.mutate(c.Request.Context(), func(doc *RegistryDoc) (*AuditEntry, error) {
		i := appIndex(doc, name)
		if i < 0 {
			return nil, errorf(http.StatusNotFound, CodeAppNotFound, "no app is named %q", truncate(name, 64))
		}
		before := admins(doc)
		e := &AuditEntry{Actor: p.App, Role: role, Action: "app.delete", Kind: "app", Object: name, Before: appView(doc.Apps[i])}
		doc.Apps = slices.Delete(doc.Apps, i, i+1)
		if err := lastAdmin(before, admins(doc)); err != nil {
			return nil, err
		}
		return e, nil
	})
	if err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

// POST /registry/apps/:name/tokens (admin): a new token, shown once.
func (a *API) issueToken(c *gin.Context) error {
	ed, p, role, err := a.writer(c)
	if err != nil {
		return err
	}
	if err := decodeStrictBody(c, `{}`); err != nil {
		return err
	}
	name := c.Param("name")
	token, sha := newToken()
	now := ed.opts.Now().UTC()
	id := newTokenID()
	err = ed.mutate(c.Request.Context(), func(doc *RegistryDoc) (*AuditEntry, error) {
		i := appIndex(doc, name)
		if i < 0 {
			return nil, errorf(http.StatusNotFound, CodeAppNotFound, "no app is named %q", truncate(name, 64))
		}
		if len(doc.Apps[i].Secrets) >= MaxTokensPerApp {
			return nil, errorf(http.StatusConflict, CodeTooManyTokens, "app %q has %d tokens, the most it may have: revoke one first", name, MaxTokensPerApp)
		}
		e := &AuditEntry{Actor: p.App, Role: role, Action: "token.issue", Kind: "app", Object: name, TokenID: id, Before: appView(doc.Apps[i])}
		doc.Apps[i].Secrets = append(doc.Apps[i].Secrets, StoredToken{ID: id, SHA256: sha, CreatedAt: now})
		e.After = appView(doc.Apps[i])
		return e, nil
	})
	if err != nil {
		return err
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, IssuedToken{App: name, ID: id, Token: token, CreatedAt: now})
	return nil
}

// decodeStrictBody checks that a body that should be empty (or {}) is.
func decodeStrictBody(c *gin.Context, shape string) error {
	body, err := readBody(c)
	if err != nil {
		return err
	}
	var v struct{}
	return decodeStrict(body, &v, shape)
}

// POST /registry/apps/:name/tokens/:id/rotate (admin): a new token in
// place of token id, which stops working at once or after graceSeconds.
func (a *API) rotateToken(c *gin.Context) error {
	ed, p, role, err := a.writer(c)
	if err != nil {
		return err
	}
	body, err := readBody(c)
	if err != nil {
		return err
	}
	grace, err := ParseRotateBody(body)
	if err != nil {
		return err
	}
	name, old := c.Param("name"), c.Param("id")
	token, sha := newToken()
	now := ed.opts.Now().UTC()
	id := newTokenID()
	ans := IssuedToken{App: name, ID: id, Token: token, CreatedAt: now, ReplacedID: old}
	err = ed.mutate(c.Request.Context(), func(doc *RegistryDoc) (*AuditEntry, error) {
		i := appIndex(doc, name)
		if i < 0 {
			return nil, errorf(http.StatusNotFound, CodeAppNotFound, "no app is named %q", truncate(name, 64))
		}
		app := &doc.Apps[i]
		j := slices.IndexFunc(app.Secrets, func(t StoredToken) bool { return t.ID == old })
		if j < 0 || !tokenIDRE.MatchString(old) {
			return nil, errorf(http.StatusNotFound, CodeTokenNotFound, "app %q has no token %q", name, truncate(old, 64))
		}
		e := &AuditEntry{Actor: p.App, Role: role, Action: "token.rotate", Kind: "app", Object: name, TokenID: id,
			ReplacedTokenID: old, Before: appView(*app)}
		if grace > 0 {
			exp := now.Add(grace)
			app.Secrets[j].ExpiresAt = &exp
			ans.ReplacedExpiresAt = &exp
		} else {
			app.Secrets = slices.Delete(app.Secrets, j, j+1)
			ans.ReplacedExpiresAt = &now
		}
		app.Secrets = append(app.Secrets, StoredToken{ID: id, SHA256: sha, CreatedAt: now})
		e.After = appView(*app)
		return e, nil
	})
	if err != nil {
		return err
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, ans)
	return nil
}

// DELETE /registry/apps/:name/tokens/:id (admin): the token stops working
// (on every replica within the reload interval).
func (a *API) revokeToken(c *gin.Context) error {
	ed, p, role, err := a.writer(c)
	if err != nil {
		return err
	}
	name, id := c.Param("name"), c.Param("id")
	err = ed.mutate(c.Request.Context(), func(doc *RegistryDoc) (*AuditEntry, error) {
		i := appIndex(doc, name)
		if i < 0 {
			return nil, errorf(http.StatusNotFound, CodeAppNotFound, "no app is named %q", truncate(name, 64))
		}
		app := &doc.Apps[i]
		j := slices.IndexFunc(app.Secrets, func(t StoredToken) bool { return t.ID == id })
		if j < 0 {
			return nil, errorf(http.StatusNotFound, CodeTokenNotFound, "app %q has no token %q", name, truncate(id, 64))
		}
		e := &AuditEntry{Actor: p.App, Role: role, Action: "token.revoke", Kind: "app", Object: name, TokenID: id, Before: appView(*app)}
		app.Secrets = slices.Delete(app.Secrets, j, j+1)
		e.After = appView(*app)
		return e, nil
	})
	if err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

// PUT /registry/topics/:tenant/:namespace/:topic (admin): register (201)
// or update (200) a topic; with createNamespace the broker creates its
// tenant and namespace first.
func (a *API) putTopic(c *gin.Context) error {
	ed, p, role, err := a.writer(c)
	if err != nil {
		return err
	}
	body, err := readBody(c)
	if err != nil {
		return err
	}
	t, createNS, err := ParseTopicSpec(c.Param("tenant"), c.Param("namespace"), c.Param("topic"), body)
	if err != nil {
		return err
	}
	if createNS {
		if ed.opts.Namespaces == nil {
			return errorf(http.StatusServiceUnavailable, CodeBrokerUnavailable, "no broker admin URL is configured: the namespace cannot be created here")
		}
		ctx, cancel := a.ctx(c)
		err := ed.opts.Namespaces.EnsureNamespace(ctx, c.Param("tenant"), c.Param("namespace"))
		cancel()
		if err != nil {
			return &Error{Status: http.StatusServiceUnavailable, Code: CodeBrokerUnavailable,
				Message: "the broker did not create the tenant or namespace; nothing was registered: retry", Err: err}
		}
	}
	created := false
	err = ed.mutate(c.Request.Context(), func(doc *RegistryDoc) (*AuditEntry, error) {
		e := &AuditEntry{Actor: p.App, Role: role, Kind: "topic", Object: t.Name, After: mustJSON(t)}
		i := slices.IndexFunc(doc.Topics, func(x Topic) bool { return x.Name == t.Name })
		if i < 0 {
			created = true
			e.Action = "topic.create"
			doc.Topics = append(doc.Topics, t)
		} else {
			created = false
			e.Action = "topic.update"
			e.Before = mustJSON(doc.Topics[i])
			doc.Topics[i] = t
		}
		return e, nil
	})
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	c.JSON(status, t)
	return nil
}

// DELETE /registry/topics/:tenant/:namespace/:topic (admin): the topic
// leaves the registry; the broker's topic and its messages stay.
func (a *API) deleteTopic(c *gin.Context) error {
	ed, p, role, err := a.writer(c)
	if err != nil {
		return err
	}
	name, err := NormalizeTopic(c.Param("tenant") + "/" + c.Param("namespace") + "/" + c.Param("topic"))
	if err != nil {
		return err
	}
	err = ed.mutate(c.Request.Context(), func(doc *RegistryDoc) (*AuditEntry, error) {
		i := slices.IndexFunc(doc.Topics, func(x Topic) bool { return x.Name == name })
		if i < 0 {
			return nil, errorf(http.StatusNotFound, CodeTopicNotRegistered, "topic %s is not registered", name)
		}
		e := &AuditEntry{Actor: p.App, Role: role, Action: "topic.delete", Kind: "topic", Object: name, Before: mustJSON(doc.Topics[i])}
		doc.Topics = slices.Delete(doc.Topics, i, i+1)
		return e, nil
	})
	if err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

func (r *RedisRegistry) subscriptionWriter() (SubscriptionWriter, error) {
	if r.opts.SubscriptionWriter == nil {
		return nil, errorf(http.StatusNotImplemented, CodeRegistryReadOnly, "no consume service runs on this sidecar: subscriptions cannot be registered here")
	}
	return r.opts.SubscriptionWriter, nil
}

// subscriptionWriteError answers the SubscriptionWriter's errors.
func subscriptionWriteError(err error) error {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, ErrSubscriptionNotFound):
		return &Error{Status: http.StatusNotFound, Code: CodeSubscriptionNotFound, Message: "no such subscription is registered", Err: err}
	}
	return registryError(err)
}

// PUT /registry/subscriptions/:tenant/:namespace/:topic/:subscription
// (admin): register (201) or change (200) a subscription through the
// consume API's registry.
func (a *API) putSubscription(c *gin.Context) error {
	ed, p, role, err := a.writer(c)
	if err != nil {
		return err
	}
	body, err := readBody(c)
	if err != nil {
		return err
	}
	s, o, err := ParseSubscriptionSpec(c.Param("tenant"), c.Param("namespace"), c.Param("topic"), c.Param("subscription"), body)
	if err != nil {
		return err
	}
	w, err := ed.subscriptionWriter()
	if err != nil {
		return err
	}
	ctx, cancel := a.ctx(c)
	defer cancel()
	after, before, err := w.PutSubscription(ctx, p.App, s, o)
	if err != nil {
		return subscriptionWriteError(err)
	}
	e := &AuditEntry{Actor: p.App, Role: role, Action: "subscription.create", Kind: "subscription",
		Object: s.Topic + "/" + s.Name, After: mustJSON(after)}
	status := http.StatusCreated
	if before != nil {
		e.Action, e.Before, status = "subscription.update", mustJSON(*before), http.StatusOK
	}
	if err := ed.appendAudit(ctx, e); err != nil {
		return registryError(fmt.Errorf("the subscription was registered but its audit entry failed: %w", err))
	}
	c.JSON(status, after)
	return nil
}

// DELETE /registry/subscriptions/:tenant/:namespace/:topic/:subscription
// (admin): the registration goes; the Pulsar subscription (cursor and
// backlog) stays, as with the consume API's DELETE.
func (a *API) deleteSubscription(c *gin.Context) error {
	ed, p, role, err := a.writer(c)
	if err != nil {
		return err
	}
	topic, err := NormalizeTopic(c.Param("tenant") + "/" + c.Param("namespace") + "/" + c.Param("topic"))
	if err != nil {
		return err
	}
	name := c.Param("subscription")
	if !subNameRE.MatchString(name) {
		return errorf(http.StatusBadRequest, CodeInvalidSubscription, "subscription %q: want 1-128 of A-Z a-z 0-9 _ = : . -", truncate(name, 130))
	}
	w, err := ed.subscriptionWriter()
	if err != nil {
		return err
	}
	ctx, cancel := a.ctx(c)
	defer cancel()
	before, err := w.DeleteSubscription(ctx, topic, name)
	if err != nil {
		return subscriptionWriteError(err)
	}
	e := &AuditEntry{Actor: p.App, Role: role, Action: "subscription.delete", Kind: "subscription",
		Object: topic + "/" + name, Before: mustJSON(before)}
	if err := ed.appendAudit(ctx, e); err != nil {
		return registryError(fmt.Errorf("the subscription was removed but its audit entry failed: %w", err))
	}
	c.Status(http.StatusNoContent)
	return nil
}

// readLimited reads a request body of at most n bytes.
func readLimited(r *http.Request, n int64) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, n+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > n {
		return nil, errors.New("body too large")
	}
	return body, nil
}
