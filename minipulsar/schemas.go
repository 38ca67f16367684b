package minipulsar

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	pb "github.com/pulsar-sidecar/pulsar-sidecar/minipulsar/internal/wirepb"
)

// The schema registry subset. Facts from Pulsar (AbstractTopic.addSchema,
// ServerCnx, SchemaRegistryServiceImpl, LongSchemaVersion):
//   - schemas belong to the topic's base name without domain
//     (tenant/namespace/topic, shared by a partitioned topic's partitions);
//   - versions count from 0 and travel as 8-byte big-endian longs;
//   - a producer with a schema registers it (or finds an identical one and
//     gets its version); a producer without one gets no version;
//   - a consumer with a schema on a topic without one registers it when
//     the topic is idle (no producer, no consumer, no stored message);
//   - GET_SCHEMA without a version answers the latest; an unknown topic or
//     version answers TopicNotFound "Topic not found or no-schema".
// Compatibility is simpler than Pulsar's default (FULL, with Avro rules for
// AVRO and JSON): a schema of another type than the latest is refused with
// IncompatibleSchema; a new definition of the same type is always accepted
// as the next version. Schemas are kept in memory only.

// Schema errors.
var (
	ErrSchemaNotFound     = errors.New("minipulsar: schema not found")
	ErrIncompatibleSchema = errors.New("minipulsar: incompatible schema")
)

// schemaTypeNone is the proto type of "no schema" (pulsar-client-go's
// BYTES is the same value); such schemas are not stored.
const schemaTypeNone = 0

// schemaTypeNames are Pulsar's SchemaType names by proto type, as the admin
// API shows them.
var schemaTypeNames = map[int32]string{
	0: "NONE", 1: "STRING", 2: "JSON", 3: "PROTOBUF", 4: "AVRO", 5: "BOOLEAN", 6: "INT8", 7: "INT16",
	8: "INT32", 9: "INT64", 10: "FLOAT", 11: "DOUBLE", 12: "DATE", 13: "TIME", 14: "TIMESTAMP",
	15: "KEY_VALUE", 16: "INSTANT", 17: "LOCAL_DATE", 18: "LOCAL_TIME", 19: "LOCAL_DATE_TIME", 20: "PROTOBUF_NATIVE",
}

func schemaTypeByName(name string) (int32, bool) {
	for k, v := range schemaTypeNames {
		if v == name {
			return k, true
		}
	}
	return 0, false
}

// storedSchema is one version of a topic's schema.
type storedSchema struct {
	name      string
	typ       int32
	data      []byte
	props     map[string]string
	timestamp int64 // ms
}

func (a *storedSchema) same(b *storedSchema) bool {
	return a.typ == b.typ && bytes.Equal(a.data, b.data) && maps.Equal(a.props, b.props)
}

func (a *storedSchema) toProto() *pb.Schema {
	s := &pb.Schema{Name: &a.name, SchemaData: a.data, Type: &a.typ}
	for k, v := range a.props {
		s.Properties = append(s.Properties, &pb.KeyValue{Key: &k, Value: &v})
	}
	return s
}

type schemaRegistry struct {
	mu sync.Mutex
	m  map[string][]*storedSchema // schema id -> versions
}

// schemaID is the topic's base name without domain.
func schemaID(n topicName) string {
	b, _ := n.base()
	return b.tenant + "/" + b.namespace + "/" + b.local
}

func encodeSchemaVersion(v int) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }

// decodeSchemaVersion reads a version sent by a client; empty means latest.
func decodeSchemaVersion(b []byte) (v int, latest bool, err error) {
	if len(b) == 0 {
		return 0, true, nil
	}
	if len(b) != 8 {
		return 0, false, fmt.Errorf("%w: schema version of %d bytes", ErrSchemaNotFound, len(b))
	}
	u := binary.BigEndian.Uint64(b)
	if u > 1<<31 {
		return 0, false, fmt.Errorf("%w: version %d", ErrSchemaNotFound, u)
	}
	return int(u), false, nil
}

func fromProto(s *pb.Schema, now time.Time) *storedSchema {
	return &storedSchema{name: s.GetName(), typ: s.GetType(), data: s.GetSchemaData(), props: keyValues(s.GetProperties()), timestamp: now.UnixMilli()}
}

// add registers a schema for a topic and returns its version: the version
// of an identical schema already there, else a new one. A "none" schema
// gets no version (nil).
func (r *schemaRegistry) add(n topicName, s *storedSchema) ([]byte, error) {
	if s.typ == schemaTypeNone {
		return nil, nil
	}
	id := schemaID(n)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string][]*storedSchema{}
	}
	versions := r.m[id]
	for v, old := range versions {
		if old.same(s) {
			return encodeSchemaVersion(v), nil
		}
	}
	if len(versions) > 0 {
		if latest := versions[len(versions)-1]; latest.typ != s.typ {
			return nil, fmt.Errorf("%w: %s schema cannot follow %s on %s", ErrIncompatibleSchema,
				schemaTypeNames[s.typ], schemaTypeNames[latest.typ], id)
		}
	}
	r.m[id] = append(versions, s)
	return encodeSchemaVersion(len(versions)), nil
}

// checkConsumer decides on a consumer's schema: registered when the topic
// has none and idle is true; refused when no version has its type.
func (r *schemaRegistry) checkConsumer(n topicName, s *storedSchema, idle bool) error {
	if s.typ == schemaTypeNone {
		return nil
	}
	r.mu.Lock()
	versions := r.m[schemaID(n)]
	r.mu.Unlock()
	if len(versions) == 0 {
		if idle {
			_, err := r.add(n, s)
			return err
		}
		return nil
	}
	for _, v := range versions {
		if v.typ == s.typ {
			return nil
		}
	}
	return fmt.Errorf("%w: a %s consumer on %s, whose schema is %s", ErrIncompatibleSchema,
		schemaTypeNames[s.typ], schemaID(n), schemaTypeNames[versions[len(versions)-1].typ])
}

// get returns a version of a topic's schema (the latest when latest is set).
func (r *schemaRegistry) get(n topicName, v int, latest bool) (*storedSchema, int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	versions := r.m[schemaID(n)]
	if latest {
		v = len(versions) - 1
	}
	if v < 0 || v >= len(versions) {
		return nil, 0, fmt.Errorf("%w: %s version %d", ErrSchemaNotFound, schemaID(n), v)
	}
	return versions[v], v, nil
}

// all returns every version of a topic's schema, oldest first.
func (r *schemaRegistry) all(n topicName) []*storedSchema {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*storedSchema(nil), r.m[schemaID(n)]...)
}

// drop deletes every version of a topic's schema and returns how many
// there were.
func (r *schemaRegistry) drop(n topicName) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := len(r.m[schemaID(n)])
	delete(r.m, schemaID(n))
	return k
}

// idle tells whether a topic has no producer, no consumer and no message,
// when a consumer may give it its first schema.
func (t *topic) idle() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.producers) > 0 || len(t.waiting) > 0 || t.next > t.first {
		return false
	}
	for _, sub := range t.subs {
		if len(sub.consumers) > 0 {
			return false
		}
	}
	return true
}
