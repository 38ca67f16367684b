package minipulsar

import (
	"encoding/base64"
	"sort"
	"strconv"

	pb "github.com/pulsar-sidecar/pulsar-sidecar/minipulsar/internal/wirepb"
)

// Key_Shared auto-split assignment, as Pulsar 4's default selector
// (ConsistentHashingStickyKeyConsumerSelector, with
// subscriptionKeySharedUseConsistentHashing=true) makes it:
//   - a message's sticky key is its ordering key, else its partition key
//     (base64-decoded when flagged so), else the bytes "NONE_KEY";
//   - its hash is murmur3_32(key) & 0x7fffffff, mod 65535, plus 1: a value
//     in 1..65535 (0 means "no hash" in Pulsar's dispatcher);
//   - each consumer owns keySharedPoints points on a ring over that range,
//     at the hashes of "<name>\0<name index>\0<point index>", where the name
//     index is the lowest index no other consumer of that name holds;
//   - a hash goes to the consumer of the first point at or above it,
//     wrapping around to the lowest point; on a point collision the
//     consumer there first keeps it, the later one takes over when it goes.
// The assignment depends only on consumer names (and join order for equal
// names), so it is the same from run to run and the same as Pulsar's.

// keySharedPoints is Pulsar's subscriptionKeySharedConsistentHashingReplicaPoints default.
const keySharedPoints = 100

// keyHashRange is the size of Pulsar's sticky-key hash range 1..65535.
const keyHashRange = 65535

// noneKey is the sticky key of a message with neither ordering nor
// partition key.
var noneKey = []byte("NONE_KEY")

// stickyKeyHash is Pulsar's makeStickyKeyHash over the full range.
func stickyKeyHash(key []byte) uint16 {
	h, _ := stickyHashes(key)
	return h
}

// stickyHashes returns, for a message's sticky key, Pulsar's
// makeStickyKeyHash over the full range (1..65535, matched against the
// auto-split ring) and the hash sticky (consumer-chosen) ranges are matched
// against: HashRangeExclusiveStickyKeyConsumerSelector hashes over 0..65535,
// 0 taken as 1. Both are kept in the entry, so dispatch never decodes the
// metadata again (the bytes may be on disk only).
func stickyHashes(key []byte) (keyHash, rangeHash uint16) {
	h := murmur3(key) & 0x7fffffff
	keyHash = uint16(h%keyHashRange + 1)
	rangeHash = uint16(h % 65536)
	if rangeHash == 0 {
		rangeHash = 1
	}
	return keyHash, rangeHash
}

// stickyKey is the key Key_Shared dispatch hashes for a message.
func stickyKey(md *pb.MessageMetadata) []byte {
	if md.OrderingKey != nil {
		return md.GetOrderingKey()
	}
	if md.PartitionKey != nil {
		if md.GetPartitionKeyB64Encoded() {
			if b, err := base64.StdEncoding.DecodeString(md.GetPartitionKey()); err == nil {
				return b
			}
		}
		return []byte(md.GetPartitionKey())
	}
	return noneKey
}

// hashRing holds the auto-split consumers of one subscription; guarded by
// the topic's mutex.
type hashRing struct {
	points  map[uint16]*ringPoint
	sorted  []uint16                // point hashes, ascending; nil when stale
	indexes map[string]map[int]bool // consumer name -> name indexes in use
}

type ringPoint struct {
	owner     *consumer
	colliding []*consumer // take over, in order, when the owner leaves
}

// add places c's points on the ring.
func (r *hashRing) add(c *consumer) {
	if r.points == nil {
		r.points, r.indexes = map[uint16]*ringPoint{}, map[string]map[int]bool{}
	}
	used := r.indexes[c.name]
	if used == nil {
		used = map[int]bool{}
		r.indexes[c.name] = used
	}
	idx := 0
	for used[idx] {
		idx++
	}
	used[idx] = true
	c.nameIndex = idx
	for i := range keySharedPoints {
		h := ringHash(c.name, idx, i)
		if p, ok := r.points[h]; ok {
			p.colliding = append(p.colliding, c)
			continue
		}
		r.points[h] = &ringPoint{owner: c}
	}
	r.sorted = nil
}

// remove takes c's points off the ring.
func (r *hashRing) remove(c *consumer) {
	used := r.indexes[c.name]
	if !used[c.nameIndex] {
		return
	}
	for i := range keySharedPoints {
		h := ringHash(c.name, c.nameIndex, i)
		p := r.points[h]
		if p == nil {
			continue
		}
		if p.owner == c {
			if len(p.colliding) == 0 {
				delete(r.points, h)
				continue
			}
			p.owner, p.colliding = p.colliding[0], p.colliding[1:]
			continue
		}
		for j, o := range p.colliding {
			if o == c {
				p.colliding = append(p.colliding[:j], p.colliding[j+1:]...)
				break
			}
		}
	}
	delete(used, c.nameIndex)
	if len(used) == 0 {
		delete(r.indexes, c.name)
	}
	r.sorted = nil
}

// owner is the consumer of a key hash, or nil on an empty ring.
func (r *hashRing) owner(h uint16) *consumer {
	if len(r.points) == 0 {
		return nil
	}
	if r.sorted == nil {
		r.sorted = make([]uint16, 0, len(r.points))
		for k := range r.points {
			r.sorted = append(r.sorted, k)
		}
		sort.Slice(r.sorted, func(i, j int) bool { return r.sorted[i] < r.sorted[j] })
	}
	i := sort.Search(len(r.sorted), func(i int) bool { return r.sorted[i] >= h })
	if i == len(r.sorted) {
		i = 0
	}
	return r.points[r.sorted[i]].owner
}

func ringHash(name string, nameIndex, point int) uint16 {
	key := make([]byte, 0, len(name)+12)
	key = append(key, name...)
	key = append(key, 0)
	key = strconv.AppendInt(key, int64(nameIndex), 10)
	key = append(key, 0)
	key = strconv.AppendInt(key, int64(point), 10)
	return stickyKeyHash(key)
}
