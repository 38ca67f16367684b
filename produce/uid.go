package produce

import (
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // UUID version 5 is SHA-1 by definition (RFC 9562); not a security use
	"encoding/hex"
	"sync"
	"time"

	"github.com/google/uuid"
)

// NewUID returns a new sidecar message id: a UUIDv7 (RFC 9562) in its
// canonical 36-character form. UUIDv7 ids sort by creation time (to the
// millisecond, then by a per-process counter), so stores can index them
// well and a human can tell roughly when a message was accepted.
//
// The layout is github.com/google/uuid's NewV7 (48 bits of Unix
// milliseconds, then 12 bits of sub-millisecond time that also serve as a
// counter, so ids of one process strictly increase; 62 random bits), but
// the random bits come from a buffer of crypto/rand bytes filled 4 KiB at a
// time instead of one read of the system's generator per id, and the text
// is written in one allocation. Every message needs one.
func NewUID() string {
	var u [16]byte
	uidGen.next(&u)
	return formatUUID(&u)
}

var uidGen = uidGenerator{now: time.Now}

// uidGenerator hands out UUIDv7 bytes under a mutex: the time part must
// increase across goroutines, and the random buffer is shared.
type uidGenerator struct {
	mu    sync.Mutex
	now   func() time.Time
	last  int64 // milliseconds<<12 | sub-millisecond sequence of the last id
	rnd   [4096]byte
	avail int // bytes at the end of rnd not handed out yet
}

func (g *uidGenerator) next(u *[16]byte) {
	g.mu.Lock()
	nano := g.now().UnixNano()
	milli := nano / 1e6
	// The fraction of the millisecond in 1/4096ths (12 bits), as uuid does.
	t := milli<<12 + (nano-milli*1e6)>>8
	if t <= g.last {
		t = g.last + 1
	}
	g.last = t
	if g.avail < 8 {
		if _, err := rand.Read(g.rnd[:]); err != nil {
			g.mu.Unlock()
			panic("produce: crypto/rand failed: " + err.Error()) // as uuid.Must did
		}
		g.avail = len(g.rnd)
	}
	at := len(g.rnd) - g.avail
	copy(u[8:], g.rnd[at:at+8])
	clear(g.rnd[at : at+8]) // handed out once, not kept
	g.avail -= 8
	g.mu.Unlock()

	ms := t >> 12
	u[0], u[1], u[2], u[3], u[4], u[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	u[6] = 0x70 | byte(t>>8)&0x0f // version 7
	u[7] = byte(t)
	u[8] = u[8]&0x3f | 0x80 // variant 10 (RFC 9562)
}

// keyedUIDSpace is the UUID namespace of keyed uids (a random constant of
// this project's; it never changes, or every key's uid would).
var keyedUIDSpace = uuid.MustParse("6f1d2a3e-4b7c-4e58-9a0d-2c5b8e7f1a94")

// KeyedUID is the uid of a message sent with an idempotency key: a
// name-based UUID (version 5, RFC 9562) of the app, the key and the
// message's Fingerprint. Every attempt at one request gets the same uid
// whatever happened between them (a crash, an expired lease, Redis
// unreachable), so every copy that reaches the broker carries it and
// dropping copies by uid is enough downstream (ADR 030). The fingerprint
// is part of the name so that a key reused for another message, after its
// record expired, never shares a uid with the first one. Unlike NewUID's
// ids these do not sort by time.
func KeyedUID(app, key, fingerprint string) string {
	// uuid.NewSHA1(keyedUIDSpace, app 0 key 0 fingerprint), hashed from one
	// pooled buffer and formatted in one allocation.
	bp := hashBufs.Get().(*[]byte)
	b := append((*bp)[:0], keyedUIDSpace[:]...)
	b = append(b, app...)
	b = append(b, 0)
	b = append(b, key...)
	b = append(b, 0)
	b = append(b, fingerprint...)
	sum := sha1.Sum(b) //nolint:gosec // UUID version 5 is SHA-1 by definition (RFC 9562); not a security use
	*bp = b
	hashBufs.Put(bp)
	var u [16]byte
	copy(u[:], sum[:])
	u[6] = u[6]&0x0f | 0x50 // version 5
	u[8] = u[8]&0x3f | 0x80 // variant 10 (RFC 9562)
	return formatUUID(&u)
}

// formatUUID writes u in the canonical 36-character form.
func formatUUID(u *[16]byte) string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], u[10:16])
	return string(b[:])
}
