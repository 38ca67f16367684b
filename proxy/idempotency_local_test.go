package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/fakeclock"
	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
)

// localAccess reaches a LocalIdempotency's records the way storeAccess
// wants.
func localAccess(t *testing.T, s *LocalIdempotency) storeAccess {
	return storeAccess{
		ttl: func(k string) time.Duration {
			s.mu.Lock()
			defer s.mu.Unlock()
			r, ok := s.get(k, s.now().UnixMilli())
			if !ok {
				return -2 * time.Millisecond // Redis's answer for a missing key
			}
			return time.Duration(r.expireAt-s.now().UnixMilli()) * time.Millisecond
		},
		exists: func(k string) bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			_, ok := s.get(k, s.now().UnixMilli())
			return ok
		},
		del: func(k string) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.del(k)
		},
	}
}

func TestLocalIdempotency(t *testing.T) {
	s := NewLocalIdempotency(time.Hour, time.Minute, nil)
	testStoreSemantics(t, s, localAccess(t, s))
}

func TestLocalIdempotencyLeaseTakeover(t *testing.T) {
	s := NewLocalIdempotency(time.Hour, time.Minute, nil)
	clock := fakeclock.New(time.Now())
	s.now = clock.Now
	testLeaseTakeover(t, s, clock)
}

func TestLocalIdempotencyRace(t *testing.T) {
	testRace(t, NewLocalIdempotency(time.Hour, time.Minute, nil))
}

// TestLocalIdempotencyExpiry: a record is gone at its TTL (a claim too,
// whatever its lease), memory is reclaimed as later writes come, and a
// takeover keeps the key's TTL.
func TestLocalIdempotencyExpiry(t *testing.T) {
	s := NewLocalIdempotency(time.Hour, time.Minute, nil)
	clock := fakeclock.New(time.Now())
	s.now = clock.Now
	ctx := context.Background()
	for i := range 10 {
		c, err := s.Begin(ctx, "app", fmt.Sprint("old-", i), "fp", "u")
		require.NoError(t, err)
		require.Equal(t, ClaimAcquired, c.State)
	}
	clock.Advance(30 * time.Minute)
	first, err := s.Begin(ctx, "app", "taken", "fp", "the-uid")
	require.NoError(t, err)
	clock.Advance(2 * time.Minute) // the owner died
	second, err := s.Begin(ctx, "app", "taken", "fp", "other")
	require.NoError(t, err)
	require.Equal(t, Claim{State: ClaimAcquired, UID: "the-uid", Owner: second.Owner}, second)
	assert.NotEqual(t, first.Owner, second.Owner)
	assert.InDelta(t, (58 * time.Minute).Seconds(), localAccess(t, s).ttl(KeyPrefix+"app:taken").Seconds(), 1, "a takeover keeps the TTL")

	clock.Advance(30 * time.Minute) // the "old-" keys are past their hour
	c, err := s.Begin(ctx, "app", "old-0", "fp", "new-uid")
	require.NoError(t, err)
	assert.Equal(t, Claim{State: ClaimAcquired, UID: "new-uid", Owner: c.Owner, Fresh: true}, c, "an expired key is claimed afresh")
	for i := range 10 {
		_, err := s.Begin(ctx, "app", fmt.Sprint("new-", i), "fp", "u")
		require.NoError(t, err)
	}
	assert.Equal(t, 12, s.Len(), "expired records were reclaimed: 11 new keys and the taken one")
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestLocalIdempotencyRestart: what the store held is there after a clean
// close and a new start: claims with their owners and leases, failed keys
// with their uid, results; forgotten and expired keys are not.
func TestLocalIdempotencyRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	open := func() *LocalIdempotency {
		l, err := OpenIdempotencyLog(dir, time.Hour, discardLogger())
		require.NoError(t, err)
		return NewLocalIdempotency(time.Hour, time.Minute, l)
	}
	s := open()
	res := Result{UID: "u-done", MessageID: "1:2:-1:0", Status: produce.StatusPersisted}
	done, err := s.Begin(ctx, "app", "done", "fp", "u-done")
	require.NoError(t, err)
	require.NoError(t, s.Complete(ctx, "app", "done", done.Owner, "fp", res))
	inflight, err := s.Begin(ctx, "app", "inflight", "fp", "u-inflight")
	require.NoError(t, err)
	failed, err := s.Begin(ctx, "app", "failed", "fp", "u-failed")
	require.NoError(t, err)
	require.NoError(t, s.Release(ctx, "app", "failed", failed.Owner, false))
	forgot, err := s.Begin(ctx, "app", "forgot", "fp", "u-forgot")
	require.NoError(t, err)
	require.NoError(t, s.Release(ctx, "app", "forgot", forgot.Owner, true))
	require.NoError(t, s.Close())

	s = open()
	t.Cleanup(func() { _ = s.Close() })
	d, err := s.Begin(ctx, "app", "done", "fp", "x")
	require.NoError(t, err)
	want := res
	want.Duplicate = true
	assert.Equal(t, Claim{State: ClaimDone, Result: want}, d)
	busy, err := s.Begin(ctx, "app", "inflight", "fp", "x")
	require.NoError(t, err)
	assert.Equal(t, ClaimBusy, busy.State, "the claim and its lease came back")
	ok, err := s.Renew(ctx, "app", "inflight", inflight.Owner)
	require.NoError(t, err)
	assert.True(t, ok, "the owner is the same")
	f, err := s.Begin(ctx, "app", "failed", "fp", "x")
	require.NoError(t, err)
	assert.Equal(t, Claim{State: ClaimAcquired, UID: "u-failed", Owner: f.Owner}, f, "a failed key keeps its uid")
	fresh, err := s.Begin(ctx, "app", "forgot", "fp", "x")
	require.NoError(t, err)
	assert.True(t, fresh.Fresh, "a forgotten key is not there")
	assert.Equal(t, 4, s.Len())
}

// TestIdempotencyLogCrash: without a close (a crash), what the flusher
// wrote by its interval is there, and a torn last record is skipped with
// everything before it kept.
func TestIdempotencyLogCrash(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	l, err := OpenIdempotencyLog(dir, 20*time.Millisecond, discardLogger())
	require.NoError(t, err)
	s := NewLocalIdempotency(time.Hour, time.Minute, l)
	t.Cleanup(func() { _ = s.Close() })
	for i := range 100 {
		c, err := s.Begin(ctx, "app", fmt.Sprint("k", i), "fp", fmt.Sprint("u", i))
		require.NoError(t, err)
		require.NoError(t, s.Complete(ctx, "app", fmt.Sprint("k", i), c.Owner, "fp", Result{UID: c.UID, Status: produce.StatusPersisted}))
	}
	crashed := t.TempDir()
	require.Eventually(t, func() bool {
		// A copy of the directory as a crash would leave it: only what
		// reached the files.
		copyDir(t, dir, crashed)
		l2, err := OpenIdempotencyLog(crashed, time.Hour, discardLogger())
		require.NoError(t, err)
		n := len(l2.loaded)
		require.NoError(t, l2.close())
		return n == 100
	}, 5*time.Second, 50*time.Millisecond, "the interval's flush reached the files")

	// Tear the last record of the newest segment.
	segs, err := idemSegments(crashed)
	require.NoError(t, err)
	var last string
	for i := len(segs) - 1; i >= 0; i-- {
		p := filepath.Join(crashed, fmt.Sprintf("idem-%016x.log", segs[i]))
		if st, err := os.Stat(p); err == nil && st.Size() > 0 {
			last = p
			break
		}
	}
	require.NotEmpty(t, last)
	st, err := os.Stat(last)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(last, st.Size()-3))
	l3, err := OpenIdempotencyLog(crashed, time.Hour, discardLogger())
	require.NoError(t, err)
	s3 := NewLocalIdempotency(time.Hour, time.Minute, l3)
	t.Cleanup(func() { _ = s3.Close() })
	c, err := s3.Begin(ctx, "app", "k99", "fp", "x")
	require.NoError(t, err)
	assert.Equal(t, ClaimBusy, c.State, "k99's done record was torn: its claim is what is left, under its owner's lease")
	d, err := s3.Begin(ctx, "app", "k98", "fp", "x")
	require.NoError(t, err)
	assert.Equal(t, ClaimDone, d.State, "records before the torn one are kept")
}

func copyDir(t *testing.T, from, to string) {
	ents, err := os.ReadDir(to)
	require.NoError(t, err)
	for _, e := range ents {
		require.NoError(t, os.Remove(filepath.Join(to, e.Name())))
	}
	ents, err = os.ReadDir(from)
	require.NoError(t, err)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(to, e.Name()), b, 0o600))
	}
}

// TestIdempotencyLogDropsExpiredSegments: a segment whose records all
// expired is deleted (at start, and by the flusher), and only from the
// oldest on.
func TestIdempotencyLogDropsExpiredSegments(t *testing.T) {
	dir := t.TempDir()
	l, err := OpenIdempotencyLog(dir, time.Hour, discardLogger())
	require.NoError(t, err)
	now := time.Now().UnixMilli()
	l.set("a", "va", now-1000) // already expired
	require.NoError(t, l.close())
	l, err = OpenIdempotencyLog(dir, time.Hour, discardLogger())
	require.NoError(t, err)
	l.set("b", "vb", now+3_600_000)
	require.NoError(t, l.close())
	segs, err := idemSegments(dir)
	require.NoError(t, err)
	assert.Len(t, segs, 1, "the first segment (only an expired record) went at the second start; the second holds b")

	l, err = OpenIdempotencyLog(dir, time.Hour, discardLogger())
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.close() })
	assert.Equal(t, map[string]localRecord{"b": {v: "vb", expireAt: now + 3_600_000}}, l.loaded)
	segs, err = idemSegments(dir)
	require.NoError(t, err)
	assert.Len(t, segs, 2, "b's segment and the new current one")
}

// TestIdempotencyLogRecord: records read back as written; damage is
// refused.
func TestIdempotencyLogRecord(t *testing.T) {
	var b []byte
	b = appendIdemRecord(b, 's', "psc:idem:app:k", 1_700_000_000_000, "d||0|fp|uid|{}")
	b = appendIdemRecord(b, 'd', "psc:idem:app:k", 0, "")
	r := bufio.NewReader(bytes.NewReader(b))
	op, k, exp, v, err := readIdemRecord(r)
	require.NoError(t, err)
	assert.Equal(t, []any{byte('s'), "psc:idem:app:k", int64(1_700_000_000_000), "d||0|fp|uid|{}"}, []any{op, k, exp, v})
	op, k, _, _, err = readIdemRecord(r)
	require.NoError(t, err)
	assert.Equal(t, []any{byte('d'), "psc:idem:app:k"}, []any{op, k})
	_, _, _, _, err = readIdemRecord(r)
	assert.ErrorIs(t, err, io.EOF)

	for i := range b[:len(b)/2] {
		bad := bytes.Clone(b)
		bad[i] ^= 0x40
		_, _, _, _, err := readIdemRecord(bufio.NewReader(bytes.NewReader(bad)))
		assert.True(t, errors.Is(err, errIdemRecord) || errors.Is(err, io.EOF), "byte %d flipped: %v", i, err)
	}
}

// FuzzIdempotencyLogRecord: the reader never panics on any bytes, and a
// record it accepts encodes back to the same bytes.
func FuzzIdempotencyLogRecord(f *testing.F) {
	f.Add(appendIdemRecord(nil, 's', "psc:idem:app:k", 1_700_000_000_000, "i|o|1|fp|uid|"))
	f.Add(appendIdemRecord(nil, 'd', "k", 0, ""))
	f.Add([]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		read := 0
		for {
			op, k, exp, v, err := readIdemRecord(r)
			if err != nil {
				return
			}
			enc := appendIdemRecord(nil, op, k, exp, v)
			if !bytes.Equal(enc, data[read:read+len(enc)]) {
				t.Fatalf("record at %d re-encodes differently: %x vs %x", read, enc, data[read:read+len(enc)])
			}
			read += len(enc)
		}
	})
}

// TestLocalIdempotencyConcurrentWithLog: many goroutines claim, renew,
// complete and release while the log flushes every millisecond and rolls
// small segments; after a close and a new start every key is as it was
// left (run with -race).
func TestLocalIdempotencyConcurrentWithLog(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	l, err := openIdempotencyLog(dir, time.Millisecond, discardLogger(), 4<<10)
	require.NoError(t, err)
	s := NewLocalIdempotency(time.Hour, time.Minute, l)
	const workers, keys = 8, 150
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range keys {
				k := fmt.Sprintf("w%d-k%d", w, i)
				c, err := s.Begin(ctx, "app", k, "fp", "uid-"+k)
				if !assert.NoError(t, err) || !assert.Equal(t, ClaimAcquired, c.State) {
					return
				}
				ok, err := s.Renew(ctx, "app", k, c.Owner)
				assert.NoError(t, err)
				assert.True(t, ok)
				switch i % 3 {
				case 0:
					assert.NoError(t, s.Complete(ctx, "app", k, c.Owner, "fp", Result{UID: c.UID, Status: produce.StatusPersisted}))
				case 1:
					assert.NoError(t, s.Release(ctx, "app", k, c.Owner, false))
				case 2:
					assert.NoError(t, s.Release(ctx, "app", k, c.Owner, true))
				}
			}
		})
	}
	wg.Wait()
	require.NoError(t, s.Close())
	segs, err := idemSegments(dir)
	require.NoError(t, err)
	require.Greater(t, len(segs), 10, "the 4 KiB segments rolled")

	l, err = OpenIdempotencyLog(dir, time.Hour, discardLogger())
	require.NoError(t, err)
	s = NewLocalIdempotency(time.Hour, time.Minute, l)
	t.Cleanup(func() { _ = s.Close() })
	require.Equal(t, workers*keys*2/3, s.Len(), "done and failed keys; forgotten ones are gone")
	for w := range workers {
		for i := range keys {
			k := fmt.Sprintf("w%d-k%d", w, i)
			c, err := s.Begin(ctx, "app", k, "fp", "other")
			require.NoError(t, err)
			switch i % 3 {
			case 0:
				require.Equal(t, ClaimDone, c.State, k)
				require.Equal(t, "uid-"+k, c.Result.UID)
			case 1:
				require.Equal(t, Claim{State: ClaimAcquired, UID: "uid-" + k, Owner: c.Owner}, c, "%s: failed, taken over with its uid", k)
			case 2:
				require.True(t, c.Fresh, "%s: forgotten", k)
			}
		}
	}
}

// TestIdempotencyLogWriteFailure: when the segment's writes fail (here:
// its file closed under it, as a failing device would answer), the log
// says so, drops records until the next flush moves it to a new segment,
// and then writes again; a new start reads what was written before and
// after.
func TestIdempotencyLogWriteFailure(t *testing.T) {
	dir := t.TempDir()
	l, err := OpenIdempotencyLog(dir, time.Hour, discardLogger())
	require.NoError(t, err)
	exp := time.Now().Add(time.Hour).UnixMilli()
	l.set("before", "v", exp)
	l.flush()
	l.mu.Lock()
	require.NoError(t, l.f.Close())
	l.mu.Unlock()
	l.set("lost", "v", exp)
	l.flush()
	l.mu.Lock()
	failed := l.failed
	l.mu.Unlock()
	require.True(t, failed, "the flush's write failed")
	l.set("dropped", "v", exp)
	l.flush() // moves to a new segment
	l.mu.Lock()
	failed = l.failed
	l.mu.Unlock()
	require.False(t, failed, "a new segment")
	l.set("after", "v", exp)
	require.NoError(t, l.close())

	l, err = OpenIdempotencyLog(dir, time.Hour, discardLogger())
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.close() })
	keys := make([]string, 0, len(l.loaded))
	for k := range l.loaded {
		keys = append(keys, k)
	}
	assert.ElementsMatch(t, []string{"before", "after"}, keys)
}

// TestLocalIdempotencyReclaimAfterRestart: records loaded at start are
// reclaimed in expiry order, so one far expiry does not hold back the
// memory of nearer ones.
func TestLocalIdempotencyReclaimAfterRestart(t *testing.T) {
	dir := t.TempDir()
	l, err := OpenIdempotencyLog(dir, time.Hour, discardLogger())
	require.NoError(t, err)
	now := time.Now()
	for i := range 50 {
		ttl := time.Minute // half soon, half in two hours, interleaved
		if i%2 == 1 {
			ttl = 2 * time.Hour
		}
		l.set(fmt.Sprint("k", i), "f||0|fp|uid|", now.Add(ttl).UnixMilli())
	}
	require.NoError(t, l.close())

	l, err = OpenIdempotencyLog(dir, time.Hour, discardLogger())
	require.NoError(t, err)
	s := NewLocalIdempotency(time.Hour, time.Minute, l)
	t.Cleanup(func() { _ = s.Close() })
	require.Equal(t, 50, s.Len())
	clock := fakeclock.New(now.Add(2 * time.Minute))
	s.now = clock.Now
	for i := range 10 { // each write reclaims up to 4 expired records
		_, err := s.Begin(context.Background(), "app", fmt.Sprint("new-", i), "fp", "u")
		require.NoError(t, err)
	}
	assert.Equal(t, 25+10, s.Len(), "the 25 records past their minute were reclaimed")
}
