package proxy

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"
)

// LocalIdempotency is the IdempotencyStore of the embedded mode: the
// records RedisIdempotency keeps in Redis (the same encoding, states,
// leases and TTLs, ADR 030), kept in this process's memory and, with a
// log, in the data directory (IdempotencyLog). The embedded mode is one
// process, so nothing else needs them; without a Redis round trip a keyed
// produce costs no more than an unkeyed one, and the embedded Redis's
// whole-keyspace passes (TTL sweeps, snapshots) no longer grow with one key
// per keyed request (ADR 080, "Revision: idempotency records out of the
// embedded Redis").
type LocalIdempotency struct {
	ttl, lease time.Duration
	now        func() time.Time
	owners     ownerNames

	mu   sync.Mutex
	recs map[string]localRecord
	// expiries is every record written, in the order written: their expiry
	// times are nearly ordered (one TTL for all; a takeover keeps an
	// earlier one), so reclaim pops from the front while the front's time
	// has passed. A popped key is deleted only if its current record
	// expired; a record is ignored once expired whether or not reclaimed.
	expiries []localExpiry
	log      *IdempotencyLog // nil: memory only
}

type localRecord struct {
	v        string // the record as RedisIdempotency encodes it
	expireAt int64  // Unix milliseconds
}

type localExpiry struct {
	key string
	at  int64
}

var _ IdempotencyStore = (*LocalIdempotency)(nil)

// NewLocalIdempotency returns a store whose results live for ttl and whose
// owners' leases last lease. With log non-nil every change is appended to
// it, and its records (loaded by OpenIdempotencyLog) are the store's start.
func NewLocalIdempotency(ttl, lease time.Duration, log *IdempotencyLog) *LocalIdempotency {
	s := &LocalIdempotency{ttl: ttl, lease: lease, now: time.Now, owners: ownerNames{prefix: ownerPrefix()}, recs: map[string]localRecord{}, log: log}
	if log != nil {
		now := time.Now().UnixMilli()
		for k, r := range log.loaded {
			if r.expireAt > now {
				s.recs[k] = r
				s.expiries = append(s.expiries, localExpiry{key: k, at: r.expireAt})
			}
		}
		log.loaded = nil
		// In expiry order, as reclaim needs: the map gave them in any order,
		// and one far expiry at the front would hold back every later one.
		slices.SortFunc(s.expiries, func(a, b localExpiry) int { return cmp.Compare(a.at, b.at) })
	}
	return s
}

// Import stores a record read from elsewhere (an embedded Redis of an
// earlier version): k is its Redis key, v its value, as
// RedisIdempotency writes them.
func (s *LocalIdempotency) Import(k, v string, expireAt time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.put(k, v, expireAt.UnixMilli(), s.now().UnixMilli())
}

// Lease is how long a claim stays its owner's without a Renew.
func (s *LocalIdempotency) Lease() time.Duration { return s.lease }

// Len is the number of keys held, expired ones not yet reclaimed included.
func (s *LocalIdempotency) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.recs)
}

// get returns k's record unless it expired; the caller holds mu.
func (s *LocalIdempotency) get(k string, nowMs int64) (localRecord, bool) {
	r, ok := s.recs[k]
	if !ok || r.expireAt <= nowMs {
		return localRecord{}, false
	}
	return r, true
}

// put stores k's record (and logs it); the caller holds mu.
func (s *LocalIdempotency) put(k, v string, expireAt, nowMs int64) {
	s.reclaim(nowMs)
	s.recs[k] = localRecord{v: v, expireAt: expireAt}
	s.expiries = append(s.expiries, localExpiry{key: k, at: expireAt})
	if s.log != nil {
		s.log.set(k, v, expireAt)
	}
}

// del deletes k (and logs it); the caller holds mu.
func (s *LocalIdempotency) del(k string) {
	delete(s.recs, k)
	if s.log != nil {
		s.log.del(k)
	}
}

// reclaim drops expired records from memory, at most a few per call so
// that no call pays for many; the caller holds mu.
func (s *LocalIdempotency) reclaim(nowMs int64) {
	for range 4 {
		if len(s.expiries) == 0 || s.expiries[0].at > nowMs {
			break
		}
		e := s.expiries[0]
		s.expiries[0] = localExpiry{}
		s.expiries = s.expiries[1:]
		if r, ok := s.recs[e.key]; ok && r.expireAt <= nowMs {
			delete(s.recs, e.key) // expired: not logged, the log's record expires too
		}
	}
	// The popped front is given back when append next grows the slice.
}

func (s *LocalIdempotency) leaseUntil() int64 { return s.now().Add(s.lease).UnixMilli() }

// Begin implements IdempotencyStore.
func (s *LocalIdempotency) Begin(_ context.Context, app, key, fp, uid string) (Claim, error) {
	k := redisKey(app, key)
	owner := s.owners.next()
	now := s.now()
	nowMs := now.UnixMilli()
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.get(k, nowMs)
	if !ok {
		mine := record{state: 'i', owner: owner, leaseUntil: s.leaseUntil(), fp: fp, uid: uid}
		s.put(k, mine.encode(), now.Add(s.ttl).UnixMilli(), nowMs)
		return Claim{State: ClaimAcquired, UID: uid, Owner: owner, Fresh: true}, nil
	}
	r, err := parseRecord(cur.v)
	if err != nil {
		return Claim{}, err
	}
	if c, takeover, err := judge(r, fp, nowMs); !takeover {
		return c, err
	}
	// Failed, or in flight under a lease that ran out: take over, keeping
	// the key's uid and TTL.
	mine := record{state: 'i', owner: owner, leaseUntil: s.leaseUntil(), fp: fp, uid: r.uid}
	s.put(k, mine.encode(), cur.expireAt, nowMs)
	return Claim{State: ClaimAcquired, UID: r.uid, Owner: owner}, nil
}

// owned returns k's record if owner holds its claim; the caller holds mu.
func (s *LocalIdempotency) owned(k, owner string) (localRecord, record, bool) {
	cur, ok := s.get(k, s.now().UnixMilli())
	if !ok {
		return localRecord{}, record{}, false
	}
	r, err := parseRecord(cur.v)
	if err != nil || r.state != 'i' || r.owner != owner {
		return localRecord{}, record{}, false
	}
	return cur, r, true
}

// Renew implements IdempotencyStore.
func (s *LocalIdempotency) Renew(_ context.Context, app, key, owner string) (bool, error) {
	k := redisKey(app, key)
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, r, ok := s.owned(k, owner)
	if !ok {
		return false, nil
	}
	r.leaseUntil = s.leaseUntil()
	s.put(k, r.encode(), cur.expireAt, s.now().UnixMilli())
	return true, nil
}

// Complete implements IdempotencyStore: the done record for ttl, whatever
// the key holds (as RedisIdempotency.Complete).
func (s *LocalIdempotency) Complete(_ context.Context, app, key, _, fp string, r Result) error {
	now := s.now()
	v := doneRecord(fp, &r)
	s.mu.Lock()
	s.put(redisKey(app, key), v, now.Add(s.ttl).UnixMilli(), now.UnixMilli())
	s.mu.Unlock()
	return nil
}

// CompleteAsync implements IdempotencyStore: Complete, then done on the
// caller's goroutine (nothing here waits).
func (s *LocalIdempotency) CompleteAsync(app, key, owner, fp string, r Result, done func(error)) {
	done(s.Complete(context.Background(), app, key, owner, fp, r))
}

// Release implements IdempotencyStore.
func (s *LocalIdempotency) Release(_ context.Context, app, key, owner string, forget bool) error {
	k := redisKey(app, key)
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, r, ok := s.owned(k, owner)
	switch {
	case !ok:
	case forget:
		s.del(k)
	default:
		failed := record{state: 'f', fp: r.fp, uid: r.uid, result: r.result}
		s.put(k, failed.encode(), cur.expireAt, s.now().UnixMilli())
	}
	return nil
}

// Close writes what the log holds to disk; the store must not be used
// afterwards.
func (s *LocalIdempotency) Close() error {
	if s.log == nil {
		return nil
	}
	return s.log.close()
}
