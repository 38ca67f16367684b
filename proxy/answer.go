package proxy

import (
	"net/http"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/jsonenc"
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
	b = jsonenc.AppendString(b, r.UID)
	if r.MessageID != "" {
		b = append(b, `,"messageId":`...)
		b = jsonenc.AppendString(b, r.MessageID)
	}
	b = append(b, `,"status":`...)
	b = jsonenc.AppendString(b, string(r.Status))
	if r.Cluster != "" {
		b = append(b, `,"cluster":`...)
		b = jsonenc.AppendString(b, r.Cluster)
	}
	if r.DeliverAt != "" {
		b = append(b, `,"deliverAt":`...)
		b = jsonenc.AppendString(b, r.DeliverAt)
	}
	if r.Duplicate {
		b = append(b, `,"duplicate":true`...)
	}
	if r.DuplicateRisk {
		b = append(b, `,"duplicateRisk":true`...)
	}
	if r.Error != nil {
		b = append(b, `,"error":{"code":`...)
		b = jsonenc.AppendString(b, r.Error.Code)
		b = append(b, `,"message":`...)
		b = jsonenc.AppendString(b, r.Error.Message)
		b = append(b, '}')
	}
	return append(b, '}')
}
