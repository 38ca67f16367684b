package minipulsar

import (
	"bytes"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// defaultNamespaces exist from the start, as on a standalone Pulsar.
var defaultNamespaces = []string{"public/default", "pulsar/system"}

const defaultCluster = "standalone"

func (a *admin) routeNamespaces(mux *http.ServeMux) {
	mux.HandleFunc("GET /admin/v2/tenants", a.handle(a.listTenants))
	mux.HandleFunc("GET /admin/v2/tenants/{tenant}", a.handle(a.getTenant))
	mux.HandleFunc("PUT /admin/v2/tenants/{tenant}", a.handle(a.createTenant))
	mux.HandleFunc("GET /admin/v2/clusters", a.handle(a.listClusters))
	mux.HandleFunc("GET /admin/v2/namespaces/{tenant}", a.handle(a.listNamespaces))
	mux.HandleFunc("PUT /admin/v2/namespaces/{tenant}/{ns}", a.handle(a.createNamespace))
	mux.HandleFunc("GET /admin/v2/namespaces/{tenant}/{ns}", a.handle(a.namespacePolicies))
	mux.HandleFunc("DELETE /admin/v2/namespaces/{tenant}/{ns}", a.handle(a.deleteNamespace))
	mux.HandleFunc("GET /admin/v2/namespaces/{tenant}/{ns}/topics", a.handle(a.namespaceTopics))
	mux.HandleFunc("GET /admin/v2/namespaces/{tenant}/{ns}/deduplication", a.handle(a.getDeduplication))
	mux.HandleFunc("POST /admin/v2/namespaces/{tenant}/{ns}/deduplication", a.handle(a.setDeduplication))
	mux.HandleFunc("DELETE /admin/v2/namespaces/{tenant}/{ns}/deduplication", a.handle(a.removeDeduplication))
	mux.HandleFunc("GET /admin/v2/schemas/{tenant}/{ns}/{topic}/schema", a.handle(a.noSchema))
	mux.HandleFunc("GET /admin/v2/schemas/{tenant}/{ns}/{topic}/schema/{version}", a.handle(a.noSchema))
	mux.HandleFunc("GET /lookup/v2/topic/{domain}/{tenant}/{ns}/{topic}", a.handle(a.lookup))
	mux.HandleFunc("GET /lookup/v2/topic/{domain}/{tenant}/{ns}/{topic}/bundle", a.handle(a.lookupBundle))
}

// knownNamespaces are the defaults, those created over REST and those that
// hold topics or settings.
func (a *admin) knownNamespaces() map[string]struct{} {
	out := map[string]struct{}{}
	for _, ns := range defaultNamespaces {
		out[ns] = struct{}{}
	}
	a.nsMu.Lock()
	for ns := range a.namespaces {
		out[ns] = struct{}{}
	}
	a.nsMu.Unlock()
	add := func(full string) {
		if tn, err := parseTopic(full); err == nil {
			out[tn.ns()] = struct{}{}
		}
	}
	a.s.stateMu.Lock()
	for name := range a.s.topics {
		add(name)
	}
	for name := range a.s.partitioned {
		add(name)
	}
	for ns := range a.s.dedupNS {
		out[ns] = struct{}{}
	}
	a.s.stateMu.Unlock()
	return out
}

func (a *admin) knownTenants() map[string]struct{} {
	out := map[string]struct{}{}
	for ns := range a.knownNamespaces() {
		out[ns[:strings.IndexByte(ns+"/", '/')]] = struct{}{}
	}
	a.nsMu.Lock()
	for t := range a.tenants {
		out[t] = struct{}{}
	}
	a.nsMu.Unlock()
	return out
}

func sortedKeys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (a *admin) listTenants(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, sortedKeys(a.knownTenants()))
	return nil
}

type tenantInfo struct {
	AdminRoles      []string `json:"adminRoles"`
	AllowedClusters []string `json:"allowedClusters"`
}

func (a *admin) getTenant(w http.ResponseWriter, r *http.Request) error {
	if _, ok := a.knownTenants()[r.PathValue("tenant")]; !ok {
		return httpErr(http.StatusNotFound, "Tenant does not exist")
	}
	writeJSON(w, http.StatusOK, tenantInfo{AdminRoles: []string{}, AllowedClusters: []string{defaultCluster}})
	return nil
}

func (a *admin) createTenant(w http.ResponseWriter, r *http.Request) error {
	tenant := r.PathValue("tenant")
	if _, ok := a.knownTenants()[tenant]; ok {
		return httpErr(http.StatusConflict, "Tenant already exists")
	}
	a.nsMu.Lock()
	a.tenants[tenant] = struct{}{}
	a.nsMu.Unlock()
	noContent(w)
	return nil
}

func (a *admin) listClusters(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, []string{defaultCluster})
	return nil
}

func (a *admin) listNamespaces(w http.ResponseWriter, r *http.Request) error {
	tenant := r.PathValue("tenant")
	if _, ok := a.knownTenants()[tenant]; !ok {
		return httpErr(http.StatusNotFound, "Tenant does not exist")
	}
	out := []string{}
	for _, ns := range sortedKeys(a.knownNamespaces()) {
		if strings.HasPrefix(ns, tenant+"/") {
			out = append(out, ns)
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *admin) createNamespace(w http.ResponseWriter, r *http.Request) error {
	ns := r.PathValue("tenant") + "/" + r.PathValue("ns")
	if _, ok := a.knownNamespaces()[ns]; ok {
		return httpErr(http.StatusConflict, reasonNamespaceExists)
	}
	a.nsMu.Lock()
	a.namespaces[ns] = struct{}{}
	a.nsMu.Unlock()
	noContent(w)
	return nil
}

// deleteNamespace removes a namespace and its settings. One that still holds
// topics is deleted only with force, which deletes them too (disconnecting
// their clients). A default namespace stays listed.
func (a *admin) deleteNamespace(w http.ResponseWriter, r *http.Request) error {
	ns := r.PathValue("tenant") + "/" + r.PathValue("ns")
	if _, ok := a.knownNamespaces()[ns]; !ok {
		return httpErr(http.StatusNotFound, "Namespace does not exist")
	}
	var names []string // partitioned topics, and topics not partitions of one
	a.s.stateMu.Lock()
	for name := range a.s.partitioned {
		names = append(names, name)
	}
	for name, t := range a.s.topics {
		if base, part := t.name.base(); part < 0 || a.s.partitioned[base.String()] == 0 {
			names = append(names, name)
		}
	}
	a.s.stateMu.Unlock()
	var victims []string
	for _, name := range names {
		if tn, err := parseTopic(name); err == nil && tn.ns() == ns {
			victims = append(victims, name)
		}
	}
	if len(victims) > 0 && !boolQuery(r, "force") {
		return httpErr(http.StatusConflict, "Cannot delete non empty namespace")
	}
	for _, name := range victims {
		if err := a.s.DeleteTopic(name, true); err != nil && !errors.Is(err, ErrTopicNotFound) {
			return err
		}
	}
	a.s.stateMu.Lock()
	delete(a.s.dedupNS, ns)
	a.s.stateMu.Unlock()
	a.nsMu.Lock()
	delete(a.namespaces, ns)
	a.nsMu.Unlock()
	noContent(w)
	return nil
}

// namespacePolicies answers the few policies minipulsar has.
func (a *admin) namespacePolicies(w http.ResponseWriter, r *http.Request) error {
	ns := r.PathValue("tenant") + "/" + r.PathValue("ns")
	if _, ok := a.knownNamespaces()[ns]; !ok {
		return httpErr(http.StatusNotFound, "Namespace does not exist")
	}
	a.s.stateMu.Lock()
	var dedup *bool
	if v, ok := a.s.dedupNS[ns]; ok {
		dedup = &v
	}
	a.s.stateMu.Unlock()
	writeJSON(w, http.StatusOK, struct {
		ReplicationClusters  []string `json:"replication_clusters"`
		DeduplicationEnabled *bool    `json:"deduplicationEnabled"`
	}{[]string{defaultCluster}, dedup})
	return nil
}

// namespaceTopics lists a namespace's non-partitioned topics and partitions,
// as the client's HTTP lookup asks for pattern subscriptions
// (mode PERSISTENT, NON_PERSISTENT or ALL).
func (a *admin) namespaceTopics(w http.ResponseWriter, r *http.Request) error {
	ns := r.PathValue("tenant") + "/" + r.PathValue("ns")
	var out []string
	switch mode := strings.ToUpper(r.URL.Query().Get("mode")); mode {
	case "", "PERSISTENT":
		out = a.s.topicsOfNamespace(ns, true)
	case "NON_PERSISTENT":
		out = a.s.topicsOfNamespace(ns, false)
	case "ALL":
		out = append(a.s.topicsOfNamespace(ns, true), a.s.topicsOfNamespace(ns, false)...)
	default:
		return httpErrf(http.StatusBadRequest, "mode %q: want PERSISTENT, NON_PERSISTENT or ALL", mode)
	}
	writeJSON(w, http.StatusOK, nonNil(out))
	return nil
}

func (a *admin) getDeduplication(w http.ResponseWriter, r *http.Request) error {
	tn := topicName{tenant: r.PathValue("tenant"), namespace: r.PathValue("ns")}
	writeJSON(w, http.StatusOK, a.s.dedupEnabled(tn))
	return nil
}

// setDeduplication turns broker deduplication on or off for a namespace;
// the body is a JSON boolean.
func (a *admin) setDeduplication(w http.ResponseWriter, r *http.Request) error {
	b, err := readBody(r)
	if err != nil {
		return err
	}
	on, err := strconv.ParseBool(string(bytes.TrimSpace(b)))
	if err != nil {
		return httpErrf(http.StatusBadRequest, "deduplication body %q: want true or false", bytes.TrimSpace(b))
	}
	a.s.SetDeduplication(r.PathValue("tenant")+"/"+r.PathValue("ns"), on)
	noContent(w)
	return nil
}

// removeDeduplication drops the namespace's setting: Options.Deduplication
// applies again.
func (a *admin) removeDeduplication(w http.ResponseWriter, r *http.Request) error {
	a.s.stateMu.Lock()
	delete(a.s.dedupNS, r.PathValue("tenant")+"/"+r.PathValue("ns"))
	a.s.stateMu.Unlock()
	noContent(w)
	return nil
}

func (a *admin) noSchema(_ http.ResponseWriter, _ *http.Request) error {
	return httpErr(http.StatusNotFound, reasonSchemaNotFound)
}

type lookupData struct {
	BrokerURL    string `json:"brokerUrl"`
	BrokerURLTLS string `json:"brokerUrlTls"`
	HTTPURL      string `json:"httpUrl"`
	HTTPURLTLS   string `json:"httpUrlTls"`
	NativeURL    string `json:"nativeUrl"`
}

// lookup is HTTP topic lookup: this broker owns every topic. It honours
// RefuseLookups with 503.
func (a *admin) lookup(w http.ResponseWriter, r *http.Request) error {
	if _, err := topicFromPath(r); err != nil {
		return err
	}
	if a.s.faults.lookupsRefused() {
		return httpErr(http.StatusServiceUnavailable, errLookupRefused)
	}
	writeJSON(w, http.StatusOK, lookupData{
		BrokerURL: a.s.ServiceURL(),
		HTTPURL:   a.s.AdminURL(),
		NativeURL: a.s.ServiceURL(),
	})
	return nil
}

func (a *admin) lookupBundle(w http.ResponseWriter, r *http.Request) error {
	if _, err := topicFromPath(r); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte("0x00000000_0xffffffff"))
	return nil
}
