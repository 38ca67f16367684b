package tracer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esapi"
)

// maxRangeIndices bounds how many daily indices a time-range query names;
// wider ranges search the whole pattern.
const maxRangeIndices = 92

// ByUID implements Store.
func (e *Elastic) ByUID(ctx context.Context, uid string, page Page) (Result, error) {
	return e.list(ctx, []string{e.indexPattern()}, []any{term("uid", uid)}, page)
}

// ByMessageID implements Store.
func (e *Elastic) ByMessageID(ctx context.Context, messageID string, page Page) (Result, error) {
	return e.list(ctx, []string{e.indexPattern()}, []any{term("message_id", messageID)}, page)
}

// ByKey implements Store.
func (e *Elastic) ByKey(ctx context.Context, key string, page Page) (Result, error) {
	return e.list(ctx, []string{e.indexPattern()}, []any{term("key", key)}, page)
}

// ByTopic implements Store. With both ends of the range set (and at most
// maxRangeIndices days apart) only the daily indices of the range are
// searched.
func (e *Elastic) ByTopic(ctx context.Context, topic string, r TimeRange, page Page) (Result, error) {
	if err := r.validate(); err != nil {
		return Result{}, err
	}
	filters := []any{term("topic", topic)}
	if rng := tsRange(r); rng != nil {
		filters = append(filters, rng)
	}
	return e.list(ctx, e.indicesFor(r), filters, page)
}

// Search implements Store: a bool filter of term queries (a term on the
// tags keyword array matches any element), a terms query on type and a
// range on ts, over the daily indices of the range as ByTopic does.
func (e *Elastic) Search(ctx context.Context, q Query, page Page) (Result, error) {
	if err := q.validate(); err != nil {
		return Result{}, err
	}
	return e.list(ctx, e.indicesFor(q.Range), searchFilters(&q), page)
}

// searchFilters are the filters of q's events.
func searchFilters(q *Query) []any {
	filters := []any{}
	for _, f := range q.terms() {
		filters = append(filters, term(f[0], f[1]))
	}
	if q.Tag != "" {
		filters = append(filters, term("tags", q.Tag))
	}
	if len(q.Types) > 0 {
		types := make([]string, len(q.Types))
		for i, t := range q.Types {
			types[i] = string(t)
		}
		filters = append(filters, map[string]any{"terms": map[string]any{"type": types}})
	}
	if rng := tsRange(q.Range); rng != nil {
		filters = append(filters, rng)
	}
	return filters
}

// SearchMessages implements Store: a composite aggregation on uid over the
// matching events gives the page's uids in order (its after key is the
// cursor's uid), then one search with a terms filter on those uids reads
// their events.
func (e *Elastic) SearchMessages(ctx context.Context, q MessageQuery, page Page) (MessagePage, error) {
	return searchMessages(ctx, e, q, page)
}

func (e *Elastic) uidsAfter(ctx context.Context, q *Query, after string, n int) ([]string, error) {
	composite := map[string]any{
		"size":    n,
		"sources": []any{map[string]any{"uid": map[string]any{"terms": map[string]any{"field": "uid"}}}},
	}
	if after != "" {
		composite["after"] = map[string]any{"uid": after}
	}
	body := map[string]any{
		"size": 0, "track_total_hits": false, "query": boolFilter(searchFilters(q)),
		"aggs": map[string]any{"messages": map[string]any{"composite": composite}},
	}
	var sr struct {
		Aggregations struct {
			Messages struct {
				Buckets []struct {
					Key struct {
						UID string `json:"uid"`
					} `json:"key"`
				} `json:"buckets"`
			} `json:"messages"`
		} `json:"aggregations"`
	}
	if err := e.searchRaw(ctx, e.indicesFor(q.Range), body, &sr); err != nil {
		return nil, err
	}
	out := make([]string, len(sr.Aggregations.Messages.Buckets))
	for i, b := range sr.Aggregations.Messages.Buckets {
		out[i] = b.Key.UID
	}
	return out, nil
}

func (e *Elastic) eventsOf(ctx context.Context, uids []string) (map[string][]Event, error) {
	events, err := e.search(ctx, []string{e.indexPattern()}, searchBody{
		Size:  min(len(uids)*MaxMessageEvents, 10000), // the search window's default cap
		Query: boolFilter([]any{map[string]any{"terms": map[string]any{"uid": uids}}}),
		Sort:  sortTSID,
	})
	if err != nil {
		return nil, err
	}
	return groupByUID(events), nil
}

// tsRange is the range filter of r on ts, or nil when r is open.
func tsRange(r TimeRange) map[string]any {
	rng := map[string]any{}
	if !r.From.IsZero() {
		rng["gte"] = r.From.UnixMicro()
	}
	if !r.To.IsZero() {
		rng["lt"] = r.To.UnixMicro()
	}
	if len(rng) == 0 {
		return nil
	}
	return map[string]any{"range": map[string]any{"ts": rng}}
}

// indicesFor lists the daily indices that can hold events of r.
func (e *Elastic) indicesFor(r TimeRange) []string {
	if r.From.IsZero() || r.To.IsZero() {
		return []string{e.indexPattern()}
	}
	from := r.From.UTC().Truncate(24 * time.Hour)
	last := r.To.Add(-time.Microsecond).UTC()
	if last.Sub(from) > maxRangeIndices*24*time.Hour {
		return []string{e.indexPattern()}
	}
	var out []string
	for d := from; !d.After(last); d = d.Add(24 * time.Hour) {
		out = append(out, e.indexFor(d))
	}
	return out
}

// Consumption implements Store.
func (e *Elastic) Consumption(ctx context.Context, uid string) ([]Consumption, error) {
	types := make([]string, len(ConsumptionTypes))
	for i, t := range ConsumptionTypes {
		types[i] = string(t)
	}
	events, err := e.search(ctx, []string{e.indexPattern()}, searchBody{
		Size:  maxConsumptionEvents,
		Query: boolFilter([]any{term("uid", uid), map[string]any{"terms": map[string]any{"type": types}}}),
		Sort:  sortTSIDDesc, // the latest events, should there be more than the cap
	})
	if err != nil {
		return nil, err
	}
	return reduceConsumption(events), nil
}

// DeleteBefore implements Store: it deletes the daily indices that end at or
// before t whole, then the older documents of the others with
// _delete_by_query.
func (e *Elastic) DeleteBefore(ctx context.Context, t time.Time) (int64, error) {
	rctx, cancel := context.WithTimeout(ctx, e.opts.RequestTimeout)
	defer cancel()
	res, err := esapi.CatIndicesRequest{Index: []string{e.indexPattern()}, Format: "json", H: []string{"index", "docs.count"}}.Do(rctx, e.client)
	if err != nil {
		return 0, fmt.Errorf("tracer: list indices: %w", err)
	}
	var cat []struct {
		Index string `json:"index"`
		Docs  string `json:"docs.count"`
	}
	err = decodeResponse(res, &cat)
	if err != nil {
		return 0, fmt.Errorf("tracer: list indices: %w", err)
	}
	var total int64
	prefix := e.opts.IndexPrefix + "-events-"
	for _, c := range cat {
		if !strings.HasPrefix(c.Index, prefix) {
			continue
		}
		day, err := time.Parse("2006.01.02", strings.TrimPrefix(c.Index, prefix))
		if err != nil || day.Add(24*time.Hour).After(t) {
			continue
		}
		res, err := esapi.IndicesDeleteRequest{Index: []string{c.Index}}.Do(rctx, e.client)
		if err != nil {
			return total, fmt.Errorf("tracer: delete index %s: %w", c.Index, err)
		}
		if err := decodeResponse(res, nil); err != nil {
			return total, fmt.Errorf("tracer: delete index %s: %w", c.Index, err)
		}
		n, _ := strconv.ParseInt(c.Docs, 10, 64)
		total += n
	}
	body, _ := json.Marshal(map[string]any{"query": map[string]any{"range": map[string]any{"ts": map[string]any{"lt": t.UnixMicro()}}}})
	ignore, refresh := true, e.opts.Refresh != ""
	res, err = esapi.DeleteByQueryRequest{
		Index: []string{e.indexPattern()}, Body: bytes.NewReader(body),
		IgnoreUnavailable: &ignore, Conflicts: "proceed", Refresh: &refresh,
	}.Do(rctx, e.client)
	if err != nil {
		return total, fmt.Errorf("tracer: delete by query: %w", err)
	}
	var dbq struct {
		Deleted int64 `json:"deleted"`
	}
	if err := decodeResponse(res, &dbq); err != nil {
		return total, fmt.Errorf("tracer: delete by query: %w", err)
	}
	return total + dbq.Deleted, nil
}

// searchBody is the _search request we send.
type searchBody struct {
	Size           int              `json:"size"`
	Query          any              `json:"query"`
	Sort           []map[string]any `json:"sort"`
	SearchAfter    []any            `json:"search_after,omitempty"`
	TrackTotalHits bool             `json:"track_total_hits"`
}

var (
	sortTSID     = []map[string]any{{"ts": "asc"}, {"id": "asc"}}
	sortTSIDDesc = []map[string]any{{"ts": "desc"}, {"id": "desc"}}
)

func term(field, value string) map[string]any {
	return map[string]any{"term": map[string]any{field: value}}
}

func boolFilter(filters []any) map[string]any {
	return map[string]any{"bool": map[string]any{"filter": filters}}
}

func (e *Elastic) list(ctx context.Context, indices []string, filters []any, page Page) (Result, error) {
	c, ok, err := decodeCursor(page.Cursor)
	if err != nil {
		return Result{}, err
	}
	limit := page.limit()
	body := searchBody{Size: limit + 1, Query: boolFilter(filters), Sort: sortTSID}
	if ok {
		body.SearchAfter = []any{c.TimeUS, c.ID}
	}
	events, err := e.search(ctx, indices, body)
	if err != nil {
		return Result{}, err
	}
	return pageResult(events, limit), nil
}

// searchRaw sends a _search with body and decodes the answer into v.
func (e *Elastic) searchRaw(ctx context.Context, indices []string, body, v any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, e.opts.RequestTimeout)
	defer cancel()
	ignore := true
	res, err := esapi.SearchRequest{Index: indices, Body: bytes.NewReader(b), IgnoreUnavailable: &ignore}.Do(rctx, e.client)
	if err != nil {
		return fmt.Errorf("tracer: search: %w", err)
	}
	if err := decodeResponse(res, v); err != nil {
		return fmt.Errorf("tracer: search: %w", err)
	}
	return nil
}

func (e *Elastic) search(ctx context.Context, indices []string, body searchBody) ([]Event, error) {
	var sr struct {
		Hits struct {
			Hits []struct {
				Source esDoc `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if err := e.searchRaw(ctx, indices, body, &sr); err != nil {
		return nil, err
	}
	out := make([]Event, len(sr.Hits.Hits))
	for i := range sr.Hits.Hits {
		out[i] = sr.Hits.Hits[i].Source.event()
	}
	return out, nil
}

// decodeResponse closes res and decodes a 2xx body into v (when not nil).
func decodeResponse(res *esapi.Response, v any) error {
	defer drain(res.Body)
	if res.IsError() {
		return fmt.Errorf("%s: %s", res.Status(), readSnippet(res.Body))
	}
	if v == nil {
		return nil
	}
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		return fmt.Errorf("decode %d response: %w", res.StatusCode, err)
	}
	return nil
}
