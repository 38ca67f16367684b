package tracer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esapi"
)

// ElasticOptions configures the Elasticsearch store. Addresses is required;
// zero values of the others take the defaults noted.
type ElasticOptions struct {
	Addresses []string // e.g. http://127.0.0.1:9200
	Username  string
	Password  string
	APIKey    string

	// IndexPrefix names the indices: <prefix>-events-YYYY.MM.DD (UTC day of
	// the event time). "pulsar-sidecar".
	IndexPrefix string
	// TemplateName is the composable index template put by Start.
	// "<prefix>-events".
	TemplateName string
	// Shards and Replicas go into the template when > 0 (else the cluster's
	// defaults apply). RefreshInterval likewise when set (e.g. "5s").
	Shards, Replicas int
	RefreshInterval  string
	// Refresh is passed to _bulk and _delete_by_query ("true", "wait_for");
	// leave it empty in production. Tests against a real cluster set
	// "wait_for" to read their writes.
	Refresh string

	RequestTimeout  time.Duration // deadline of one HTTP request; 10s
	MaxRetries      int           // retries of a bulk request or of its 429/5xx items within one Write; 2 (negative: none)
	RetryMinBackoff time.Duration // 100ms
	RetryMaxBackoff time.Duration // 2s

	BreakerThreshold int           // consecutive failed bulk requests that open the breaker; 5
	BreakerCooldown  time.Duration // how long it stays open before one trial request; 30s

	// CACert (PEM) trusts a private CA; CertificateFingerprint pins the
	// server's certificate, or one of its chain, by the hex SHA-256 that
	// Elasticsearch prints on first start (colons allowed). Both apply to
	// the store's own transport, so they cannot go with Transport.
	CACert                 []byte
	CertificateFingerprint string

	Transport http.RoundTripper // nil: an http.Transport owned (and closed) by the store
	Logger    *slog.Logger      // slog.Default() when nil
}

func (o *ElasticOptions) defaults() error {
	if len(o.Addresses) == 0 {
		return errors.New("tracer: elasticsearch needs at least one address")
	}
	if o.IndexPrefix == "" {
		o.IndexPrefix = "pulsar-sidecar"
	}
	if o.TemplateName == "" {
		o.TemplateName = o.IndexPrefix + "-events"
	}
	setDefault(&o.RequestTimeout, 10*time.Second)
	if o.MaxRetries == 0 {
		o.MaxRetries = 2
	}
	o.MaxRetries = max(o.MaxRetries, 0)
	setDefault(&o.RetryMinBackoff, 100*time.Millisecond)
	setDefault(&o.RetryMaxBackoff, 2*time.Second)
	setDefault(&o.BreakerThreshold, 5)
	setDefault(&o.BreakerCooldown, 30*time.Second)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

// ErrCircuitOpen is returned by Elastic.Write while the circuit breaker is
// open. It is retriable.
var ErrCircuitOpen = errors.New("tracer: elasticsearch circuit breaker open")

// ElasticStats counts what the Elasticsearch store saw.
type ElasticStats struct {
	BulkRequests   uint64 // _bulk requests sent
	FailedRequests uint64 // _bulk requests that failed whole (network, timeout, 429, 5xx)
	Created        uint64 // documents created (201)
	Conflicts      uint64 // documents already there (409), counted as stored
	RetriedItems   uint64 // item results 429/5xx that were sent again
	Rejected       uint64 // documents refused for good (400 and other 4xx); logged
	BreakerOpened  uint64 // times the circuit breaker opened
}

// Elastic is the Elasticsearch Store. Events go to daily indices
// <prefix>-events-YYYY.MM.DD shaped by a composable index template; each is
// written with a bulk "create" action under its deterministic id, so a
// retried write cannot duplicate it (409 counts as success). Queries search
// <prefix>-events-* (or the daily indices of a time range) with
// ignore_unavailable and page with search_after on (ts, id).
//
// Its bulk bodies are built here, not by esutil.BulkIndexer, whose Add blocks.
type Elastic struct {
	opts      ElasticOptions
	log       *slog.Logger
	client    *elasticsearch.Client
	transport *http.Transport // owned, nil when given
	breaker   *breaker
	sleep     func(ctx context.Context, d time.Duration) error

	bulkRequests, failedRequests, created, conflicts, retriedItems, rejected atomic.Uint64
	templated                                                                atomic.Bool // the index template is in place (Start succeeded)
}

var _ Store = (*Elastic)(nil)

// NewElastic builds the store. It sends nothing: call Start.
func NewElastic(opts ElasticOptions) (*Elastic, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	e := &Elastic{
		opts:    opts,
		log:     opts.Logger.With("component", "tracer.elastic"),
		breaker: newBreaker(opts.BreakerThreshold, opts.BreakerCooldown),
		sleep:   sleepCtx,
	}
	tlsConfig, err := elasticTLS(opts.CACert, opts.CertificateFingerprint)
	if err != nil {
		return nil, err
	}
	if tlsConfig != nil && opts.Transport != nil {
		return nil, errors.New("tracer: elasticsearch CACert and CertificateFingerprint apply to the store's own transport, not to a given Transport")
	}
	rt := opts.Transport
	if rt == nil {
		e.transport = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost:   8,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: opts.RequestTimeout,
			TLSHandshakeTimeout:   5 * time.Second,
			TLSClientConfig:       tlsConfig,
		}
		rt = e.transport
	}
	client, err := elasticsearch.NewClient(elasticsearch.Config{
		Addresses:    opts.Addresses,
		Username:     opts.Username,
		Password:     opts.Password,
		APIKey:       opts.APIKey,
		Transport:    rt,
		DisableRetry: true, // Write retries per item, with backoff and the breaker
	})
	if err != nil {
		return nil, fmt.Errorf("tracer: elasticsearch client: %w", err)
	}
	e.client = client
	return e, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Start puts the index template, so that indices created by later writes get
// the mappings. It is safe to call on every start: the template is replaced.
func (e *Elastic) Start(ctx context.Context) error {
	body, err := json.Marshal(e.template())
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, e.opts.RequestTimeout)
	defer cancel()
	res, err := esapi.IndicesPutIndexTemplateRequest{Name: e.opts.TemplateName, Body: bytes.NewReader(body)}.Do(rctx, e.client)
	if err != nil {
		return fmt.Errorf("tracer: put index template: %w", err)
	}
	defer drain(res.Body)
	if res.IsError() {
		return fmt.Errorf("tracer: put index template: %s: %s", res.Status(), readSnippet(res.Body))
	}
	e.templated.Store(true)
	return nil
}

// Close releases idle connections. It is idempotent.
func (e *Elastic) Close() error {
	err := e.client.Close(context.Background())
	if errors.Is(err, elasticsearch.ErrAlreadyClosed) {
		err = nil
	}
	if e.transport != nil {
		e.transport.CloseIdleConnections()
	}
	return err
}

// Stats returns the store's counters.
func (e *Elastic) Stats() ElasticStats {
	e.breaker.mu.Lock()
	opened := e.breaker.opened
	e.breaker.mu.Unlock()
	return ElasticStats{
		BulkRequests:   e.bulkRequests.Load(),
		FailedRequests: e.failedRequests.Load(),
		Created:        e.created.Load(),
		Conflicts:      e.conflicts.Load(),
		RetriedItems:   e.retriedItems.Load(),
		Rejected:       e.rejected.Load(),
		BreakerOpened:  opened,
	}
}

// indexPattern matches every event index.
func (e *Elastic) indexPattern() string { return e.opts.IndexPrefix + "-events-*" }

// indexFor names the daily index of t.
func (e *Elastic) indexFor(t time.Time) string {
	return e.opts.IndexPrefix + "-events-" + t.UTC().Format("2006.01.02")
}

func (e *Elastic) template() map[string]any {
	kw := map[string]any{"type": "keyword", "ignore_above": 256}
	settings := map[string]any{}
	if e.opts.Shards > 0 {
		settings["number_of_shards"] = e.opts.Shards
	}
	if e.opts.Replicas > 0 {
		settings["number_of_replicas"] = e.opts.Replicas
	}
	if e.opts.RefreshInterval != "" {
		settings["refresh_interval"] = e.opts.RefreshInterval
	}
	tmpl := map[string]any{
		"mappings": map[string]any{
			"dynamic": "strict",
			"properties": map[string]any{
				"id": kw, "type": kw, "uid": kw, "message_id": kw, "topic": kw, "key": kw, "tags": kw,
				"app": kw, "client_ip": kw, "node": kw, "cluster": kw, "subscription": kw, "consumer": kw,
				"time":       map[string]any{"type": "date", "format": "strict_date_optional_time||epoch_millis"},
				"ts":         map[string]any{"type": "long"},
				"latency_ns": map[string]any{"type": "long"},
				"error":      map[string]any{"type": "keyword", "ignore_above": 1024},
				"attempt":    map[string]any{"type": "integer"},
				"props":      map[string]any{"type": "flattened"},
			},
		},
	}
	if len(settings) > 0 {
		tmpl["settings"] = settings
	}
	return map[string]any{
		"index_patterns": []string{e.indexPattern()},
		"priority":       200,
		"template":       tmpl,
		"_meta":          map[string]any{"managed_by": "pulsar-sidecar tracer", "schema_version": 1},
	}
}

// esDoc is an event as stored in Elasticsearch. ts (microseconds) is what
// queries range and sort on; time is the same instant as a date for people
// and dashboards.
type esDoc struct {
	ID           string            `json:"id"`
	Type         Type              `json:"type"`
	UID          string            `json:"uid"`
	MessageID    string            `json:"message_id,omitempty"`
	Topic        string            `json:"topic,omitempty"`
	Key          string            `json:"key,omitempty"`
	Tags         []string          `json:"tags,omitempty"`
	App          string            `json:"app,omitempty"`
	ClientIP     string            `json:"client_ip,omitempty"`
	Node         string            `json:"node,omitempty"`
	Cluster      string            `json:"cluster,omitempty"`
	Subscription string            `json:"subscription,omitempty"`
	Consumer     string            `json:"consumer,omitempty"`
	Time         string            `json:"time"`
	TS           int64             `json:"ts"`
	LatencyNS    int64             `json:"latency_ns,omitempty"`
	Error        string            `json:"error,omitempty"`
	Attempt      int               `json:"attempt,omitempty"`
	Props        map[string]string `json:"props,omitempty"`
}

func toDoc(ev *Event) esDoc {
	t := time.UnixMicro(ev.Time.UnixMicro()).UTC()
	return esDoc{
		ID: ev.ID, Type: ev.Type, UID: ev.UID, MessageID: ev.MessageID, Topic: ev.Topic, Key: ev.Key, Tags: ev.Tags,
		App: ev.App, ClientIP: ev.ClientIP, Node: ev.Node, Cluster: ev.Cluster, Subscription: ev.Subscription,
		Consumer: ev.Consumer, Time: t.Format("2006-01-02T15:04:05.000000Z"), TS: t.UnixMicro(),
		LatencyNS: int64(ev.Latency), Error: ev.Error, Attempt: ev.Attempt, Props: ev.Properties,
	}
}

func (d *esDoc) event() Event {
	return Event{
		ID: d.ID, Type: d.Type, UID: d.UID, MessageID: d.MessageID, Topic: d.Topic, Key: d.Key, Tags: d.Tags,
		App: d.App, ClientIP: d.ClientIP, Node: d.Node, Cluster: d.Cluster, Subscription: d.Subscription,
		Consumer: d.Consumer, Time: time.UnixMicro(d.TS).UTC(), Latency: time.Duration(d.LatencyNS),
		Error: d.Error, Attempt: d.Attempt, Properties: d.Props,
	}
}

// bulkResponse is the part of a _bulk answer we read.
type bulkResponse struct {
	Errors bool                          `json:"errors"`
	Items  []map[string]bulkItemResponse `json:"items"`
}

type bulkItemResponse struct {
	Index  string `json:"_index"`
	ID     string `json:"_id"`
	Status int    `json:"status"`
	Error  *struct {
		Type   string `json:"type"`
		Reason string `json:"reason"`
	} `json:"error"`
}

// Write stores events with _bulk create actions. Items answered 201 or 409
// are stored; 429 and 5xx items, and whole requests that fail (network,
// timeout, 429, 5xx, a server that is not Elasticsearch), are retried up to
// MaxRetries times with exponential backoff, then reported as retriable;
// other 4xx items (400 mapping errors...) are counted, logged and reported
// as permanent. While the circuit breaker is open, Write fails at once with
// ErrCircuitOpen.
func (e *Elastic) Write(ctx context.Context, events []Event) error {
	if !e.templated.Load() {
		// Start could not reach the cluster: put the template before the
		// first document, or the daily indices get dynamic mappings. A
		// failure here is retriable, so the batch waits in the outbox.
		if err := e.Start(ctx); err != nil {
			return fmt.Errorf("tracer: index template not installed yet: %w", err)
		}
	}
	var failed []ItemError
	if slices.ContainsFunc(events, func(ev Event) bool { return ev.ID == "" }) {
		events = slices.Clone(events) // fill ids without touching the caller's slice
	}
	pending := make([]int, 0, len(events)) // indexes into events still to store
	for i := range events {
		if err := events[i].Validate(); err != nil {
			failed = append(failed, ItemError{Index: i, Status: http.StatusBadRequest, Reason: err.Error()})
			e.rejected.Add(1)
			continue
		}
		ensureID(&events[i])
		pending = append(pending, i)
	}
	backoff := e.opts.RetryMinBackoff
	var lastErr error
	for attempt := 0; len(pending) > 0; attempt++ {
		if attempt > 0 {
			if attempt > e.opts.MaxRetries || e.sleep(ctx, backoff) != nil {
				break
			}
			backoff = min(2*backoff, e.opts.RetryMaxBackoff)
		}
		if !e.breaker.allow() {
			lastErr = ErrCircuitOpen
			break
		}
		var err error
		pending, err = e.bulk(ctx, events, pending, &failed)
		if err != nil {
			lastErr = err
			e.failedRequests.Add(1)
			e.breaker.failure()
			if !Retriable(err) {
				for _, i := range pending {
					failed = append(failed, ItemError{Index: i, Status: http.StatusBadRequest, Reason: err.Error()})
				}
				e.rejected.Add(uint64(len(pending)))
				pending = nil
			}
			continue
		}
		e.breaker.success()
		if len(pending) > 0 {
			e.retriedItems.Add(uint64(len(pending)))
		}
	}
	if len(pending) == len(events) && len(failed) == 0 && lastErr != nil {
		return fmt.Errorf("tracer: elasticsearch bulk: %w", lastErr)
	}
	for _, i := range pending {
		reason := "not stored after retries"
		if lastErr != nil {
			reason = lastErr.Error()
		}
		failed = append(failed, ItemError{Index: i, Status: http.StatusServiceUnavailable, Reason: reason, Retriable: true})
	}
	if len(failed) > 0 {
		return &BatchError{Items: failed}
	}
	return nil
}

// bulk sends one _bulk request for events[pending...] and returns the
// indexes to retry. Permanent item failures are appended to failed. An error
// means the request as a whole failed and nothing is known of its items.
func (e *Elastic) bulk(ctx context.Context, events []Event, pending []int, failed *[]ItemError) ([]int, error) {
	body := e.bulkBody(events, pending)
	rctx, cancel := context.WithTimeout(ctx, e.opts.RequestTimeout)
	defer cancel()
	e.bulkRequests.Add(1)
	res, err := esapi.BulkRequest{Body: bytes.NewReader(body), Refresh: e.opts.Refresh}.Do(rctx, e.client)
	if err != nil {
		return pending, err
	}
	defer drain(res.Body)
	if res.StatusCode == http.StatusBadRequest || res.StatusCode == http.StatusRequestEntityTooLarge {
		return pending, fmt.Errorf("%w: bulk request refused: %s: %s", ErrPermanent, res.Status(), readSnippet(res.Body))
	}
	if res.IsError() {
		return pending, fmt.Errorf("bulk request: %s: %s", res.Status(), readSnippet(res.Body))
	}
	var br bulkResponse
	if err := json.NewDecoder(res.Body).Decode(&br); err != nil {
		return pending, fmt.Errorf("bulk response: %w", err)
	}
	if len(br.Items) != len(pending) {
		return pending, fmt.Errorf("bulk response has %d items for %d actions", len(br.Items), len(pending))
	}
	var retry []int
	for n, item := range br.Items {
		i := pending[n]
		var r bulkItemResponse
		for _, v := range item { // one key: the action name
			r = v
		}
		switch {
		case r.Status == http.StatusOK || r.Status == http.StatusCreated:
			e.created.Add(1)
		case r.Status == http.StatusConflict:
			e.conflicts.Add(1)
		case r.Status == http.StatusTooManyRequests || r.Status >= 500:
			retry = append(retry, i)
		default:
			reason := http.StatusText(r.Status)
			if r.Error != nil {
				reason = r.Error.Type + ": " + r.Error.Reason
			}
			e.rejected.Add(1)
			e.log.Error("elasticsearch refused a trace event", "id", events[i].ID, "uid", events[i].UID, "index", r.Index, "status", r.Status, "reason", reason)
			*failed = append(*failed, ItemError{Index: i, Status: r.Status, Reason: reason})
		}
	}
	return retry, nil
}

// bulkBody builds the NDJSON body: one create action and one document per
// event.
func (e *Elastic) bulkBody(events []Event, pending []int) []byte {
	var buf bytes.Buffer
	buf.Grow(len(pending) * 512)
	enc := json.NewEncoder(&buf) // Encode ends each value with '\n'
	enc.SetEscapeHTML(false)
	type meta struct {
		Index string `json:"_index"`
		ID    string `json:"_id"`
	}
	for _, i := range pending {
		ev := &events[i]
		_ = enc.Encode(map[string]meta{"create": {Index: e.indexFor(ev.Time), ID: ev.ID}})
		_ = enc.Encode(toDoc(ev))
	}
	return buf.Bytes()
}

func drain(r io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r, 1<<20))
	_ = r.Close()
}

func readSnippet(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, 512))
	return strings.TrimSpace(string(b))
}
