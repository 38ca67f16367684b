package esfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// evalQuery reports whether doc matches the query DSL value q.
func evalQuery(q any, doc map[string]any) (bool, *esError) {
	m, ok := q.(map[string]any)
	if !ok || len(m) != 1 {
		return false, parsingErr("query must be an object with one clause, got %v", q)
	}
	for kind, arg := range m {
		switch kind {
		case "match_all":
			return true, nil
		case "bool":
			return evalBool(arg, doc)
		case "term":
			field, want, err := single(arg)
			if err != nil {
				return false, err
			}
			if obj, ok := want.(map[string]any); ok {
				want = obj["value"]
			}
			return anyEqual(doc[field], normalize(want)), nil
		case "terms":
			field, list, err := single(arg)
			if err != nil {
				return false, err
			}
			vals, ok := list.([]any)
			if !ok {
				return false, parsingErr("[terms] query requires an array of values for [%s]", field)
			}
			for _, v := range vals {
				if anyEqual(doc[field], normalize(v)) {
					return true, nil
				}
			}
			return false, nil
		case "range":
			field, bounds, err := single(arg)
			if err != nil {
				return false, err
			}
			b, ok := bounds.(map[string]any)
			if !ok {
				return false, parsingErr("[range] query malformed for [%s]", field)
			}
			return evalRange(doc[field], b)
		default:
			return false, parsingErr("unknown query [%s]", kind)
		}
	}
	return false, nil
}

func evalBool(arg any, doc map[string]any) (bool, *esError) {
	b, ok := arg.(map[string]any)
	if !ok {
		return false, parsingErr("[bool] malformed")
	}
	for occur, clauses := range b {
		list, ok := clauses.([]any)
		if !ok {
			list = []any{clauses}
		}
		switch occur {
		case "filter", "must":
			for _, c := range list {
				m, err := evalQuery(c, doc)
				if err != nil || !m {
					return false, err
				}
			}
		case "must_not":
			for _, c := range list {
				m, err := evalQuery(c, doc)
				if err != nil || m {
					return false, err
				}
			}
		default:
			return false, parsingErr("[bool] query does not support [%s]", occur)
		}
	}
	return true, nil
}

func single(arg any) (string, any, *esError) {
	m, ok := arg.(map[string]any)
	if !ok || len(m) != 1 {
		return "", nil, parsingErr("query expects one field, got %v", arg)
	}
	for k, v := range m {
		return k, v, nil
	}
	return "", nil, nil
}

func evalRange(v any, bounds map[string]any) (bool, *esError) {
	if v == nil {
		return false, nil
	}
	x := normalize(v)
	for op, raw := range bounds {
		b := normalize(raw)
		c := compareValues(x, b)
		switch op {
		case "gt":
			if c <= 0 {
				return false, nil
			}
		case "gte":
			if c < 0 {
				return false, nil
			}
		case "lt":
			if c >= 0 {
				return false, nil
			}
		case "lte":
			if c > 0 {
				return false, nil
			}
		case "format", "time_zone":
		default:
			return false, parsingErr("[range] query does not support [%s]", op)
		}
	}
	return true, nil
}

func parsingErr(format string, args ...any) *esError {
	return &esError{http.StatusBadRequest, "parsing_exception", fmt.Sprintf(format, args...)}
}

// normalize turns json.Number into int64 or float64.
func normalize(v any) any {
	if n, ok := v.(json.Number); ok {
		if i, err := n.Int64(); err == nil {
			return i
		}
		f, _ := n.Float64()
		return f
	}
	return v
}

// anyEqual matches a term against a field value or any element of an array.
func anyEqual(field, want any) bool {
	if arr, ok := field.([]any); ok {
		for _, v := range arr {
			if compareValues(normalize(v), want) == 0 {
				return true
			}
		}
		return false
	}
	return field != nil && compareValues(normalize(field), want) == 0
}

// compareValues orders numbers numerically and strings bytewise; values of
// different kinds compare by kind (numbers before strings).
func compareValues(a, b any) int {
	fa, aNum := num(a)
	fb, bNum := num(b)
	switch {
	case aNum && bNum:
		switch {
		case fa < fb:
			return -1
		case fa > fb:
			return 1
		}
		return 0
	case aNum:
		return -1
	case bNum:
		return 1
	}
	return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
}

func num(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case float64:
		return x, true
	case int:
		return float64(x), true
	}
	return 0, false
}

type sortField struct {
	field string
	desc  bool
}

func parseSort(raw []any) ([]sortField, *esError) {
	var out []sortField
	for _, r := range raw {
		switch v := r.(type) {
		case string:
			out = append(out, sortField{field: v})
		case map[string]any:
			for f, o := range v {
				order := o
				if obj, ok := o.(map[string]any); ok {
					order = obj["order"]
				}
				switch order {
				case "asc", nil:
					out = append(out, sortField{field: f})
				case "desc":
					out = append(out, sortField{field: f, desc: true})
				default:
					return nil, parsingErr("unknown sort order [%v]", order)
				}
			}
		default:
			return nil, parsingErr("malformed sort %v", r)
		}
	}
	return out, nil
}

func sortValue(h hit, field string) any {
	if field == "_id" {
		return h.id
	}
	v := h.src[field]
	if arr, ok := v.([]any); ok && len(arr) > 0 {
		v = arr[0]
	}
	return normalize(v)
}

// compareKeys compares sort keys; missing values sort last.
func compareKeys(a, b []any, sorts []sortField) int {
	for i, f := range sorts {
		var c int
		switch {
		case a[i] == nil && b[i] == nil:
			c = 0
		case a[i] == nil:
			return 1
		case b[i] == nil:
			return -1
		default:
			c = compareValues(a[i], b[i])
		}
		if f.desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return 0
}

// checkMapping applies an index's mappings to a new document the way
// Elasticsearch would refuse it: unknown fields under "dynamic": "strict",
// and values that do not fit their field type.
func checkMapping(mappings map[string]any, doc map[string]any) *esError {
	if mappings == nil {
		return nil
	}
	props, _ := mappings["properties"].(map[string]any)
	strict := mappings["dynamic"] == "strict"
	for field, v := range doc {
		def, ok := props[field].(map[string]any)
		if !ok {
			if strict {
				return &esError{http.StatusBadRequest, "strict_dynamic_mapping_exception",
					fmt.Sprintf("[1:1] mapping set to strict, dynamic introduction of [%s] within [_doc] is not allowed", field)}
			}
			continue
		}
		if err := checkType(field, def["type"], v); err != nil {
			return err
		}
	}
	return nil
}

func checkType(field string, typ, v any) *esError {
	bad := func(what string) *esError {
		return &esError{http.StatusBadRequest, "document_parsing_exception",
			fmt.Sprintf("[1:1] failed to parse field [%s] of type [%v]: %s", field, typ, what)}
	}
	values := []any{v}
	if arr, ok := v.([]any); ok {
		values = arr
	}
	for _, x := range values {
		switch typ {
		case "keyword":
			if _, ok := x.(string); !ok {
				return bad("not a string")
			}
		case "long", "integer":
			n, ok := x.(json.Number)
			if !ok {
				return bad("not a number")
			}
			if _, err := n.Int64(); err != nil {
				return bad("not an integer")
			}
		case "date":
			switch d := x.(type) {
			case json.Number:
			case string:
				if _, err := time.Parse(time.RFC3339Nano, d); err != nil {
					return bad("failed to parse date " + d)
				}
			default:
				return bad("not a date")
			}
		case "flattened":
			if _, ok := x.(map[string]any); !ok {
				return bad("not an object")
			}
		}
	}
	return nil
}
