package minipulsar

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// The admin listener serves the subset of Pulsar's admin REST API (base
// /admin/v2) that pulsaradmin uses, plus HTTP lookup (/lookup/v2). Paths,
// bodies, status codes and JSON shapes follow Pulsar; errors are
// {"reason": "..."} as pulsaradmin parses them (Pulsar's shape, not the
// {"error":{...}} shape of our own product APIs).
//
// Files: admin.go (routing, errors, names), admin_topics.go (topics,
// partitions, topic policies), admin_stats.go (stats, internal stats),
// admin_subscriptions.go (subscriptions, cursors), admin_messages.go
// (message by id, peek, last id), admin_namespaces.go (tenants, namespaces,
// lookup).

// Reasons sent in error bodies.
const (
	reasonNotFound          = "Not found"
	reasonMethodNotAllowed  = "Method not allowed"
	reasonInternal          = "Internal server error"
	reasonTopicNotFound     = "Topic not found"
	reasonPartitionedNotFnd = "Partitioned topic does not exist"
	reasonTopicExists       = "This topic already exists"
	reasonPartitionedExists = "Partitioned topic already exists"
	reasonTopicInUse        = "Topic has active producers/subscriptions"
	reasonSubNotFound       = "Subscription not found"
	reasonSubExists         = "Subscription already exists for topic"
	reasonSubHasConsumers   = "Subscription has active connected consumers"
	reasonMessageNotFound   = "Message not found"
	reasonInvalidTopic      = "Topic name is not valid"
	reasonPartitionsCount   = "Number of partitions should be more than 0"
	reasonPartitionsShrink  = "Number of new partitions must be greater than existing number of partitions"
	reasonPartitionInName   = "Partitioned topic name should not contain '-partition-'"
	reasonNotOnPartitioned  = "This operation is not allowed on a partitioned topic; use a partition"
	reasonNamespaceExists   = "Namespace already exists"
	reasonNamespaceNotFound = "Namespace does not exist"
	reasonTenantNotFound    = "Tenant does not exist"
	reasonTenantExists      = "Tenant already exists"
	reasonTenantNotEmpty    = "The tenant still has active namespaces"
	reasonSchemaNotFound    = "Schema not found"
)

// apiError is an error with the HTTP status and reason to answer.
type apiError struct {
	status int
	reason string
	err    error
}

func (e *apiError) Error() string {
	if e.err != nil {
		return e.reason + ": " + e.err.Error()
	}
	return e.reason
}

func (e *apiError) Unwrap() error { return e.err }

func httpErr(status int, reason string) error { return &apiError{status: status, reason: reason} }

func httpErrf(status int, format string, args ...any) error {
	return &apiError{status: status, reason: fmt.Sprintf(format, args...)}
}

// statusOf maps an error to its HTTP status and the reason shown to the
// caller. Anything unknown is a 500 whose reason leaks nothing.
func statusOf(err error) (int, string) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae.status, ae.reason
	case errors.Is(err, ErrTopicNotFound):
		return http.StatusNotFound, reasonTopicNotFound
	case errors.Is(err, ErrTopicExists):
		return http.StatusConflict, reasonTopicExists
	case errors.Is(err, ErrTopicInUse):
		return http.StatusPreconditionFailed, reasonTopicInUse
	case errors.Is(err, ErrSubNotFound):
		return http.StatusNotFound, reasonSubNotFound
	case errors.Is(err, ErrNotPartitioned):
		return http.StatusConflict, reasonTopicExists
	case errors.Is(err, ErrNamespaceNotFound):
		return http.StatusNotFound, reasonNamespaceNotFound
	case errors.Is(err, ErrNamespaceExists):
		return http.StatusConflict, reasonNamespaceExists
	case errors.Is(err, ErrTenantNotFound):
		return http.StatusNotFound, reasonTenantNotFound
	case errors.Is(err, ErrTenantExists):
		return http.StatusConflict, reasonTenantExists
	case errors.Is(err, ErrTenantNotEmpty):
		return http.StatusConflict, reasonTenantNotEmpty
	case errors.Is(err, ErrInvalidNamespace):
		return http.StatusPreconditionFailed, err.Error()
	case errors.Is(err, ErrSchemaNotFound):
		return http.StatusNotFound, reasonSchemaNotFound
	case errors.Is(err, ErrIncompatibleSchema):
		return http.StatusConflict, err.Error()
	case errors.Is(err, ErrInvalidTopic):
		return http.StatusPreconditionFailed, reasonInvalidTopic + ": " + err.Error()
	}
	return http.StatusInternalServerError, reasonInternal
}

type errorBody struct {
	Reason string `json:"reason"`
}

func (a *admin) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, reason := statusOf(err)
	if status >= 500 {
		a.s.log.Error("admin request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	} else {
		a.s.log.Debug("admin request refused", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	writeJSON(w, status, errorBody{Reason: reason})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"reason":"`+reasonInternal+`"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func noContent(w http.ResponseWriter) { w.WriteHeader(http.StatusNoContent) }

// admin serves the REST API of one Server. Its state (rate samples,
// namespaces created over REST) lives as long as one Start.
type admin struct {
	s     *Server
	rates rateSampler
}

type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func (a *admin) handle(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			a.writeError(w, r, err)
		}
	}
}

func (s *Server) adminHandler() http.Handler {
	a := &admin{s: s}
	mux := http.NewServeMux()
	a.routeTopics(mux)
	a.routeSubscriptions(mux)
	a.routeMessages(mux)
	a.routeNamespaces(mux)
	a.routeSchemas(mux)
	return &jsonFallback{mux: mux, a: a}
}

// jsonFallback answers unknown paths (404) and wrong methods (405) with a
// JSON body, which ServeMux would answer in plain text.
type jsonFallback struct {
	mux *http.ServeMux
	a   *admin
}

func (f *jsonFallback) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, pattern := f.mux.Handler(r)
	if pattern != "" {
		f.mux.ServeHTTP(w, r)
		return
	}
	rec := &statusRecorder{header: http.Header{}}
	h.ServeHTTP(rec, r)
	switch rec.status {
	case http.StatusNotFound:
		f.a.writeError(w, r, httpErr(http.StatusNotFound, reasonNotFound))
	case http.StatusMethodNotAllowed:
		if allow := rec.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		f.a.writeError(w, r, httpErr(http.StatusMethodNotAllowed, reasonMethodNotAllowed))
	default: // redirects of unclean paths
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.status)
		_, _ = w.Write(rec.body)
	}
}

type statusRecorder struct {
	header http.Header
	status int
	body   []byte
}

func (r *statusRecorder) Header() http.Header { return r.header }
func (r *statusRecorder) WriteHeader(s int) {
	if r.status == 0 {
		r.status = s
	}
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	r.body = append(r.body, b...)
	return len(b), nil
}

// --- names in paths ---

// topicFromPath builds the topic named by the {domain}/{tenant}/{ns}/{topic}
// path values. An unknown domain is a 404, as no such resource exists.
func topicFromPath(r *http.Request) (topicName, error) {
	domain := r.PathValue("domain")
	if domain != "persistent" && domain != "non-persistent" {
		return topicName{}, httpErr(http.StatusNotFound, reasonNotFound)
	}
	tn, err := parseTopic(domain + "://" + r.PathValue("tenant") + "/" + r.PathValue("ns") + "/" + r.PathValue("topic"))
	if err != nil {
		return topicName{}, err
	}
	return tn, nil
}

// namespaceFromPath is "tenant/ns" from the path, with a valid domain, of
// a namespace that exists (404 "Namespace does not exist" otherwise, as
// Pulsar answers a topic list of a missing namespace).
func (a *admin) namespaceFromPath(r *http.Request) (domain, ns string, err error) {
	domain = r.PathValue("domain")
	if domain != "persistent" && domain != "non-persistent" {
		return "", "", httpErr(http.StatusNotFound, reasonNotFound)
	}
	ns = r.PathValue("tenant") + "/" + r.PathValue("ns")
	if !a.s.namespaceExists(ns) {
		return "", "", httpErr(http.StatusNotFound, reasonNamespaceNotFound)
	}
	return domain, ns, nil
}

// subFromPath is the {sub} path value. pulsaradmin escapes subscription
// names twice (url.PathEscape, then again when it builds the path) and
// Pulsar decodes them twice, so a second decoding is applied here; a value
// that does not decode again (a raw client escaping once a name with a '%')
// is taken as it is.
func subFromPath(r *http.Request) string {
	v := r.PathValue("sub")
	if d, err := url.PathUnescape(v); err == nil {
		return d
	}
	return v
}

// boolQuery reads a boolean query parameter; absent or unparsable is false.
func boolQuery(r *http.Request, name string) bool {
	b, _ := strconv.ParseBool(r.URL.Query().Get(name))
	return b
}

// resolveTopics finds the stored topics behind a topic in a URL: the topic,
// or every partition of a partitioned topic. create makes a missing
// non-partitioned topic (auto-creation permitting).
func (a *admin) resolveTopics(tn topicName, create bool) (ts []*topic, partitioned bool, err error) {
	if n := a.s.partitionsOf(tn); n > 0 {
		for i := 0; i < n; i++ {
			t, err := a.s.getTopic(tn.partition(i), true)
			if err != nil {
				return nil, true, err
			}
			ts = append(ts, t)
		}
		return ts, true, nil
	}
	t, err := a.s.getTopic(tn, create && !a.s.opts.DisableAutoTopicCreation)
	if err != nil {
		return nil, false, err
	}
	return []*topic{t}, false, nil
}

// single resolves a topic on which an operation needs one stored topic.
func (a *admin) single(tn topicName) (*topic, error) {
	ts, partitioned, err := a.resolveTopics(tn, false)
	if err != nil {
		return nil, err
	}
	if partitioned {
		return nil, httpErr(http.StatusMethodNotAllowed, reasonNotOnPartitioned)
	}
	return ts[0], nil
}
