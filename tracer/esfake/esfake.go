// Package esfake is an in-memory stand-in for the Elasticsearch HTTP API
// subset the tracer uses, for tests. It runs on 127.0.0.1 over real HTTP,
// answers like Elasticsearch 8 (including the X-Elastic-Product header the
// Go client checks), records every request for golden-file tests, and lets a
// test inject faults.
//
// Supported:
//   - PUT/GET /_index_template/{name}: composable templates; on index
//     creation the highest-priority matching template's mappings apply.
//     With "dynamic": "strict", unknown fields are refused (400); keyword,
//     long, integer, date and flattened fields are type-checked.
//   - POST /_bulk: create and index actions (NDJSON); 201 created, 409 when a
//     create finds the id, per-item 400 on mapping errors.
//   - GET/POST /{indices}/_search: comma-separated names with * wildcards,
//     ignore_unavailable; queries bool (filter, must), term, terms, range
//     (gt, gte, lt, lte), match_all; sort on fields (asc/desc), size (at most
//     10000), search_after; hits carry _index, _id, _source and sort.
//   - POST /{indices}/_delete_by_query with the same queries.
//   - GET /_cat/indices[/{indices}]?format=json (index, docs.count).
//   - DELETE /{index}, GET /.
//
// Not supported: scoring, full-text queries, aggregations, from, scroll,
// refresh semantics (every write is visible at once), routing, versions.
package esfake

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// Request is one request the server received.
type Request struct {
	Method string
	Path   string
	Query  string // raw query, parameters sorted
	Body   []byte
}

// ItemFault decides the status of one bulk item: 0 for normal handling, or
// an error status (429, 400, 500...) to answer instead without storing.
// seen counts how many times the server has received this id, from 1.
type ItemFault func(index, id string, seen int) int

// Server is the fake. Create with New (not started) or Run/RunT.
type Server struct {
	srv *httptest.Server

	mu        sync.Mutex
	indices   map[string]*index
	templates map[string]template
	requests  []Request
	seen      map[string]int // bulk item id -> times received

	failNext  map[string][]int // op -> statuses to answer to the next requests
	itemFault ItemFault
	delay     time.Duration
	noProduct bool
}

type index struct {
	docs     map[string]map[string]any
	order    []string // ids in insertion order
	mappings map[string]any
}

type template struct {
	patterns []string
	priority int
	mappings map[string]any
	raw      json.RawMessage
}

// New returns a server that is not listening yet.
func New() *Server {
	s := &Server{
		indices:   map[string]*index{},
		templates: map[string]template{},
		seen:      map[string]int{},
		failNext:  map[string][]int{},
	}
	s.srv = httptest.NewUnstartedServer(s)
	return s
}

// Run starts a server on a random loopback port.
func Run() *Server {
	s := New()
	s.srv.Start()
	return s
}

// RunT starts a server and closes it when t ends.
func RunT(t testing.TB) *Server {
	s := Run()
	t.Cleanup(s.Close)
	return s
}

// StartOn starts a server created by New on addr (such as an address whose
// connections were refused until now).
func (s *Server) StartOn(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	_ = s.srv.Listener.Close()
	s.srv.Listener = l
	s.srv.Start()
	return nil
}

// URL is the server's base URL, e.g. http://127.0.0.1:40123.
func (s *Server) URL() string { return s.srv.URL }

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// --- fault injection ---

// FailNext answers the next len(statuses) requests of op ("bulk", "search",
// "template", "cat", "delete_by_query", "delete_index") with those statuses,
// without acting on them. With no statuses it forgets the pending ones.
func (s *Server) FailNext(op string, statuses ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(statuses) == 0 {
		delete(s.failNext, op)
		return
	}
	s.failNext[op] = append(s.failNext[op], statuses...)
}

// SetItemFault installs (or, with nil, removes) a per-item bulk fault.
func (s *Server) SetItemFault(f ItemFault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.itemFault = f
}

// ItemFault returns the installed per-item fault, or nil.
func (s *Server) ItemFault() ItemFault {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.itemFault
}

// ClearFaults removes every injected fault: pending FailNext statuses, the
// item fault and the delay, and turns the product header back on.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext = map[string][]int{}
	s.itemFault = nil
	s.delay = 0
	s.noProduct = false
}

// SetDelay delays every answer by d (after acting on the request).
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// SetProductHeader turns the X-Elastic-Product header on (the default) or off.
func (s *Server) SetProductHeader(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noProduct = !on
}

// --- inspection ---

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// ResetRequests forgets the recorded requests.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

// Indices lists the index names, sorted.
func (s *Server) Indices() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.indices))
	for n := range s.indices {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Count returns how many documents all indices hold.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, ix := range s.indices {
		n += len(ix.docs)
	}
	return n
}

// IDs returns the ids of all documents, sorted.
func (s *Server) IDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for _, ix := range s.indices {
		for id := range ix.docs {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// Doc returns a document's source by index and id.
func (s *Server) Doc(indexName, id string) (map[string]any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ix, ok := s.indices[indexName]
	if !ok {
		return nil, false
	}
	d, ok := ix.docs[id]
	return d, ok
}

// Template returns the body of a stored index template.
func (s *Server) Template(name string) (json.RawMessage, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.templates[name]
	return t.raw, ok
}

// --- HTTP ---

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	q := r.URL.Query()
	s.mu.Lock()
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Query: q.Encode(), Body: body})
	delay, noProduct := s.delay, s.noProduct
	op := operation(r.Method, r.URL.Path)
	var status int
	var resp any
	if fails := s.failNext[op]; len(fails) > 0 {
		status, resp = fails[0], errorBody("injected_fault", fmt.Sprintf("injected %d for %s", fails[0], op))
		s.failNext[op] = fails[1:]
	} else {
		status, resp = s.handle(op, r.Method, r.URL.Path, q, body)
	}
	s.mu.Unlock()

	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if !noProduct {
		w.Header().Set("X-Elastic-Product", "Elasticsearch")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(resp)
}

func operation(method, p string) string {
	segs := strings.Split(strings.Trim(p, "/"), "/")
	switch {
	case p == "/":
		return "info"
	case segs[0] == "_bulk":
		return "bulk"
	case segs[0] == "_index_template":
		return "template"
	case segs[0] == "_cat":
		return "cat"
	case segs[len(segs)-1] == "_search":
		return "search"
	case segs[len(segs)-1] == "_delete_by_query":
		return "delete_by_query"
	case method == http.MethodDelete && len(segs) == 1:
		return "delete_index"
	}
	return "unknown"
}

func errorBody(typ, reason string) map[string]any {
	return map[string]any{"error": map[string]any{"type": typ, "reason": reason,
		"root_cause": []any{map[string]any{"type": typ, "reason": reason}}}, "status": 0}
}

func withStatus(status int, b map[string]any) (int, any) {
	b["status"] = status
	return status, b
}

// handle runs a request with s.mu held.
func (s *Server) handle(op, method, p string, q map[string][]string, body []byte) (int, any) {
	segs := strings.Split(strings.Trim(p, "/"), "/")
	switch op {
	case "info":
		return http.StatusOK, map[string]any{"name": "esfake", "cluster_name": "esfake",
			"version": map[string]any{"number": "8.19.0", "build_flavor": "default"}, "tagline": "You Know, for Search"}
	case "template":
		if len(segs) != 2 {
			return withStatus(http.StatusBadRequest, errorBody("illegal_argument_exception", "template name missing"))
		}
		return s.handleTemplate(method, segs[1], body)
	case "bulk":
		if method != http.MethodPost && method != http.MethodPut {
			return withStatus(http.StatusMethodNotAllowed, errorBody("method_not_allowed", method))
		}
		return s.handleBulk(body)
	case "search":
		expr := "*"
		if len(segs) == 2 {
			expr = segs[0]
		}
		return s.handleSearch(expr, q, body)
	case "delete_by_query":
		if len(segs) != 2 {
			return withStatus(http.StatusBadRequest, errorBody("action_request_validation_exception", "index missing"))
		}
		return s.handleDeleteByQuery(segs[0], q, body)
	case "cat":
		if len(segs) < 2 || segs[1] != "indices" {
			return withStatus(http.StatusBadRequest, errorBody("illegal_argument_exception", "unsupported _cat"))
		}
		expr := "*"
		if len(segs) == 3 {
			expr = segs[2]
		}
		names, _ := s.resolve(expr, true)
		out := []map[string]string{}
		for _, n := range names {
			out = append(out, map[string]string{"index": n, "docs.count": fmt.Sprint(len(s.indices[n].docs))})
		}
		return http.StatusOK, out
	case "delete_index":
		if _, ok := s.indices[segs[0]]; !ok {
			return withStatus(http.StatusNotFound, errorBody("index_not_found_exception", "no such index ["+segs[0]+"]"))
		}
		delete(s.indices, segs[0])
		return http.StatusOK, map[string]any{"acknowledged": true}
	}
	return withStatus(http.StatusBadRequest, errorBody("illegal_argument_exception", "no handler found for uri ["+p+"] and method ["+method+"]"))
}

func (s *Server) handleTemplate(method, name string, body []byte) (int, any) {
	switch method {
	case http.MethodGet:
		t, ok := s.templates[name]
		if !ok {
			return withStatus(http.StatusNotFound, errorBody("resource_not_found_exception", "index template matching ["+name+"] not found"))
		}
		return http.StatusOK, map[string]any{"index_templates": []any{map[string]any{"name": name, "index_template": t.raw}}}
	case http.MethodPut, http.MethodPost:
		var req struct {
			IndexPatterns []string `json:"index_patterns"`
			Priority      int      `json:"priority"`
			Template      struct {
				Mappings map[string]any `json:"mappings"`
			} `json:"template"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			return withStatus(http.StatusBadRequest, errorBody("x_content_parse_exception", err.Error()))
		}
		if len(req.IndexPatterns) == 0 {
			return withStatus(http.StatusBadRequest, errorBody("action_request_validation_exception", "index patterns are missing"))
		}
		s.templates[name] = template{patterns: req.IndexPatterns, priority: req.Priority, mappings: req.Template.Mappings, raw: append(json.RawMessage(nil), body...)}
		return http.StatusOK, map[string]any{"acknowledged": true}
	}
	return withStatus(http.StatusMethodNotAllowed, errorBody("method_not_allowed", method))
}

// createIndex makes an index with the mappings of the best matching template.
func (s *Server) createIndex(name string) *index {
	ix := &index{docs: map[string]map[string]any{}}
	best := -1 << 31
	for _, t := range s.templates {
		for _, pat := range t.patterns {
			if ok, _ := path.Match(pat, name); ok && t.priority > best {
				best, ix.mappings = t.priority, t.mappings
			}
		}
	}
	s.indices[name] = ix
	return ix
}

func (s *Server) handleBulk(body []byte) (int, any) {
	start := time.Now()
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 64<<10), 100<<20)
	var items []any
	hasErrors := false
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var action map[string]struct {
			Index string `json:"_index"`
			ID    string `json:"_id"`
		}
		if err := json.Unmarshal(line, &action); err != nil || len(action) != 1 {
			return withStatus(http.StatusBadRequest, errorBody("illegal_argument_exception", fmt.Sprintf("Malformed action/metadata line [%s]", line)))
		}
		var name string
		for k := range action {
			name = k
		}
		meta := action[name]
		if name != "create" && name != "index" {
			return withStatus(http.StatusBadRequest, errorBody("illegal_argument_exception", "unsupported action ["+name+"]"))
		}
		if !sc.Scan() {
			return withStatus(http.StatusBadRequest, errorBody("illegal_argument_exception", "The bulk request must be terminated by a newline [\\n]"))
		}
		src := append([]byte(nil), sc.Bytes()...)
		res := map[string]any{"_index": meta.Index, "_id": meta.ID}
		items = append(items, map[string]any{name: res})
		if meta.Index == "" || meta.ID == "" {
			res["status"] = http.StatusBadRequest
			res["error"] = map[string]any{"type": "action_request_validation_exception", "reason": "index or id is missing"}
			hasErrors = true
			continue
		}
		s.seen[meta.ID]++
		if s.itemFault != nil {
			if st := s.itemFault(meta.Index, meta.ID, s.seen[meta.ID]); st != 0 {
				res["status"] = st
				res["error"] = map[string]any{"type": faultType(st), "reason": fmt.Sprintf("injected %d", st)}
				hasErrors = true
				continue
			}
		}
		var doc map[string]any
		dec := json.NewDecoder(bytes.NewReader(src))
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil {
			res["status"] = http.StatusBadRequest
			res["error"] = map[string]any{"type": "document_parsing_exception", "reason": err.Error()}
			hasErrors = true
			continue
		}
		ix, ok := s.indices[meta.Index]
		if !ok {
			ix = s.createIndex(meta.Index)
		}
		if err := checkMapping(ix.mappings, doc); err != nil {
			res["status"] = http.StatusBadRequest
			res["error"] = map[string]any{"type": err.typ, "reason": err.reason}
			hasErrors = true
			continue
		}
		if _, exists := ix.docs[meta.ID]; exists && name == "create" {
			res["status"] = http.StatusConflict
			res["error"] = map[string]any{"type": "version_conflict_engine_exception",
				"reason": fmt.Sprintf("[%s]: version conflict, document already exists (current version [1])", meta.ID), "index": meta.Index}
			hasErrors = true
			continue
		}
		if _, exists := ix.docs[meta.ID]; !exists {
			ix.order = append(ix.order, meta.ID)
		}
		ix.docs[meta.ID] = doc
		res["status"] = http.StatusCreated
		res["result"] = "created"
		res["_version"] = 1
	}
	if items == nil {
		return withStatus(http.StatusBadRequest, errorBody("action_request_validation_exception", "Validation Failed: 1: no requests added;"))
	}
	return http.StatusOK, map[string]any{"took": time.Since(start).Milliseconds(), "errors": hasErrors, "items": items}
}

func faultType(status int) string {
	switch {
	case status == http.StatusTooManyRequests:
		return "es_rejected_execution_exception"
	case status == http.StatusConflict:
		return "version_conflict_engine_exception"
	case status >= 500:
		return "unavailable_shards_exception"
	}
	return "mapper_parsing_exception"
}

// resolve expands a comma-separated index expression. Missing concrete
// names are an error unless ignoreUnavailable.
func (s *Server) resolve(expr string, ignoreUnavailable bool) ([]string, *esError) {
	set := map[string]bool{}
	for _, part := range strings.Split(expr, ",") {
		if part == "" {
			continue
		}
		if part == "_all" {
			part = "*"
		}
		if strings.ContainsAny(part, "*?") {
			for n := range s.indices {
				if ok, _ := path.Match(part, n); ok {
					set[n] = true
				}
			}
			continue
		}
		if _, ok := s.indices[part]; ok {
			set[part] = true
		} else if !ignoreUnavailable {
			return nil, &esError{http.StatusNotFound, "index_not_found_exception", "no such index [" + part + "]"}
		}
	}
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

type esError struct {
	status int
	typ    string
	reason string
}

func (e *esError) reply() (int, any) { return withStatus(e.status, errorBody(e.typ, e.reason)) }

type hit struct {
	index, id string
	src       map[string]any
	sort      []any
}

func (s *Server) handleSearch(expr string, q map[string][]string, body []byte) (int, any) {
	var req struct {
		Size        *int            `json:"size"`
		Query       json.RawMessage `json:"query"`
		Sort        []any           `json:"sort"`
		SearchAfter []any           `json:"search_after"`
		Aggs        json.RawMessage `json:"aggs"`
	}
	if len(body) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&req); err != nil {
			return withStatus(http.StatusBadRequest, errorBody("x_content_parse_exception", err.Error()))
		}
	}
	size := 10
	if req.Size != nil {
		size = *req.Size
	}
	if size < 0 || size > 10000 {
		return withStatus(http.StatusBadRequest, errorBody("illegal_argument_exception",
			"Result window is too large, from + size must be less than or equal to: [10000]"))
	}
	hits, eerr := s.match(expr, q, req.Query)
	if eerr != nil {
		return eerr.reply()
	}
	var aggs map[string]any
	if len(req.Aggs) > 0 {
		if aggs, eerr = compositeAggs(req.Aggs, hits); eerr != nil {
			return eerr.reply()
		}
	}
	sorts, eerr := parseSort(req.Sort)
	if eerr != nil {
		return eerr.reply()
	}
	if req.SearchAfter != nil && len(req.SearchAfter) != len(sorts) {
		return withStatus(http.StatusBadRequest, errorBody("illegal_argument_exception",
			"search_after has fewer or more values than the sort fields"))
	}
	for i := range hits {
		hits[i].sort = make([]any, len(sorts))
		for j, f := range sorts {
			hits[i].sort[j] = sortValue(hits[i], f.field)
		}
	}
	sort.SliceStable(hits, func(a, b int) bool { return compareKeys(hits[a].sort, hits[b].sort, sorts) < 0 })
	if req.SearchAfter != nil {
		after := make([]any, len(req.SearchAfter))
		for i, v := range req.SearchAfter {
			after[i] = normalize(v)
		}
		kept := hits[:0]
		for _, h := range hits {
			if compareKeys(h.sort, after, sorts) > 0 {
				kept = append(kept, h)
			}
		}
		hits = kept
	}
	if len(hits) > size {
		hits = hits[:size]
	}
	out := make([]any, len(hits))
	for i, h := range hits {
		m := map[string]any{"_index": h.index, "_id": h.id, "_score": nil, "_source": h.src}
		if len(sorts) > 0 {
			m["sort"] = h.sort
		}
		out[i] = m
	}
	answer := map[string]any{"took": 1, "timed_out": false,
		"_shards": map[string]any{"total": 1, "successful": 1, "skipped": 0, "failed": 0},
		"hits":    map[string]any{"max_score": nil, "hits": out}}
	if aggs != nil {
		answer["aggregations"] = aggs
	}
	return http.StatusOK, answer
}

// match returns the documents of expr matching query.
func (s *Server) match(expr string, q map[string][]string, query json.RawMessage) ([]hit, *esError) {
	ignore := len(q["ignore_unavailable"]) > 0 && q["ignore_unavailable"][0] == "true"
	names, eerr := s.resolve(expr, ignore)
	if eerr != nil {
		return nil, eerr
	}
	var qv any = map[string]any{"match_all": map[string]any{}}
	if len(query) > 0 {
		dec := json.NewDecoder(bytes.NewReader(query))
		dec.UseNumber()
		if err := dec.Decode(&qv); err != nil {
			return nil, &esError{http.StatusBadRequest, "parsing_exception", err.Error()}
		}
	}
	var hits []hit
	for _, n := range names {
		ix := s.indices[n]
		for _, id := range ix.order {
			doc, ok := ix.docs[id]
			if !ok {
				continue
			}
			m, eerr := evalQuery(qv, doc)
			if eerr != nil {
				return nil, eerr
			}
			if m {
				hits = append(hits, hit{index: n, id: id, src: doc})
			}
		}
	}
	return hits, nil
}

func (s *Server) handleDeleteByQuery(expr string, q map[string][]string, body []byte) (int, any) {
	var req struct {
		Query json.RawMessage `json:"query"`
	}
	if err := json.Unmarshal(body, &req); err != nil || len(req.Query) == 0 {
		return withStatus(http.StatusBadRequest, errorBody("action_request_validation_exception", "query is missing"))
	}
	hits, eerr := s.match(expr, q, req.Query)
	if eerr != nil {
		return eerr.reply()
	}
	for _, h := range hits {
		ix := s.indices[h.index]
		delete(ix.docs, h.id)
	}
	for _, ix := range s.indices {
		kept := ix.order[:0]
		for _, id := range ix.order {
			if _, ok := ix.docs[id]; ok {
				kept = append(kept, id)
			}
		}
		ix.order = kept
	}
	return http.StatusOK, map[string]any{"took": 1, "timed_out": false, "total": len(hits), "deleted": len(hits),
		"batches": 1, "version_conflicts": 0, "noops": 0, "failures": []any{}}
}
