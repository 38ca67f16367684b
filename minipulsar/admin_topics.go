package minipulsar

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// maxBody bounds admin request bodies.
const maxBody = 1 << 20

func (a *admin) routeTopics(mux *http.ServeMux) {
	const base = "/admin/v2/{domain}/{tenant}/{ns}"
	const topic = base + "/{topic}"
	mux.HandleFunc("GET "+base, a.handle(a.listTopics))
	mux.HandleFunc("GET "+base+"/partitioned", a.handle(a.listPartitioned))
	mux.HandleFunc("PUT "+topic, a.handle(a.createTopic))
	mux.HandleFunc("DELETE "+topic, a.handle(a.deleteTopic))
	mux.HandleFunc("PUT "+topic+"/partitions", a.handle(a.createPartitioned))
	mux.HandleFunc("POST "+topic+"/partitions", a.handle(a.updatePartitioned))
	mux.HandleFunc("GET "+topic+"/partitions", a.handle(a.partitionMetadata))
	mux.HandleFunc("DELETE "+topic+"/partitions", a.handle(a.deletePartitioned))
	mux.HandleFunc("PUT "+topic+"/unload", a.handle(a.unloadTopic))
	mux.HandleFunc("POST "+topic+"/terminate", a.handle(a.terminate))
	mux.HandleFunc("GET "+topic+"/stats", a.handle(a.topicStats))
	mux.HandleFunc("GET "+topic+"/partitioned-stats", a.handle(a.partitionedStats))
	mux.HandleFunc("GET "+topic+"/internalStats", a.handle(a.internalStats))
	mux.HandleFunc("GET "+topic+"/deduplicationEnabled", a.handle(a.getTopicDeduplication))
	mux.HandleFunc("POST "+topic+"/deduplicationEnabled", a.handle(a.setTopicDeduplication))
	mux.HandleFunc("DELETE "+topic+"/deduplicationEnabled", a.handle(a.setTopicDeduplication))
}

func (a *admin) listTopics(w http.ResponseWriter, r *http.Request) error {
	domain, ns, err := a.namespaceFromPath(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, nonNil(a.s.topicsOfNamespace(ns, domain == "persistent")))
	return nil
}

func (a *admin) listPartitioned(w http.ResponseWriter, r *http.Request) error {
	domain, ns, err := a.namespaceFromPath(r)
	if err != nil {
		return err
	}
	prefix := domain + "://" + ns + "/"
	a.s.stateMu.Lock()
	out := []string{}
	for name := range a.s.partitioned {
		if strings.HasPrefix(name, prefix) {
			out = append(out, name)
		}
	}
	a.s.stateMu.Unlock()
	sort.Strings(out)
	writeJSON(w, http.StatusOK, out)
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// createTopic creates a non-partitioned topic. The body (topic properties)
// is accepted and ignored.
func (a *admin) createTopic(w http.ResponseWriter, r *http.Request) error {
	tn, err := topicFromPath(r)
	if err != nil {
		return err
	}
	if err := a.s.CreateTopic(tn.String()); err != nil {
		return err
	}
	noContent(w)
	return nil
}

func (a *admin) deleteTopic(w http.ResponseWriter, r *http.Request) error {
	tn, err := topicFromPath(r)
	if err != nil {
		return err
	}
	if err := a.s.DeleteTopic(tn.String(), boolQuery(r, "force")); err != nil {
		return err
	}
	_ = a.s.SetTopicDeduplication(tn.String(), nil) // policies go with the topic, as on Pulsar
	noContent(w)
	return nil
}

func (a *admin) deletePartitioned(w http.ResponseWriter, r *http.Request) error {
	tn, err := topicFromPath(r)
	if err != nil {
		return err
	}
	if a.s.partitionsOf(tn) == 0 {
		return httpErr(http.StatusNotFound, reasonPartitionedNotFnd)
	}
	if err := a.s.DeleteTopic(tn.String(), boolQuery(r, "force")); err != nil {
		return err
	}
	_ = a.s.SetTopicDeduplication(tn.String(), nil) // policies go with the topic, as on Pulsar
	noContent(w)
	return nil
}

// readBody reads a request body up to maxBody.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, httpErrf(http.StatusBadRequest, "cannot read the request body: %v", err)
	}
	if len(b) > maxBody {
		return nil, httpErrf(http.StatusRequestEntityTooLarge, "request body larger than %d bytes", maxBody)
	}
	return b, nil
}

// parsePartitions reads a partition count sent as a bare JSON number (`3`,
// what pulsaradmin's update sends) or as partitioned-topic metadata
// (`{"partitions":3,"properties":{...}}`, what its create sends).
func parsePartitions(b []byte) (int, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return 0, httpErr(http.StatusBadRequest, "missing partition count: send a number or {\"partitions\":N}")
	}
	var n int64
	if b[0] == '{' {
		var md struct {
			Partitions *int64 `json:"partitions"`
		}
		if err := json.Unmarshal(b, &md); err != nil {
			return 0, httpErrf(http.StatusBadRequest, "bad partitioned topic metadata: %v", err)
		}
		if md.Partitions == nil {
			return 0, httpErr(http.StatusBadRequest, "partitioned topic metadata has no \"partitions\"")
		}
		n = *md.Partitions
	} else {
		var err error
		if n, err = strconv.ParseInt(string(b), 10, 32); err != nil {
			return 0, httpErrf(http.StatusBadRequest, "partition count %q is not an integer", b)
		}
	}
	if n <= 0 || n > math.MaxInt32 {
		return 0, httpErr(http.StatusNotAcceptable, reasonPartitionsCount)
	}
	return int(n), nil
}

func (a *admin) createPartitioned(w http.ResponseWriter, r *http.Request) error {
	tn, err := topicFromPath(r)
	if err != nil {
		return err
	}
	b, err := readBody(r)
	if err != nil {
		return err
	}
	n, err := parsePartitions(b)
	if err != nil {
		return err
	}
	if _, idx := tn.base(); idx >= 0 {
		return httpErr(http.StatusPreconditionFailed, reasonPartitionInName)
	}
	if err := a.s.CreatePartitionedTopic(tn.String(), n); err != nil {
		if errors.Is(err, ErrTopicExists) {
			return &apiError{status: http.StatusConflict, reason: reasonPartitionedExists, err: err}
		}
		return err
	}
	noContent(w)
	return nil
}

func (a *admin) updatePartitioned(w http.ResponseWriter, r *http.Request) error {
	tn, err := topicFromPath(r)
	if err != nil {
		return err
	}
	b, err := readBody(r)
	if err != nil {
		return err
	}
	n, err := parsePartitions(b)
	if err != nil {
		return err
	}
	old := a.s.partitionsOf(tn)
	if old == 0 {
		return httpErr(http.StatusNotFound, reasonPartitionedNotFnd)
	}
	if n <= old {
		return httpErr(http.StatusConflict, reasonPartitionsShrink)
	}
	if err := a.s.UpdatePartitionedTopic(tn.String(), n); err != nil {
		return err
	}
	noContent(w)
	return nil
}

type partitionedMetadata struct {
	Partitions int `json:"partitions"`
}

// partitionMetadata answers {"partitions":N}; 0 for a non-partitioned or
// unknown topic, as Pulsar does. Clients with an http:// service URL look
// topics up with this call (checkAllowAutoCreation=true), so then it honours
// RefuseLookups.
func (a *admin) partitionMetadata(w http.ResponseWriter, r *http.Request) error {
	tn, err := topicFromPath(r)
	if err != nil {
		return err
	}
	if r.URL.Query().Has("checkAllowAutoCreation") && a.s.faults.lookupsRefused() {
		return httpErr(http.StatusServiceUnavailable, errLookupRefused)
	}
	if err := a.s.checkNamespace(tn); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, partitionedMetadata{Partitions: a.s.partitionsOf(tn)})
	return nil
}

func (a *admin) unloadTopic(w http.ResponseWriter, r *http.Request) error {
	tn, err := topicFromPath(r)
	if err != nil {
		return err
	}
	if err := a.s.UnloadTopic(tn.String()); err != nil {
		return err
	}
	noContent(w)
	return nil
}

// existing fails with 404 unless the topic exists, partitioned or not.
func (a *admin) existing(tn topicName) error {
	if a.s.partitionsOf(tn) > 0 {
		return nil
	}
	_, err := a.s.getTopic(tn, false)
	return err
}

// getTopicDeduplication answers the topic's own deduplication policy (null
// when unset), or with applied=true the one in force (topic, else
// namespace, else broker).
func (a *admin) getTopicDeduplication(w http.ResponseWriter, r *http.Request) error {
	tn, err := topicFromPath(r)
	if err != nil {
		return err
	}
	if err := a.existing(tn); err != nil {
		return err
	}
	if boolQuery(r, "applied") {
		writeJSON(w, http.StatusOK, a.s.dedupEnabled(tn))
		return nil
	}
	on, set, err := a.s.TopicDeduplication(tn.String())
	if err != nil {
		return err
	}
	if !set {
		writeJSON(w, http.StatusOK, nil)
		return nil
	}
	writeJSON(w, http.StatusOK, on)
	return nil
}

// setTopicDeduplication sets (POST, body true or false) or removes (DELETE)
// the topic's deduplication policy.
func (a *admin) setTopicDeduplication(w http.ResponseWriter, r *http.Request) error {
	tn, err := topicFromPath(r)
	if err != nil {
		return err
	}
	var on *bool
	if r.Method == http.MethodPost {
		b, err := readBody(r)
		if err != nil {
			return err
		}
		v, err := strconv.ParseBool(string(bytes.TrimSpace(b)))
		if err != nil {
			return httpErrf(http.StatusBadRequest, "deduplication body %q: want true or false", bytes.TrimSpace(b))
		}
		on = &v
	}
	if err := a.existing(tn); err != nil {
		return err
	}
	if err := a.s.SetTopicDeduplication(tn.String(), on); err != nil {
		return err
	}
	noContent(w)
	return nil
}
