package minipulsar

import (
	"bytes"
	"errors"
	"net/http"
	"strconv"
	"strings"
)

const defaultCluster = "standalone"

func (a *admin) routeNamespaces(mux *http.ServeMux) {
	mux.HandleFunc("GET /admin/v2/tenants", a.handle(a.listTenants))
	mux.HandleFunc("GET /admin/v2/tenants/{tenant}", a.handle(a.getTenant))
	mux.HandleFunc("PUT /admin/v2/tenants/{tenant}", a.handle(a.createTenant))
	mux.HandleFunc("POST /admin/v2/tenants/{tenant}", a.handle(a.updateTenant))
	mux.HandleFunc("DELETE /admin/v2/tenants/{tenant}", a.handle(a.deleteTenant))
	mux.HandleFunc("GET /admin/v2/clusters", a.handle(a.listClusters))
	mux.HandleFunc("GET /admin/v2/namespaces/{tenant}", a.handle(a.listNamespaces))
	mux.HandleFunc("PUT /admin/v2/namespaces/{tenant}/{ns}", a.handle(a.createNamespace))
	mux.HandleFunc("GET /admin/v2/namespaces/{tenant}/{ns}", a.handle(a.namespacePolicies))
	mux.HandleFunc("DELETE /admin/v2/namespaces/{tenant}/{ns}", a.handle(a.deleteNamespace))
	mux.HandleFunc("GET /admin/v2/namespaces/{tenant}/{ns}/topics", a.handle(a.namespaceTopics))
	mux.HandleFunc("GET /admin/v2/namespaces/{tenant}/{ns}/deduplication", a.handle(a.getDeduplication))
	mux.HandleFunc("POST /admin/v2/namespaces/{tenant}/{ns}/deduplication", a.handle(a.setDeduplication))
	mux.HandleFunc("DELETE /admin/v2/namespaces/{tenant}/{ns}/deduplication", a.handle(a.removeDeduplication))
	mux.HandleFunc("GET /lookup/v2/topic/{domain}/{tenant}/{ns}/{topic}", a.handle(a.lookup))
	mux.HandleFunc("GET /lookup/v2/topic/{domain}/{tenant}/{ns}/{topic}/bundle", a.handle(a.lookupBundle))
}

func (a *admin) listTenants(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, a.s.Tenants())
	return nil
}

type tenantInfo struct {
	AdminRoles      []string `json:"adminRoles"`
	AllowedClusters []string `json:"allowedClusters"`
}

func (a *admin) getTenant(w http.ResponseWriter, r *http.Request) error {
	if !a.s.tenantExists(r.PathValue("tenant")) {
		return httpErr(http.StatusNotFound, reasonTenantNotFound)
	}
	writeJSON(w, http.StatusOK, tenantInfo{AdminRoles: []string{}, AllowedClusters: []string{defaultCluster}})
	return nil
}

// createTenant creates a tenant; the body (admin roles, allowed clusters)
// is accepted and ignored.
func (a *admin) createTenant(w http.ResponseWriter, r *http.Request) error {
	if err := a.s.CreateTenant(r.PathValue("tenant")); err != nil {
		return err
	}
	noContent(w)
	return nil
}

// updateTenant accepts a tenant's new info for an existing tenant.
func (a *admin) updateTenant(w http.ResponseWriter, r *http.Request) error {
	if !a.s.tenantExists(r.PathValue("tenant")) {
		return httpErr(http.StatusNotFound, reasonTenantNotFound)
	}
	noContent(w)
	return nil
}

func (a *admin) deleteTenant(w http.ResponseWriter, r *http.Request) error {
	if err := a.s.DeleteTenant(r.PathValue("tenant")); err != nil {
		return err
	}
	noContent(w)
	return nil
}

func (a *admin) listClusters(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, []string{defaultCluster})
	return nil
}

func (a *admin) listNamespaces(w http.ResponseWriter, r *http.Request) error {
	out, err := a.s.Namespaces(r.PathValue("tenant"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// createNamespace creates a namespace; the body (policies) is accepted and
// ignored.
func (a *admin) createNamespace(w http.ResponseWriter, r *http.Request) error {
	if err := a.s.CreateNamespace(r.PathValue("tenant") + "/" + r.PathValue("ns")); err != nil {
		return err
	}
	noContent(w)
	return nil
}

// deleteNamespace removes a namespace and its settings. One that still holds
// topics is deleted only with force, which deletes them too (disconnecting
// their clients). A default namespace stays listed.
func (a *admin) deleteNamespace(w http.ResponseWriter, r *http.Request) error {
	ns := r.PathValue("tenant") + "/" + r.PathValue("ns")
	if !a.s.namespaceExists(ns) {
		return httpErr(http.StatusNotFound, reasonNamespaceNotFound)
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
	a.s.forgetNamespace(ns)
	noContent(w)
	return nil
}

// namespacePolicies answers the few policies minipulsar has.
func (a *admin) namespacePolicies(w http.ResponseWriter, r *http.Request) error {
	ns := r.PathValue("tenant") + "/" + r.PathValue("ns")
	if !a.s.namespaceExists(ns) {
		return httpErr(http.StatusNotFound, reasonNamespaceNotFound)
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
	if !a.s.namespaceExists(ns) {
		return httpErr(http.StatusNotFound, reasonNamespaceNotFound)
	}
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
	if !a.s.namespaceExists(tn.ns()) {
		return httpErr(http.StatusNotFound, reasonNamespaceNotFound)
	}
	writeJSON(w, http.StatusOK, a.s.dedupEnabled(tn))
	return nil
}

// setDeduplication turns broker deduplication on or off for a namespace;
// the body is a JSON boolean.
func (a *admin) setDeduplication(w http.ResponseWriter, r *http.Request) error {
	if !a.s.namespaceExists(r.PathValue("tenant") + "/" + r.PathValue("ns")) {
		return httpErr(http.StatusNotFound, reasonNamespaceNotFound)
	}
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
		BrokerURL:    a.s.ServiceURL(),
		BrokerURLTLS: a.s.ServiceURL(),
		HTTPURL:      a.s.AdminURL(),
		HTTPURLTLS:   a.s.AdminURL(),
		NativeURL:    a.s.ServiceURL(),
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
