package consoleapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"
)

// AuditEntry is one change of the registry: who made it (the console
// principal), when, what, and the object before and after. Tokens and
// their hashes are never in it: a token change names the token's id.
type AuditEntry struct {
	ID     string    `json:"id"` // its number: 1, 2, ... in the order of writing
	Time   time.Time `json:"time"`
	Actor  string    `json:"actor"` // the app that made the change; "config" for the bootstrap, "" in the open dev mode
	Role   Role      `json:"role,omitempty"`
	Action string    `json:"action"` // app.create, app.update, app.delete, token.issue, token.rotate, token.revoke, topic.*, subscription.*, registry.bootstrap
	Kind   string    `json:"kind"`   // app, topic, subscription, registry
	Object string    `json:"object"` // the app's name, the topic's full name, topic/subscription
	// TokenID names the token issued, rotated (the new one) or revoked.
	TokenID string `json:"tokenId,omitempty"`
	// ReplacedTokenID is the token a rotation replaced.
	ReplacedTokenID string          `json:"replacedTokenId,omitempty"`
	Before          json.RawMessage `json:"before,omitempty"`
	After           json.RawMessage `json:"after,omitempty"`
}

// AuditQuery selects audit entries, newest first.
type AuditQuery struct {
	Kind   string // "" any
	Object string // "" any
	Limit  int
	Cursor string // the last id of the previous page
}

var auditCursorRE = regexp.MustCompile(`^[0-9]{1,19}$`)

// Audit lists audit entries newest first; next is the cursor of the next
// page, "" at the end. Entries are numbered 1, 2, ... in the order they
// were written, and the list holds them newest first, so the entry after
// cursor c is found at index head-c+1 without a scan.
func (r *RedisRegistry) Audit(ctx context.Context, q AuditQuery) ([]AuditEntry, string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	out := []AuditEntry{}
	var cursor int64 = -1
	var start int64
	if q.Cursor != "" {
		c, err := strconv.ParseInt(q.Cursor, 10, 64)
		if err != nil {
			return nil, "", err
		}
		cursor = c
		head, err := r.opts.Client.Get(ctx, r.auditSeqKey()).Int64()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, "", err
		}
		start = max(0, head-c+1)
	}
	const chunk = 256
	for {
		items, err := r.opts.Client.LRange(ctx, r.auditKey(), start, start+chunk-1).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, "", err
		}
		start += int64(len(items))
		for _, it := range items {
			seqS, body, ok := strings.Cut(it, "|")
			seq, err := strconv.ParseInt(seqS, 10, 64)
			if !ok || err != nil || (cursor >= 0 && seq >= cursor) {
				continue
			}
			var e AuditEntry
			if json.Unmarshal([]byte(body), &e) != nil {
				continue
			}
			e.ID = seqS
			if (q.Kind != "" && e.Kind != q.Kind) || (q.Object != "" && e.Object != q.Object) {
				continue
			}
			out = append(out, e)
			if len(out) == q.Limit {
				return out, seqS, nil
			}
		}
		if len(items) < chunk {
			return out, "", nil
		}
	}
}

// auditObject completes a topic or topic/subscription given short
// ("tenant/ns/topic[/subscription]") to the full name entries carry.
func auditObject(o string) string {
	if n := strings.Count(o, "/"); (n == 2 || n == 3) && !strings.Contains(o, "://") {
		return "persistent://" + o
	}
	return o
}

// auditKinds are the kind filter's values.
var auditKinds = map[string]bool{"app": true, "topic": true, "subscription": true, "registry": true}

// GET /audit?kind=&object=&limit=&cursor= (operator and admin)
func (a *API) listAudit(c *gin.Context) error {
	if err := a.require(c, RoleOperator); err != nil {
		return err
	}
	q := c.Request.URL.Query()
	aq := AuditQuery{Kind: q.Get("kind"), Object: q.Get("object"), Cursor: q.Get("cursor")}
	if aq.Kind != "" && !auditKinds[aq.Kind] {
		return badParam("kind: want app, topic, subscription or registry")
	}
	aq.Object = auditObject(aq.Object)
	if aq.Cursor != "" && !auditCursorRE.MatchString(aq.Cursor) {
		return errorf(http.StatusBadRequest, CodeInvalidCursor, "cursor: pass the next value of the previous page")
	}
	var err error
	if aq.Limit, err = parseLimit(q, 50); err != nil {
		return err
	}
	ed, err := a.editor()
	if err != nil {
		return err
	}
	ctx, cancel := a.ctx(c)
	defer cancel()
	entries, next, err := ed.Audit(ctx, aq)
	if err != nil {
		return registryError(err)
	}
	c.JSON(http.StatusOK, gin.H{"entries": entries, "next": next})
	return nil
}
