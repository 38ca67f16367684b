package conformance

import (
	"net/http"
	"testing"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/require"
)

type order struct {
	ID     string `json:"id" avro:"id"`
	Amount int    `json:"amount" avro:"amount"`
}

const (
	orderJSONSchema = `{"type":"record","name":"order","fields":[{"name":"id","type":"string"},{"name":"amount","type":"int"}]}`
	orderV2Schema   = `{"type":"record","name":"order","fields":[{"name":"id","type":"string"},{"name":"amount","type":"int"},{"name":"note","type":["null","string"],"default":null}]}`
)

// TestSchemaRoundTrip: a typed producer registers its schema on the topic
// (version 0) and a typed consumer decodes the value, looking the schema up
// by the version each message carries (JSON, Avro and string schemas).
func TestSchemaRoundTrip(t *testing.T) {
	serviceURL, _ := target(t)
	c := newClient(t, serviceURL)
	for _, tc := range []struct {
		name   string
		schema func() pulsar.Schema
	}{
		{"json", func() pulsar.Schema { return pulsar.NewJSONSchema(orderJSONSchema, nil) }},
		{"avro", func() pulsar.Schema { return pulsar.NewAvroSchema(orderJSONSchema, nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := newTopic(t)
			cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "sub", Schema: tc.schema()})
			p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, Schema: tc.schema()})
			_, err := p.Send(timeout(t, opTimeout), &pulsar.ProducerMessage{Value: order{ID: "o-1", Amount: 42}})
			require.NoError(t, err)
			m := receive(t, cons)
			require.Equal(t, []byte{0, 0, 0, 0, 0, 0, 0, 0}, m.SchemaVersion(), "the first schema of a topic is version 0")
			var got order
			require.NoError(t, m.GetSchemaValue(&got))
			require.Equal(t, order{ID: "o-1", Amount: 42}, got)
		})
	}
	t.Run("string", func(t *testing.T) {
		topic := newTopic(t)
		cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "sub", Schema: pulsar.NewStringSchema(nil)})
		p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, Schema: pulsar.NewStringSchema(nil)})
		_, err := p.Send(timeout(t, opTimeout), &pulsar.ProducerMessage{Value: "typed"})
		require.NoError(t, err)
		var got *string // pulsar-client-go's StringSchema decodes into a **string
		require.NoError(t, receive(t, cons).GetSchemaValue(&got))
		require.NotNil(t, got)
		require.Equal(t, "typed", *got)
	})
}

// TestSchemaVersionsAndAdmin: a new definition of the same type is the next
// version, an identical one reuses its version, a schema of another type is
// refused (IncompatibleSchema under Pulsar's default strategy too), and the
// admin API serves the latest schema, a schema by version and 404 for a
// topic without one.
func TestSchemaVersionsAndAdmin(t *testing.T) {
	serviceURL, adminURL := target(t)
	admin := newAdmin(t, adminURL)
	c := newClient(t, serviceURL)
	topic := newTopic(t)

	_, err := admin.Schemas().GetSchemaInfo(topic)
	require.Equal(t, http.StatusNotFound, httpStatus(err), "no schema yet: %v", err)

	newProducer(t, c, pulsar.ProducerOptions{Topic: topic, Schema: pulsar.NewAvroSchema(orderJSONSchema, nil)})
	p2 := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, Schema: pulsar.NewAvroSchema(orderV2Schema, nil)})
	newProducer(t, c, pulsar.ProducerOptions{Topic: topic, Schema: pulsar.NewAvroSchema(orderJSONSchema, nil)})
	_, err = p2.Send(timeout(t, opTimeout), &pulsar.ProducerMessage{Value: order{ID: "o-2", Amount: 7}})
	require.NoError(t, err)

	latest, err := admin.Schemas().GetSchemaInfoWithVersion(topic)
	require.NoError(t, err)
	require.EqualValues(t, 1, latest.Version)
	require.Equal(t, "AVRO", latest.SchemaInfo.Type)
	require.JSONEq(t, orderV2Schema, string(latest.SchemaInfo.Schema))
	first, err := admin.Schemas().GetSchemaInfoByVersion(topic, 0)
	require.NoError(t, err)
	require.JSONEq(t, orderJSONSchema, string(first.Schema))
	all, err := admin.Schemas().GetAllSchemas(topic)
	require.NoError(t, err)
	require.Len(t, all, 2)

	_, err = c.CreateProducer(pulsar.ProducerOptions{Topic: topic, Schema: pulsar.NewStringSchema(nil)})
	require.ErrorContains(t, err, "IncompatibleSchema", "a STRING producer on an AVRO topic")
	_, err = c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "typed", Schema: pulsar.NewStringSchema(nil)})
	require.ErrorContains(t, err, "IncompatibleSchema", "a STRING consumer on an AVRO topic")
	// A consumer without a schema reads the bytes.
	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "raw", SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	m := receive(t, cons)
	require.Equal(t, []byte{0, 0, 0, 0, 0, 0, 0, 1}, m.SchemaVersion())
}
