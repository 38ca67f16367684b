package minipulsar_test

import (
	"errors"
	"testing"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
)

// TestRequireNamespaces: under RequireNamespaces a topic of a missing
// namespace is refused through every door (client, Go API); namespaces of
// stored topics exist again after a restart with a data directory.
func TestRequireNamespaces(t *testing.T) {
	dir := t.TempDir()
	s := minipulsar.NewServer(minipulsar.Options{Namespaces: minipulsar.RequireNamespaces, DataDir: dir})
	require.NoError(t, s.Start())
	t.Cleanup(func() { _ = s.Close() })
	c := clientOf(t, s.ServiceURL())

	_, err := c.CreateProducer(pulsar.ProducerOptions{Topic: "billing/pay/orders"})
	require.ErrorContains(t, err, "TopicNotFound")
	require.ErrorIs(t, s.CreateTopic("billing/pay/orders"), minipulsar.ErrNamespaceNotFound)
	require.ErrorIs(t, s.CreateNamespace("billing/pay"), minipulsar.ErrTenantNotFound)
	require.NoError(t, s.CreateTenant("billing"))
	require.NoError(t, s.CreateNamespace("billing/pay"))
	require.NoError(t, s.CreateNamespace("billing/empty"))
	require.ErrorIs(t, s.CreateNamespace("billing/pay"), minipulsar.ErrNamespaceExists)
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: "billing/pay/orders"})
	require.NoError(t, err)
	p.Close()
	require.ErrorIs(t, s.DeleteTenant("billing"), minipulsar.ErrTenantNotEmpty)

	require.NoError(t, s.Restart()) // the same Server keeps all its state
	nss, err := s.Namespaces("billing")
	require.NoError(t, err)
	require.Equal(t, []string{"billing/empty", "billing/pay"}, nss)

	// A new process on the data directory: namespaces of stored topics.
	require.NoError(t, s.Close())
	s2 := minipulsar.NewServer(minipulsar.Options{Namespaces: minipulsar.RequireNamespaces, DataDir: dir})
	require.NoError(t, s2.Start())
	t.Cleanup(func() { _ = s2.Close() })
	nss, err = s2.Namespaces("billing")
	require.NoError(t, err)
	require.Equal(t, []string{"billing/pay"}, nss, "namespaces without topics are not persisted")
	require.Contains(t, s2.Tenants(), "public")
	c2 := clientOf(t, s2.ServiceURL())
	p, err = c2.CreateProducer(pulsar.ProducerOptions{Topic: "billing/pay/orders"})
	require.NoError(t, err)
	p.Close()
}

// TestAutoCreateNamespaces: the zero value creates a topic's tenant and
// namespace on first use, and then lists them.
func TestAutoCreateNamespaces(t *testing.T) {
	s := minipulsar.RunT(t)
	c := clientOf(t, s.ServiceURL())
	_, err := s.Namespaces("billing")
	require.True(t, errors.Is(err, minipulsar.ErrTenantNotFound))
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: "billing/pay/orders"})
	require.NoError(t, err)
	p.Close()
	nss, err := s.Namespaces("billing")
	require.NoError(t, err)
	require.Equal(t, []string{"billing/pay"}, nss)
}
