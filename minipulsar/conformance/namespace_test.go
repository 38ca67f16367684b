package conformance

import (
	"errors"
	"net/http"
	"testing"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/rest"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/stretchr/testify/require"
)

// httpStatus is the HTTP status of a pulsaradmin error, 0 if none.
func httpStatus(err error) int {
	var re rest.Error
	if errors.As(err, &re) {
		return re.Code
	}
	return 0
}

// TestNamespacesMustExist: a topic lives in a tenant and a namespace that
// must have been created. Pulsar refuses producers and consumers of a
// topic in a missing namespace (the partitioned-metadata lookup answers
// TopicNotFound, which the client reports), and its admin API answers 404
// to a topic list of a missing namespace. Once the tenant and namespace are
// created the same topic works.
func TestNamespacesMustExist(t *testing.T) {
	serviceURL, adminURL := target(t)
	admin := newAdmin(t, adminURL)
	c := newClient(t, serviceURL)
	tenant := uniqueName(t)
	ns := tenant + "/ns"
	topic := "persistent://" + ns + "/orders"
	nsName, err := utils.GetNamespaceName(ns)
	require.NoError(t, err)

	_, err = c.CreateProducer(pulsar.ProducerOptions{Topic: topic, SendTimeout: opTimeout})
	require.ErrorContains(t, err, "TopicNotFound", "producer in a missing tenant and namespace")
	_, err = c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "sub"})
	require.ErrorContains(t, err, "TopicNotFound", "consumer in a missing tenant and namespace")
	// Raw HTTP: pulsaradmin's Topics().List leaks the goroutines of its
	// other three requests when one fails.
	resp, err := http.Get(adminURL + "/admin/v2/persistent/" + ns)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "topic list of a missing namespace")
	require.Equal(t, http.StatusNotFound, httpStatus(admin.Namespaces().CreateNamespace(ns)), "a namespace of a missing tenant")

	clusters, err := admin.Clusters().List()
	require.NoError(t, err)
	require.NoError(t, admin.Tenants().Create(utils.TenantData{Name: tenant, AllowedClusters: clusters}))
	t.Cleanup(func() { _ = admin.Tenants().Delete(tenant) })
	require.Equal(t, http.StatusConflict, httpStatus(admin.Tenants().Create(utils.TenantData{Name: tenant, AllowedClusters: clusters})))
	_, err = c.CreateProducer(pulsar.ProducerOptions{Topic: topic, SendTimeout: opTimeout})
	require.ErrorContains(t, err, "TopicNotFound", "producer in a tenant without that namespace")

	require.NoError(t, admin.Namespaces().CreateNamespace(ns))
	t.Cleanup(func() { _ = admin.Namespaces().DeleteNamespace(ns) })
	nss, err := admin.Namespaces().GetNamespaces(tenant)
	require.NoError(t, err)
	require.Equal(t, []string{ns}, nss)
	topics, partitioned, err := admin.Topics().List(*nsName)
	require.NoError(t, err, "topic list of an empty namespace")
	require.Empty(t, topics)
	require.Empty(t, partitioned)

	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "sub"})
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic})
	t.Cleanup(func() { _ = admin.Topics().Delete(adminTopic(t, topic), true, false) })
	sendN(t, p, 0, 1)
	require.Equal(t, string(payload(0)), string(receive(t, cons).Payload()))
	require.Equal(t, http.StatusConflict, httpStatus(admin.Tenants().Delete(tenant)), "a tenant with namespaces")
}
