package proxy

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// jsonContentType is the Content-Type of every JSON answer, as gin's
// c.JSON sets it. It is shared: never append to it.
var jsonContentType = []string{"application/json; charset=utf-8"}

// writeProduceAnswer writes the 200 answer of a produce request. It is the
// hot path's replacement for c.JSON(200, produceResponse{results}): the
// same bytes (appendProduceResponse matches encoding/json exactly, see
// TestAppendProduceResponse), without reflection.
func writeProduceAnswer(w http.ResponseWriter, results []Result) {
	buf := make([]byte, 0, 64+128*len(results))
	buf = appendProduceResponse(buf, results)
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf)
}

// appendProduceResponse appends produceResponse{Results: results} as
// encoding/json.Marshal would write it.
func appendProduceResponse(b []byte, results []Result) []byte {
	if results == nil {
		return append(b, `{"results":null}`...)
	}
	b = append(b, `{"results":[`...)
	for i := range results {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendResult(b, &results[i])
	}
	return append(b, "]}"...)
}

// appendResult follows Result's json tags: field order, omitempty.
func appendResult(b []byte, r *Result) []byte {
	b = append(b, `{"uid":`...)
	b = appendJSONString(b, r.UID)
	if r.MessageID != "" {
		b = append(b, `,"messageId":`...)
		b = appendJSONString(b, r.MessageID)
	}
	b = append(b, `,"status":`...)
	b = appendJSONString(b, string(r.Status))
	if r.Cluster != "" {
		b = append(b, `,"cluster":`...)
		b = appendJSONString(b, r.Cluster)
	}
	if r.DeliverAt != "" {
		b = append(b, `,"deliverAt":`...)
		b = appendJSONString(b, r.DeliverAt)
	}
	if r.Duplicate {
		b = append(b, `,"duplicate":true`...)
	}
	if r.DuplicateRisk {
		b = append(b, `,"duplicateRisk":true`...)
	}
	if r.Error != nil {
		b = append(b, `,"error":{"code":`...)
		b = appendJSONString(b, r.Error.Code)
		b = append(b, `,"message":`...)
		b = appendJSONString(b, r.Error.Message)
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendJSONString appends s as a JSON string the way encoding/json does.
// The strings of an answer (uids, message ids, statuses, cluster names,
// times) are plain printable ASCII and are copied as they are; anything
// else (quotes, backslashes, control characters, <, >, &, non-ASCII) goes
// through encoding/json, so its escaping rules are never re-implemented.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, err := json.Marshal(s)
			if err != nil { // cannot happen for a string
				return strconv.AppendQuote(b, s)
			}
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
