package consume

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/wire"
)

// AckID is what an ackId token says about one delivery. Any replica can
// read it back (they share the signing secret), so any replica can ack or
// nack what another one handed out.
type AckID struct {
	Cluster   uint8 // index into Options.Clusters (0 is the primary)
	Partition int32 // the client's partition index; 0 for a non-partitioned topic
	Ledger    int64
	Entry     int64
	BatchIdx  int32 // -1 when the entry is not a batch
	BatchSize int32 // messages in the entry; 0 when not a batch
	Delivery  int   // 1 for the first delivery, 2 for the first redelivery...
	Expires   time.Time
	Node      uint64 // the replica that handed the message out
	Binding   uint64 // the subscription (SubscriptionRef.binding)
	UID       string // the message's psc-uid; "" when it has none
	// RetryStep is the message's psc-retry-step (0: none): a copy
	// re-published by a retry plan keeps its uid, so its delivery state is
	// kept apart by the step (stateIDFor).
	RetryStep int
	// KeyHash is keyHashOf the message on a subscription that deduplicates
	// by idempotency key (DedupeKey), when it has a key: its delivery state
	// is the key's, not the uid's. "" otherwise.
	KeyHash string
}

// MessageID formats the Pulsar message id the token points at.
func (a *AckID) MessageID() string {
	return wire.FormatIDParts(a.Ledger, a.Entry, a.Partition, a.BatchIdx)
}

// copy identifies the physical message the token points at.
func (a *AckID) copy() copyKey {
	return copyKey{cluster: a.Cluster, partition: a.Partition, ledger: a.Ledger, entry: a.Entry, batch: a.BatchIdx}
}

// stateID is the id of the message's delivery state: its uid, or its
// position when it has none.
func (a *AckID) stateID() string { return stateIDFor(a.UID, a.RetryStep, a.copy(), a.KeyHash) }

// Token layout, before base64url (no padding):
//
//	version    1 byte (1)
//	cluster    1 byte
//	partition  zigzag varint
//	ledger     uvarint
//	entry      uvarint
//	batchIdx   zigzag varint
//	batchSize  uvarint
//	delivery   uvarint
//	expires    uvarint, Unix milliseconds
//	node       8 bytes
//	binding    8 bytes
//	uid kind   1 byte: 0 none, 1 UUID (16 bytes follow), 2 string (uvarint length, bytes)
//	retry step uvarint, only when more than 0 (older tokens end before it)
//	mac        16 bytes: HMAC-SHA256 over everything before it, truncated
//
// A token with a KeyHash has version 2 and, after the uid, the retry step
// always (0 for none) and then the 16 bytes of the hash. A token without
// one is version 1, byte for byte as before version 2 existed, so replicas
// of the version before still read every token of a "uid" subscription.
//
// A typical token is about 90 characters; with a key hash about 112.
const (
	tokenVersion   = 1
	tokenVersion2  = 2
	macBytes       = 16
	maxTokenChars  = 512
	maxUIDBytes    = 128
	maxRetryStep   = 1 << 20
	uidNone        = 0
	uidUUID        = 1
	uidString      = 2
	minSecretBytes = 16
)

// signer signs and verifies ackIds. The first key signs; every key
// verifies, so a secret can be rotated without rejecting tokens in flight.
type signer struct {
	keys  [][]byte
	pools []sync.Pool // per key, of hash.Hash (HMAC-SHA256), to sign without allocating
}

func newSigner(secret []byte, previous [][]byte) (*signer, error) {
	if len(secret) < minSecretBytes {
		return nil, fmt.Errorf("consume: the ackId secret must be at least %d bytes", minSecretBytes)
	}
	s := &signer{keys: [][]byte{append([]byte(nil), secret...)}}
	for _, p := range previous {
		if len(p) < minSecretBytes {
			return nil, fmt.Errorf("consume: a previous ackId secret must be at least %d bytes", minSecretBytes)
		}
		s.keys = append(s.keys, append([]byte(nil), p...))
	}
	s.pools = make([]sync.Pool, len(s.keys))
	for i, k := range s.keys {
		s.pools[i].New = func() any { return hmac.New(sha256.New, k) }
	}
	return s, nil
}

// appendMAC appends the truncated HMAC of data with key i.
func (s *signer) appendMAC(dst []byte, i int, data []byte) []byte {
	h := s.pools[i].Get().(hash.Hash)
	h.Reset()
	h.Write(data)
	var sum [sha256.Size]byte
	dst = append(dst, h.Sum(sum[:0])[:macBytes]...)
	s.pools[i].Put(h)
	return dst
}

// Encode returns the token for a.
func (s *signer) Encode(a *AckID) string {
	b := a.appendBody(make([]byte, 0, 96))
	b = s.appendMAC(b, 0, b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// appendBody appends the token body (everything the MAC covers).
func (a *AckID) appendBody(b []byte) []byte {
	version := byte(tokenVersion)
	if a.KeyHash != "" {
		version = tokenVersion2
	}
	b = append(b, version, a.Cluster)
	b = binary.AppendVarint(b, int64(a.Partition))
	b = binary.AppendUvarint(b, uint64(a.Ledger))
	b = binary.AppendUvarint(b, uint64(a.Entry))
	b = binary.AppendVarint(b, int64(a.BatchIdx))
	b = binary.AppendUvarint(b, uint64(max(a.BatchSize, 0)))
	b = binary.AppendUvarint(b, uint64(max(a.Delivery, 0)))
	b = binary.AppendUvarint(b, uint64(max(a.Expires.UnixMilli(), 0)))
	b = binary.BigEndian.AppendUint64(b, a.Node)
	b = binary.BigEndian.AppendUint64(b, a.Binding)
	if u, err := uuid.Parse(a.UID); err == nil && len(a.UID) == 36 && u.String() == a.UID {
		b = append(b, uidUUID)
		b = append(b, u[:]...)
	} else if a.UID != "" {
		b = append(b, uidString)
		b = binary.AppendUvarint(b, uint64(len(a.UID)))
		b = append(b, a.UID...)
	} else {
		b = append(b, uidNone)
	}
	if version == tokenVersion2 {
		b = binary.AppendUvarint(b, uint64(max(a.RetryStep, 0)))
		return append(b, a.KeyHash...) // keyHashBytes long
	}
	if a.RetryStep > 0 {
		b = binary.AppendUvarint(b, uint64(a.RetryStep))
	}
	return b
}

// errMalformed is wrapped by every decoding failure; only its message
// differs, and it is never shown (all are INVALID_ACK_ID).
var errMalformed = errors.New("malformed ackId")

// Decode verifies and reads a token. It only fails with errors wrapping
// ErrInvalidAckID; the caller checks the binding and expiry.
func (s *signer) Decode(tok string) (AckID, error) {
	var a AckID
	if tok == "" || len(tok) > maxTokenChars {
		return a, fmt.Errorf("%w: length %d", ErrInvalidAckID, len(tok))
	}
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return a, fmt.Errorf("%w: not base64url", ErrInvalidAckID)
	}
	if len(raw) < 2+macBytes {
		return a, fmt.Errorf("%w: too short", ErrInvalidAckID)
	}
	body, sum := raw[:len(raw)-macBytes], raw[len(raw)-macBytes:]
	ok := false
	var buf [macBytes]byte
	for i := range s.keys {
		if hmac.Equal(sum, s.appendMAC(buf[:0], i, body)) {
			ok = true
		}
	}
	if !ok {
		return a, fmt.Errorf("%w: signature does not match", ErrInvalidAckID)
	}
	// The signature matched, so the body was written by Encode; parse it
	// defensively all the same.
	if err := a.parse(body); err != nil {
		return AckID{}, fmt.Errorf("%w: %w", ErrInvalidAckID, err)
	}
	return a, nil
}

func (a *AckID) parse(b []byte) error {
	r := reader{b: b}
	version := r.byte()
	if version != tokenVersion && version != tokenVersion2 {
		return fmt.Errorf("%w: version %d", errMalformed, version)
	}
	a.Cluster = r.byte()
	a.Partition = int32(r.varint(-1, 1<<20))
	a.Ledger = int64(r.uvarint(1 << 62))
	a.Entry = int64(r.uvarint(1 << 62))
	a.BatchIdx = int32(r.varint(-1, 1<<20))
	a.BatchSize = int32(r.uvarint(1 << 20))
	a.Delivery = int(r.uvarint(1 << 30))
	a.Expires = time.UnixMilli(int64(r.uvarint(1 << 50)))
	a.Node = r.uint64()
	a.Binding = r.uint64()
	switch r.byte() {
	case uidNone:
	case uidUUID:
		var u uuid.UUID
		copy(u[:], r.bytes(16))
		a.UID = u.String()
	case uidString:
		n := r.uvarint(maxUIDBytes)
		a.UID = string(r.bytes(int(n)))
		if a.UID == "" {
			r.fail()
		}
	default:
		r.fail()
	}
	switch {
	case version == tokenVersion2:
		a.RetryStep = int(r.uvarint(maxRetryStep))
		a.KeyHash = string(r.bytes(keyHashBytes))
	case len(r.b) > 0 && !r.err:
		a.RetryStep = int(r.uvarint(maxRetryStep))
		if a.RetryStep == 0 {
			r.fail()
		}
	}
	if r.err || len(r.b) != 0 {
		return errMalformed
	}
	return nil
}

// reader reads the token body; any short read or out-of-range value sets err.
type reader struct {
	b   []byte
	err bool
}

func (r *reader) fail() { r.err, r.b = true, nil }

func (r *reader) byte() byte {
	if len(r.b) < 1 {
		r.fail()
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) bytes(n int) []byte {
	if n < 0 || len(r.b) < n {
		r.fail()
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) uint64() uint64 {
	v := r.bytes(8)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func (r *reader) uvarint(limit uint64) uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 || v > limit {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint(lo, hi int64) int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 || v < lo || v > hi {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

// check decodes tok and checks it against the subscription it is used on
// and the time now.
func (s *signer) check(tok string, binding uint64, now time.Time) (AckID, error) {
	a, err := s.Decode(tok)
	if err != nil {
		return a, &Error{Status: http.StatusBadRequest, Code: CodeInvalidAckID,
			Message: "ackId " + clip(tok, 24) + " is malformed or was not issued by this deployment", Err: err}
	}
	if a.Binding != binding {
		return a, &Error{Status: http.StatusBadRequest, Code: CodeAckIDForeign,
			Message: "ackId " + clip(tok, 24) + " belongs to another topic or subscription", Err: ErrAckIDForeign}
	}
	if now.After(a.Expires) {
		return a, &Error{Status: http.StatusBadRequest, Code: CodeAckIDExpired,
			Message: "ackId " + clip(tok, 24) + " expired at " + a.Expires.UTC().Format(time.RFC3339) +
				": the message was or will be delivered again", Err: ErrAckIDExpired}
	}
	return a, nil
}
