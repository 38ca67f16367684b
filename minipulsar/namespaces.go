package minipulsar

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// NamespacePolicy says what the broker does with a topic whose tenant or
// namespace was never created.
type NamespacePolicy int

const (
	// AutoCreateNamespaces creates a topic's tenant and namespace the first
	// time a client or the admin API uses the topic. Pulsar has no such
	// mode; it is the zero value so that tests written before minipulsar
	// had namespaces keep working, and the sidecar's embedded mode asks for
	// it explicitly so its one-command start works for any topic.
	AutoCreateNamespaces NamespacePolicy = iota
	// RequireNamespaces behaves as Pulsar: producers, consumers and lookups
	// of a topic in a tenant or namespace that does not exist fail with
	// TopicNotFound, and the admin API answers 404 "Namespace does not
	// exist". cmd/minipulsar and the conformance suite run this way.
	RequireNamespaces
)

// Namespace errors.
var (
	ErrTenantNotFound    = errors.New("minipulsar: tenant does not exist")
	ErrTenantExists      = errors.New("minipulsar: tenant already exists")
	ErrTenantNotEmpty    = errors.New("minipulsar: the tenant still has namespaces")
	ErrNamespaceNotFound = errors.New("minipulsar: namespace does not exist")
	ErrNamespaceExists   = errors.New("minipulsar: namespace already exists")
	ErrInvalidNamespace  = errors.New("minipulsar: invalid namespace name")
)

// defaultNamespaces exist from the start, as on a standalone Pulsar.
var defaultNamespaces = []string{"public/default", "pulsar/system"}

// initNamespacesLocked sets up the default tenants and namespaces plus those
// of stored topics (a topic's namespace existed when it was created;
// namespaces without topics are not persisted). Caller holds stateMu.
func (s *Server) initNamespacesLocked() {
	s.tenants, s.namespaces = map[string]struct{}{}, map[string]struct{}{}
	for _, ns := range defaultNamespaces {
		s.addNamespaceLocked(ns)
	}
	add := func(full string) {
		if tn, err := parseTopic(full); err == nil {
			s.addNamespaceLocked(tn.ns())
		}
	}
	for name := range s.topics {
		add(name)
	}
	for name := range s.partitioned {
		add(name)
	}
}

func (s *Server) addNamespaceLocked(ns string) {
	s.tenants[ns[:strings.IndexByte(ns, '/')]] = struct{}{}
	s.namespaces[ns] = struct{}{}
}

// checkNamespace makes sure a topic's namespace exists: it is created under
// AutoCreateNamespaces and ErrNamespaceNotFound under RequireNamespaces.
func (s *Server) checkNamespace(n topicName) error {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	return s.checkNamespaceLocked(n)
}

func (s *Server) checkNamespaceLocked(n topicName) error {
	if _, ok := s.namespaces[n.ns()]; ok {
		return nil
	}
	if s.opts.Namespaces == AutoCreateNamespaces {
		s.addNamespaceLocked(n.ns())
		return nil
	}
	// Pulsar's words when the partitioned-metadata lookup finds no namespace.
	return fmt.Errorf("%w: Tenant or namespace or topic does not exist: %s", ErrNamespaceNotFound, n.ns())
}

func splitNamespace(ns string) (tenant, local string, err error) {
	tenant, local, ok := strings.Cut(strings.Trim(ns, "/"), "/")
	if !ok || tenant == "" || local == "" || strings.Contains(local, "/") {
		return "", "", fmt.Errorf("%w: %q: want tenant/namespace", ErrInvalidNamespace, ns)
	}
	return tenant, local, nil
}

// CreateTenant creates a tenant.
func (s *Server) CreateTenant(tenant string) error {
	if tenant == "" || strings.Contains(tenant, "/") {
		return fmt.Errorf("%w: tenant %q", ErrInvalidNamespace, tenant)
	}
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	if _, ok := s.tenants[tenant]; ok {
		return fmt.Errorf("%w: %s", ErrTenantExists, tenant)
	}
	s.tenants[tenant] = struct{}{}
	return nil
}

// DeleteTenant deletes a tenant that has no namespaces.
func (s *Server) DeleteTenant(tenant string) error {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	if _, ok := s.tenants[tenant]; !ok {
		return fmt.Errorf("%w: %s", ErrTenantNotFound, tenant)
	}
	for ns := range s.namespaces {
		if strings.HasPrefix(ns, tenant+"/") {
			return fmt.Errorf("%w: %s", ErrTenantNotEmpty, tenant)
		}
	}
	delete(s.tenants, tenant)
	return nil
}

// CreateNamespace creates "tenant/namespace". Under RequireNamespaces the
// tenant must exist, as on Pulsar; under AutoCreateNamespaces it is created.
func (s *Server) CreateNamespace(ns string) error {
	tenant, _, err := splitNamespace(ns)
	if err != nil {
		return err
	}
	ns = strings.Trim(ns, "/")
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	if _, ok := s.namespaces[ns]; ok {
		return fmt.Errorf("%w: %s", ErrNamespaceExists, ns)
	}
	if _, ok := s.tenants[tenant]; !ok && s.opts.Namespaces == RequireNamespaces {
		return fmt.Errorf("%w: %s", ErrTenantNotFound, tenant)
	}
	s.addNamespaceLocked(ns)
	return nil
}

// Tenants lists the tenants, sorted.
func (s *Server) Tenants() []string {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	return sortedKeys(s.tenants)
}

// Namespaces lists a tenant's namespaces ("tenant/namespace"), sorted.
func (s *Server) Namespaces(tenant string) ([]string, error) {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	if _, ok := s.tenants[tenant]; !ok {
		return nil, fmt.Errorf("%w: %s", ErrTenantNotFound, tenant)
	}
	out := []string{}
	for ns := range s.namespaces {
		if strings.HasPrefix(ns, tenant+"/") {
			out = append(out, ns)
		}
	}
	sort.Strings(out)
	return out, nil
}

// namespaceExists tells whether "tenant/namespace" exists.
func (s *Server) namespaceExists(ns string) bool {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	_, ok := s.namespaces[ns]
	return ok
}

func (s *Server) tenantExists(tenant string) bool {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	_, ok := s.tenants[tenant]
	return ok
}

// forgetNamespace removes a namespace and its settings; caller has deleted
// its topics.
func (s *Server) forgetNamespace(ns string) {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	delete(s.namespaces, ns)
	delete(s.dedupNS, ns)
}

func sortedKeys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
