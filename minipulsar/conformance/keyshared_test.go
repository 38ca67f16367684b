package conformance

import (
	"fmt"
	"sort"
	"testing"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/spaolacci/murmur3"
	"github.com/stretchr/testify/require"
)

// pulsarKeyOwner is Pulsar's documented Key_Shared auto-split assignment
// (ConsistentHashingStickyKeyConsumerSelector, the default since
// subscriptionKeySharedUseConsistentHashing=true), written here from its
// description and independently of any broker: a key hashes to
// murmur3_32(key) & 0x7fffffff mod 65535, plus 1; each consumer owns 100
// points on a ring at the hashes of "<name>\0<name index>\0<i>" (name index
// 0 for a name used once); a key goes to the consumer of the first point at
// or above its hash, wrapping to the lowest point. The murmur3 is the one
// pulsar-client-go uses for partition routing (seed 0).
func pulsarKeyOwner(consumerNames []string) func(key string) string {
	hash := func(b []byte) uint32 {
		// New32, as the client's Murmur3_32Hash calls it (Sum32 trips
		// the race detector's pointer checks).
		h := murmur3.New32()
		_, _ = h.Write(b)
		return (h.Sum32()&0x7fffffff)%65535 + 1
	}
	type point struct {
		at   uint32
		name string
	}
	var ring []point
	seen := map[uint32]bool{}
	for _, name := range consumerNames {
		for i := range 100 {
			h := hash(fmt.Appendf(nil, "%s\x00%d\x00%d", name, 0, i))
			if !seen[h] { // on a collision the consumer there first keeps the point
				seen[h] = true
				ring = append(ring, point{h, name})
			}
		}
	}
	sort.Slice(ring, func(i, j int) bool { return ring[i].at < ring[j].at })
	return func(key string) string {
		h := hash([]byte(key))
		i := sort.Search(len(ring), func(i int) bool { return ring[i].at >= h })
		return ring[i%len(ring)].name
	}
}

// TestKeySharedAssignment: with auto-split hash ranges, which consumer gets
// a key depends only on the key and the consumers' names, the way Pulsar
// computes it; so it is the same on every run, and a handful of keys
// spreads over the consumers rather than landing on one.
func TestKeySharedAssignment(t *testing.T) {
	serviceURL, _ := target(t)
	c := newClient(t, serviceURL)
	names := []string{"consumer-a", "consumer-b", "consumer-c"}
	want := pulsarKeyOwner(names)
	keys := []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"}

	for run := range 2 { // two topics: the same assignment each time
		topic := newTopic(t)
		var conss []pulsar.Consumer
		for _, name := range names {
			conss = append(conss, subscribe(t, c, pulsar.ConsumerOptions{
				Topic: topic, SubscriptionName: "ks", Type: pulsar.KeyShared, Name: name}))
		}
		p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
		for i, k := range keys {
			_, err := p.Send(timeout(t, opTimeout), &pulsar.ProducerMessage{Payload: payload(i), Key: k})
			require.NoError(t, err)
		}
		got := collect(t, len(keys), conss...)
		owners := map[string]bool{}
		for i, msgs := range got {
			for _, m := range msgs {
				require.Equal(t, want(m.Key()), names[i], "run %d: key %q went to %s", run, m.Key(), names[i])
				owners[names[i]] = true
			}
		}
		require.Greater(t, len(owners), 1, "every key on one consumer")
	}
}
