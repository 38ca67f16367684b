package esfake

import (
	"encoding/json"
	"net/http"
	"sort"
)

// compositeAggs answers the aggregations of a _search: only composite
// aggregations with one terms source on a keyword field are supported
// (what the trace store's message search sends), with size and after.
// Buckets are the distinct values of the field among the matching
// documents, ascending, after the after key; after_key is the last one.
func compositeAggs(raw json.RawMessage, hits []hit) (map[string]any, *esError) {
	var aggs map[string]struct {
		Composite *struct {
			Size    *int                         `json:"size"`
			Sources []map[string]json.RawMessage `json:"sources"`
			After   map[string]any               `json:"after"`
		} `json:"composite"`
	}
	if err := json.Unmarshal(raw, &aggs); err != nil {
		return nil, &esError{http.StatusBadRequest, "x_content_parse_exception", err.Error()}
	}
	out := map[string]any{}
	for name, a := range aggs {
		c := a.Composite
		if c == nil || len(c.Sources) != 1 {
			return nil, parsingErr("esfake: aggregation [%s]: only a composite aggregation with one source is supported", name)
		}
		var srcName, field string
		for n, def := range c.Sources[0] {
			var t struct {
				Terms *struct {
					Field string `json:"field"`
				} `json:"terms"`
			}
			if err := json.Unmarshal(def, &t); err != nil || t.Terms == nil || t.Terms.Field == "" {
				return nil, parsingErr("esfake: aggregation [%s]: source [%s] must be a terms source with a field", name, n)
			}
			srcName, field = n, t.Terms.Field
		}
		size := 10
		if c.Size != nil {
			size = *c.Size
		}
		var after *string
		if c.After != nil {
			v, ok := c.After[srcName].(string)
			if !ok {
				return nil, parsingErr("esfake: aggregation [%s]: after must name [%s] with a string", name, srcName)
			}
			after = &v
		}
		counts := map[string]int{}
		for _, h := range hits {
			switch v := h.src[field].(type) {
			case string:
				counts[v]++
			case []any:
				for _, e := range v {
					if s, ok := e.(string); ok {
						counts[s]++
					}
				}
			}
		}
		keys := make([]string, 0, len(counts))
		for k := range counts {
			if after == nil || k > *after {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		if len(keys) > size {
			keys = keys[:size]
		}
		buckets := make([]any, len(keys))
		for i, k := range keys {
			buckets[i] = map[string]any{"key": map[string]any{srcName: k}, "doc_count": counts[k]}
		}
		agg := map[string]any{"buckets": buckets}
		if len(keys) > 0 {
			agg["after_key"] = map[string]any{srcName: keys[len(keys)-1]}
		}
		out[name] = agg
	}
	return out, nil
}
