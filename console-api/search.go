package consoleapi

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// parseSearch turns the query string of GET /search into a store query.
func parseSearch(c *gin.Context) (tracer.Query, tracer.Page, error) {
	q := c.Request.URL.Query()
	var sq tracer.Query
	var err error
	if t := q.Get("topic"); t != "" {
		if sq.Topic, err = NormalizeTopic(t); err != nil {
			return sq, tracer.Page{}, err
		}
	}
	if sq.Range, err = parseTimeRange(q); err != nil {
		return sq, tracer.Page{}, err
	}
	if q.Get("view") != viewMessages {
		if sq.Types, err = parseTypes(q); err != nil {
			return sq, tracer.Page{}, err
		}
	}
	sq.Key, sq.Tag, sq.App, sq.ClientIP = q.Get("key"), q.Get("tag"), q.Get("app"), q.Get("clientIp")
	sq.Subscription, sq.UID, sq.MessageID = q.Get("subscription"), q.Get("uid"), q.Get("messageId")
	if sq.IsZero() {
		return sq, tracer.Page{}, errorf(http.StatusBadRequest, CodeMissingFilter,
			"give at least one of topic, from, to, key, tag, app, status, clientIp, subscription, uid, messageId (with view=messages, status alone is not enough)")
	}
	page := tracer.Page{}
	if page.Limit, err = parseLimit(q, tracer.DefaultPageSize); err != nil {
		return sq, page, err
	}
	if page.Cursor, err = decodeCursor(canonicalQuery("search", q), q.Get("cursor")); err != nil {
		return sq, page, err
	}
	return sq, page, nil
}

// GET /search
func (a *API) search(c *gin.Context) error {
	q := c.Request.URL.Query()
	view := q.Get("view")
	if _, ok := q["view"]; ok && view != viewEvents && view != viewMessages {
		return badParam("view=%q: want events (default) or messages", truncate(view, 20))
	}
	sq, page, err := parseSearch(c)
	if err != nil {
		return err
	}
	if view == viewMessages {
		return a.searchMessages(c, sq, page)
	}
	if _, ok := q["events"]; ok {
		return badParam("events applies to view=messages only")
	}
	ctx, cancel := a.ctx(c)
	defer cancel()
	res, err := a.opts.Store.Search(ctx, sq, page)
	if err != nil {
		return storeError(err)
	}
	c.JSON(http.StatusOK, pageJSON{Events: toEventsJSON(res.Events),
		Next: encodeCursor(canonicalQuery("search", c.Request.URL.Query()), res.Next)})
	return nil
}
