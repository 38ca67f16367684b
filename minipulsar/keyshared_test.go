package minipulsar

import (
	"fmt"
	"testing"

	pb "github.com/pulsar-sidecar/pulsar-sidecar/minipulsar/internal/wirepb"
)

// TestMurmur3Vectors: the public MurmurHash3 x86_32 vectors (seed 0), the
// hash Pulsar's Murmur3_32Hash computes before masking the sign bit.
func TestMurmur3Vectors(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint32
	}{
		{"", 0},
		{"hello", 0x248bfa47},
		{"The quick brown fox jumps over the lazy dog", 0x2e4ff723},
	} {
		if got := murmur3([]byte(tc.in)); got != tc.want {
			t.Errorf("murmur3(%q) = %#x, want %#x", tc.in, got, tc.want)
		}
	}
}

func TestStickyKey(t *testing.T) {
	str := func(s string) *string { return &s }
	yes := true
	for _, tc := range []struct {
		name string
		md   *pb.MessageMetadata
		want string
	}{
		{"ordering key wins", &pb.MessageMetadata{OrderingKey: []byte("o"), PartitionKey: str("p")}, "o"},
		{"partition key", &pb.MessageMetadata{PartitionKey: str("p")}, "p"},
		{"base64 partition key", &pb.MessageMetadata{PartitionKey: str("aGk="), PartitionKeyB64Encoded: &yes}, "hi"},
		{"no key", &pb.MessageMetadata{}, "NONE_KEY"},
	} {
		if got := string(stickyKey(tc.md)); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestHashRing: the ring's assignment depends only on names and is stable:
// a consumer that leaves gives its keys to others and gets the same ones
// back when it returns; same-named consumers get distinct name indexes.
func TestHashRing(t *testing.T) {
	a, b, c := &consumer{name: "a"}, &consumer{name: "b"}, &consumer{name: "c"}
	var r hashRing
	r.add(a)
	r.add(b)
	r.add(c)
	before := map[uint16]*consumer{}
	share := map[*consumer]int{}
	for h := 1; h <= keyHashRange; h++ {
		o := r.owner(uint16(h))
		before[uint16(h)] = o
		share[o]++
	}
	for _, cs := range []*consumer{a, b, c} {
		if share[cs] < keyHashRange/6 {
			t.Errorf("consumer %s owns %d of %d hashes", cs.name, share[cs], keyHashRange)
		}
	}
	r.remove(b)
	for h := 1; h <= keyHashRange; h++ {
		o := r.owner(uint16(h))
		if before[uint16(h)] != b && o != before[uint16(h)] {
			t.Fatalf("hash %d moved from %s to %s when b left", h, before[uint16(h)].name, o.name)
		}
	}
	r.add(b)
	for h := 1; h <= keyHashRange; h++ {
		if o := r.owner(uint16(h)); o != before[uint16(h)] {
			t.Fatalf("hash %d: %s after b came back, %s before", h, o.name, before[uint16(h)].name)
		}
	}
	a2 := &consumer{name: "a"}
	r.add(a2)
	if a.nameIndex != 0 || a2.nameIndex != 1 {
		t.Fatalf("name indexes %d, %d", a.nameIndex, a2.nameIndex)
	}
	r.remove(a2)
	r.remove(a)
	r.remove(b)
	r.remove(c)
	if len(r.points) != 0 || len(r.indexes) != 0 {
		t.Fatalf("ring not empty: %d points, %d names", len(r.points), len(r.indexes))
	}
	if r.owner(1) != nil {
		t.Fatal("owner on an empty ring")
	}
}

// TestRingHashKey pins the point key format "<name>\0<index>\0<point>".
func TestRingHashKey(t *testing.T) {
	if got, want := ringHash("c", 2, 7), stickyKeyHash(fmt.Appendf(nil, "c\x002\x007")); got != want {
		t.Fatalf("ringHash %d, want %d", got, want)
	}
}
