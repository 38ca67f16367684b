package consume

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/wire"
	"github.com/stretchr/testify/require"
)

func testSigner(t testing.TB) *signer {
	s, err := newSigner(testSecret, nil)
	require.NoError(t, err)
	return s
}

func sampleAckIDs() []AckID {
	exp := time.UnixMilli(1_800_000_000_123)
	return []AckID{
		{Cluster: 0, Partition: 0, Ledger: 1, Entry: 2, BatchIdx: 3, BatchSize: 100, Delivery: 1, Expires: exp,
			Node: 0xdeadbeef, Binding: 42, UID: uuid.Must(uuid.NewV7()).String()},
		{Cluster: 1, Partition: 7, Ledger: 1 << 40, Entry: 1 << 33, BatchIdx: -1, BatchSize: 0, Delivery: 16, Expires: exp,
			Node: ^uint64(0), Binding: ^uint64(0), UID: "order-42/retry", RetryStep: 3},
		{Partition: -1, Ledger: 0, Entry: 0, BatchIdx: 0, Delivery: 0, Expires: time.UnixMilli(0)},
		{Cluster: 255, Ledger: 5, Entry: 6, BatchIdx: 999, BatchSize: 1000, Delivery: 1000, Expires: exp, UID: strings.Repeat("u", maxUIDBytes)},
		// DedupeKey subscriptions: version 2, with and without a retry step.
		{Ledger: 9, Entry: 1, BatchIdx: -1, Delivery: 2, Expires: exp, Node: 7, Binding: 42, UID: uuid.Must(uuid.NewV7()).String(),
			KeyHash: keyHashOf(map[string]string{wire.PropApp: "billing", wire.PropIdempotencyKey: "charge-42"})},
		{Ledger: 9, Entry: 2, BatchIdx: 4, BatchSize: 5, Delivery: 1, Expires: exp, UID: "u", RetryStep: 2,
			KeyHash: keyHashOf(map[string]string{wire.PropIdempotencyKey: "k"})},
	}
}

func TestAckIDRoundTrip(t *testing.T) {
	s := testSigner(t)
	for _, a := range sampleAckIDs() {
		tok := s.Encode(&a)
		require.Less(t, len(tok), maxTokenChars)
		got, err := s.Decode(tok)
		require.NoError(t, err)
		require.Equal(t, a, got)
	}
	// A typical token is short enough for a URL and a log line.
	a := sampleAckIDs()[0]
	require.LessOrEqual(t, len(s.Encode(&a)), 96)
	// Without a key hash the token is version 1, as replicas of the
	// version before version 2 write and read it.
	raw, err := base64.RawURLEncoding.DecodeString(s.Encode(&a))
	require.NoError(t, err)
	require.Equal(t, byte(tokenVersion), raw[0])
	k := sampleAckIDs()[4]
	raw, err = base64.RawURLEncoding.DecodeString(s.Encode(&k))
	require.NoError(t, err)
	require.Equal(t, byte(tokenVersion2), raw[0])
	require.LessOrEqual(t, len(s.Encode(&k)), 120)
	// The state id follows the key, not the uid, and keeps the retry step apart.
	require.Equal(t, "k:"+base64.RawURLEncoding.EncodeToString([]byte(k.KeyHash)), k.stateID())
	k2 := sampleAckIDs()[5]
	require.True(t, strings.HasSuffix(k2.stateID(), "#retry2"), k2.stateID())
	require.NotEqual(t, k.stateID(), k2.stateID(), "the app is part of the key")
}

func TestAckIDRotation(t *testing.T) {
	old, err := newSigner([]byte("the-previous-secret-value"), nil)
	require.NoError(t, err)
	rotated, err := newSigner(testSecret, [][]byte{[]byte("the-previous-secret-value")})
	require.NoError(t, err)
	a := sampleAckIDs()[0]
	_, err = rotated.Decode(old.Encode(&a))
	require.NoError(t, err, "tokens signed with the previous secret still verify")
	_, err = old.Decode(rotated.Encode(&a))
	require.ErrorIs(t, err, ErrInvalidAckID, "the old secret does not verify new tokens")
	_, err = newSigner([]byte("short"), nil)
	require.Error(t, err)
}

func TestAckIDCheck(t *testing.T) {
	s := testSigner(t)
	now := time.UnixMilli(1_800_000_000_000)
	a := sampleAckIDs()[0]
	tok := s.Encode(&a)
	_, err := s.check(tok, 42, now)
	require.NoError(t, err)
	_, err = s.check(tok, 43, now)
	require.Equal(t, CodeAckIDForeign, AsError(err).Code)
	require.ErrorIs(t, err, ErrAckIDForeign)
	_, err = s.check(tok, 42, a.Expires.Add(time.Millisecond))
	require.Equal(t, CodeAckIDExpired, AsError(err).Code)
	require.Equal(t, http.StatusBadRequest, AsError(err).Status)
	for _, bad := range []string{"", "!!!", strings.Repeat("A", 600), base64.RawURLEncoding.EncodeToString([]byte("short"))} {
		_, err = s.check(bad, 42, now)
		require.Equal(t, CodeInvalidAckID, AsError(err).Code, "%q", bad)
		require.ErrorIs(t, err, ErrInvalidAckID)
	}
}

// FuzzAckIDDecode: Decode never panics, fails only with ErrInvalidAckID,
// and what it accepts re-encodes to the same token.
func FuzzAckIDDecode(f *testing.F) {
	s := testSigner(f)
	for _, a := range sampleAckIDs() {
		f.Add(s.Encode(&a))
	}
	f.Add("")
	f.Add("AAAA")
	f.Add(strings.Repeat("_", 100))
	f.Fuzz(func(t *testing.T, tok string) {
		a, err := s.Decode(tok)
		if err != nil {
			if !errors.Is(err, ErrInvalidAckID) {
				t.Fatalf("Decode(%q): %v does not wrap ErrInvalidAckID", tok, err)
			}
			return
		}
		if got := s.Encode(&a); got != tok {
			t.Fatalf("Decode(%q) = %+v, which encodes to %q", tok, a, got)
		}
	})
}

// FuzzAckIDBody fuzzes the body parser behind the signature (the part a
// leaked secret would expose): it never panics, and what it accepts
// survives a round trip through appendBody.
func FuzzAckIDBody(f *testing.F) {
	for _, a := range sampleAckIDs() {
		f.Add(a.appendBody(nil))
	}
	f.Add([]byte{1})
	f.Add([]byte{1, 0, 0, 0, 0, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, body []byte) {
		var a AckID
		if err := a.parse(body); err != nil {
			return
		}
		var b AckID
		if err := b.parse(a.appendBody(nil)); err != nil {
			t.Fatalf("re-encoded body of %+v does not parse: %v", a, err)
		}
		if a != b {
			t.Fatalf("round trip changed %+v into %+v", a, b)
		}
	})
}
