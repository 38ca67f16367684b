package minipulsar

import (
	"errors"
	"testing"
)

func TestSchemaRegistry(t *testing.T) {
	var r schemaRegistry
	n := mustTopic("persistent://t/n/orders-partition-1")
	base := mustTopic("non-persistent://t/n/orders")
	avro := func(def string) *storedSchema { return &storedSchema{typ: 4, data: []byte(def)} }
	v, err := r.add(n, avro("a"))
	if err != nil || string(v) != string(encodeSchemaVersion(0)) {
		t.Fatalf("first: %x %v", v, err)
	}
	if v, _ := r.add(base, avro("b")); string(v) != string(encodeSchemaVersion(1)) {
		t.Fatalf("a partition and its base topic, any domain, share schemas: %x", v)
	}
	if v, _ := r.add(n, avro("a")); string(v) != string(encodeSchemaVersion(0)) {
		t.Fatalf("an identical schema reuses its version: %x", v)
	}
	if _, err := r.add(n, &storedSchema{typ: 1}); !errors.Is(err, ErrIncompatibleSchema) {
		t.Fatalf("another type: %v", err)
	}
	if v, err := r.add(n, &storedSchema{typ: schemaTypeNone}); v != nil || err != nil {
		t.Fatalf("none: %x %v", v, err)
	}
	if s, v, err := r.get(n, 0, true); err != nil || v != 1 || string(s.data) != "b" {
		t.Fatalf("latest: %v %d %v", s, v, err)
	}
	if _, _, err := r.get(n, 2, false); !errors.Is(err, ErrSchemaNotFound) {
		t.Fatalf("unknown version: %v", err)
	}
	if err := r.checkConsumer(n, &storedSchema{typ: 1}, true); !errors.Is(err, ErrIncompatibleSchema) {
		t.Fatalf("consumer of another type: %v", err)
	}
	other := mustTopic("t/n/idle")
	if err := r.checkConsumer(other, avro("c"), false); err != nil || len(r.all(other)) != 0 {
		t.Fatalf("busy topic without schema: %v, %d versions", err, len(r.all(other)))
	}
	if err := r.checkConsumer(other, avro("c"), true); err != nil || len(r.all(other)) != 1 {
		t.Fatalf("idle topic: %v, %d versions", err, len(r.all(other)))
	}
	if k := r.drop(n); k != 2 || len(r.all(n)) != 0 {
		t.Fatalf("drop: %d", k)
	}
}

// FuzzDecodeSchemaVersion: any bytes a client sends as a schema version
// either decode to a version that encodes back to them, or are refused.
func FuzzDecodeSchemaVersion(f *testing.F) {
	f.Add([]byte{})
	f.Add(encodeSchemaVersion(0))
	f.Add(encodeSchemaVersion(7))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, latest, err := decodeSchemaVersion(b)
		switch {
		case err != nil:
			if !errors.Is(err, ErrSchemaNotFound) {
				t.Fatalf("error %v does not wrap ErrSchemaNotFound", err)
			}
		case latest:
			if len(b) != 0 {
				t.Fatalf("latest for %x", b)
			}
		default:
			if v < 0 || string(encodeSchemaVersion(v)) != string(b) {
				t.Fatalf("%x decodes to %d", b, v)
			}
			var r schemaRegistry
			if _, _, err := r.get(mustTopic("t/n/x"), v, false); !errors.Is(err, ErrSchemaNotFound) {
				t.Fatalf("empty registry answers version %d: %v", v, err)
			}
		}
	})
}
