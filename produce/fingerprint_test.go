package produce

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// fingerprintV1 is Fingerprint as first written (one hash Write per
// field). Stored records hold fingerprints, so the optimised one must give
// the same bytes for every message.
func fingerprintV1(m *Message) string {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	str := func(s string) {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
		h.Write([]byte(s))
	}
	num := func(v int64) { h.Write(n[:binary.PutVarint(n[:], v)]) }
	str("psc-fingerprint-v1")
	str(m.Topic)
	str(m.Key)
	num(int64(len(m.Tags)))
	for _, t := range m.Tags {
		str(t)
	}
	keys := slices.Sorted(maps.Keys(m.Properties))
	num(int64(len(keys)))
	for _, k := range keys {
		str(k)
		str(m.Properties[k])
	}
	num(timeMillis(m.EventTime))
	num(int64(m.DeliverAfter))
	num(timeMillis(m.DeliverAt))
	str(m.DelayLevel)
	num(int64(len(m.Payload)))
	h.Write(m.Payload)
	if m.RetryPlan != "" {
		str(m.RetryPlan)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestFingerprintIsStable: Fingerprint and KeyedUID give, for random
// messages, exactly what their first versions gave (fingerprintV1, and
// uuid.NewSHA1 of app, key and fingerprint).
func TestFingerprintIsStable(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	word := func(n int) string {
		b := make([]byte, rng.IntN(n))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return string(b)
	}
	for i := range 2000 {
		m := &Message{Topic: word(40), Key: word(10), Payload: []byte(word(3000)), DelayLevel: word(3), RetryPlan: word(4)}
		for range rng.IntN(4) {
			m.Tags = append(m.Tags, word(8))
		}
		if rng.IntN(2) == 0 {
			m.Properties = map[string]string{}
			for range rng.IntN(5) {
				m.Properties[word(6)] = word(12)
			}
		}
		if rng.IntN(2) == 0 {
			m.EventTime = time.UnixMilli(rng.Int64N(1 << 42))
			m.DeliverAfter = time.Duration(rng.Int64N(1 << 40))
			m.DeliverAt = time.UnixMilli(rng.Int64N(1 << 42))
		}
		fp := m.Fingerprint()
		require.Equal(t, fingerprintV1(m), fp, "message %d", i)
		app, key := word(20), word(300)
		require.Equal(t, uuid.NewSHA1(keyedUIDSpace, []byte(app+"\x00"+key+"\x00"+fp)).String(), KeyedUID(app, key, fp), "message %d", i)
	}
	// Fixed values (computed with the first versions), so that a change to
	// both sides is noticed too.
	m := &Message{Topic: "persistent://public/default/t", Key: "k", Tags: []string{"A", "B"}, Payload: []byte("hello"),
		Properties: map[string]string{"x": "1"}}
	require.Equal(t, "ba3c84d0c1dedf2329fc6ad9d697570c36275f85a24a0a3d38ee2bee444644cf", m.Fingerprint())
	require.Equal(t, "288ae2a4-3854-5513-83bc-56c0b380edd8", KeyedUID("app", "key", m.Fingerprint()))
}

func BenchmarkFingerprint(b *testing.B) {
	m := &Message{Topic: "persistent://public/default/t", Key: "k", Tags: []string{"A"}, Payload: make([]byte, 1024)}
	b.ReportAllocs()
	for b.Loop() {
		_ = KeyedUID("app", "some-idempotency-key-0001", m.Fingerprint())
	}
}
