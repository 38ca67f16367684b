package delay

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Errors of the index.
var (
	ErrNotFound = errors.New("delay: no such scheduled message")
	// ErrExists: a message with this uid is already scheduled (nothing was
	// written; the caller may treat a retry as done).
	ErrExists = errors.New("delay: message already scheduled")
	// ErrInFlight: a replica has claimed the message and may be forwarding
	// it. Returned by Reschedule (nothing changed) and by Cancel (the message
	// was removed, but it may still be delivered once).
	ErrInFlight = errors.New("delay: message is being forwarded")
	ErrCorrupt  = errors.New("delay: corrupt index entry")
	// ErrNotReplicated: IndexConfig.WaitReplicas replicas did not confirm
	// a scheduled message within WaitTimeout. It is on the master, not yet
	// safe from a failover: the produce is not acknowledged, and a retry
	// with the same uid finds it (ErrExists) and waits again.
	ErrNotReplicated = errors.New("delay: scheduled message not confirmed by enough Redis replicas")
	ErrInvalid  = errors.New("delay: invalid message")
)

// IndexConfig configures an Index. The zero value is usable.
type IndexConfig struct {
	// Prefix of every key; default "psc:delay:". With Redis Cluster, put a
	// hash tag in it ("{psc}:delay:").
	Prefix string
	// Lease is how long a claim holds a message before it is due again;
	// default 30 s. Whole seconds.
	Lease time.Duration
	// PageSize is the number of entries per round trip in LoadRange;
	// default 10000.
	PageSize int
	// Timeout bounds each call to Redis when the context has no deadline;
	// default 5 s.
	Timeout time.Duration
	// WaitReplicas, when above zero, makes Schedule wait until this many
	// replicas confirm the write (Redis WAIT on the same connection), for
	// at most WaitTimeout (default 1 s), before it returns: a wheel
	// message's only copy is in Redis, and Redis replicates
	// asynchronously, so a failover right after an answer could lose it
	// (ADR 090). Needs a client with one master (single server or
	// Sentinel), not Cluster.
	WaitReplicas int
	WaitTimeout  time.Duration
	// Now, when set, replaces Redis's clock in claims and reschedules. For
	// tests with controlled time; production leaves it nil so that Redis
	// alone decides what is due, whatever the replicas' clocks say.
	Now func() time.Time
}

// Index is the durable index of scheduled messages in Redis. It is the
// source of truth: a Wheel only holds (number, due time) of the entries due
// soon, and a message is forwarded only after an atomic claim here, so
// several replicas can share one index and each message is claimed by
// exactly one of them at a time. Safe for concurrent use.
type Index struct {
	rdb     redis.UniversalClient
	prefix  string
	lease   int64
	page    int
	timeout time.Duration
	dueKey  string
	now     func() time.Time

	waitReplicas int
	waitTimeout  time.Duration
}

// NewIndex returns an index over rdb; the caller keeps ownership of rdb.
func NewIndex(rdb redis.UniversalClient, cfg IndexConfig) *Index {
	if cfg.Prefix == "" {
		cfg.Prefix = "psc:delay:"
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 30 * time.Second
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = 10000
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.WaitTimeout <= 0 {
		cfg.WaitTimeout = time.Second
	}
	return &Index{
		waitReplicas: cfg.WaitReplicas,
		waitTimeout:  cfg.WaitTimeout,
		rdb:     rdb,
		prefix:  cfg.Prefix,
		lease:   int64(math.Ceil(cfg.Lease.Seconds())),
		page:    cfg.PageSize,
		timeout: cfg.Timeout,
		dueKey:  cfg.Prefix + "due",
		now:     cfg.Now,
	}
}

// nowArg is the script argument for "now": empty means Redis's clock.
func (x *Index) nowArg() string {
	if x.now == nil {
		return ""
	}
	return strconv.FormatInt(x.now().Unix(), 10) // rounded down
}

func (x *Index) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, x.timeout)
}

// Schedule stores m durably and returns its number (the timer id for a
// Wheel). Scheduling a uid (or IndexID) that is already there writes
// nothing and returns the stored number with ErrExists.
func (x *Index) Schedule(ctx context.Context, m Message) (uint64, error) {
	if m.UID == "" || m.Topic == "" {
		return 0, fmt.Errorf("%w: uid and topic are required", ErrInvalid)
	}
	body, err := encodeMessage(&m)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	ctx, cancel := x.ctx(ctx)
	defer cancel()
	var rdb redis.Scripter = x.rdb
	var conn *redis.Conn
	if x.waitReplicas > 0 {
		// WAIT counts the writes of its own connection: run the script on
		// one taken from the pool, then wait there.
		c, ok := x.rdb.(interface{ Conn() *redis.Conn })
		if !ok {
			return 0, fmt.Errorf("%w: waitReplicas needs a Redis client with one master (not Cluster)", ErrConfig)
		}
		conn = c.Conn()
		defer func() { _ = conn.Close() }()
		rdb = conn
	}
	res, err := scheduleScript.Run(ctx, rdb, []string{x.dueKey},
		x.prefix, m.indexID(), dueSeconds(m.Due), body, m.Topic, m.Key).Slice()
	if err != nil {
		return 0, fmt.Errorf("delay: schedule %s: %w", m.UID, err)
	}
	if conn != nil {
		n, err := conn.Do(ctx, "WAIT", x.waitReplicas, x.waitTimeout.Milliseconds()).Int()
		if err != nil {
			return 0, fmt.Errorf("delay: schedule %s: wait for replicas: %w", m.UID, err)
		}
		if n < x.waitReplicas {
			return 0, fmt.Errorf("%w: %s reached %d of %d replicas within %s", ErrNotReplicated, m.UID, n, x.waitReplicas, x.waitTimeout)
		}
	}
	if len(res) != 2 {
		return 0, fmt.Errorf("%w: schedule reply %v", ErrCorrupt, res)
	}
	seq, err := parseMember(res[1])
	if err != nil {
		return 0, err
	}
	if created, _ := res[0].(int64); created == 0 {
		return seq, ErrExists
	}
	return seq, nil
}

// Get returns the scheduled message with this uid.
func (x *Index) Get(ctx context.Context, uid string) (Scheduled, error) {
	ctx, cancel := x.ctx(ctx)
	defer cancel()
	m, err := x.rdb.HGet(ctx, x.prefix+"uid", uid).Result()
	if errors.Is(err, redis.Nil) {
		return Scheduled{}, ErrNotFound
	}
	if err != nil {
		return Scheduled{}, fmt.Errorf("delay: get %s: %w", uid, err)
	}
	out, err := x.getMembers(ctx, []string{m})
	if err != nil {
		return Scheduled{}, err
	}
	if len(out) == 0 {
		return Scheduled{}, ErrNotFound
	}
	return out[0], nil
}

// getMembers reads messages by member in one round trip, leaving out those
// that are gone, in the order given.
func (x *Index) getMembers(ctx context.Context, members []string) ([]Scheduled, error) {
	type reads struct {
		body   *redis.StringCmd
		score  *redis.FloatCmd
		claims *redis.StringCmd
	}
	rs := make([]reads, len(members))
	_, err := x.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, m := range members {
			rs[i] = reads{
				body:   p.Get(ctx, x.prefix+"m:"+m),
				score:  p.ZScore(ctx, x.dueKey, m),
				claims: p.HGet(ctx, x.prefix+"claims", m),
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("delay: read messages: %w", err)
	}
	out := make([]Scheduled, 0, len(members))
	for i, m := range members {
		body, err := rs[i].body.Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("delay: read message: %w", err)
		}
		msg, err := decodeMessage(body)
		if err != nil {
			return nil, err
		}
		seq, err := parseMember(m)
		if err != nil {
			return nil, err
		}
		s := Scheduled{Message: msg, Seq: seq}
		s.Claims, _ = strconv.Atoi(rs[i].claims.Val())
		if score, err := rs[i].score.Result(); err == nil && s.Claims > 0 && int64(score) != msg.Due.Unix() {
			s.LeaseUntil = time.Unix(int64(score), 0)
		}
		out = append(out, s)
	}
	return out, nil
}

// Cancel removes the message with this uid. ErrNotFound: there was none.
// ErrInFlight: it was removed, but a replica had claimed it and may deliver
// it once.
func (x *Index) Cancel(ctx context.Context, uid string) error {
	return x.remove(ctx, uid, "")
}

// Ack removes a message after its forward was confirmed.
func (x *Index) Ack(ctx context.Context, uid string) error {
	err := x.remove(ctx, uid, "")
	if errors.Is(err, ErrInFlight) {
		return nil // claimed is the expected state here
	}
	return err
}

// ackSeq removes the message only if uid still names number seq, so an ack
// that arrives late cannot remove a newer message that reuses the uid.
func (x *Index) ackSeq(ctx context.Context, uid string, seq uint64) error {
	err := x.remove(ctx, uid, member(seq))
	if errors.Is(err, ErrInFlight) {
		return nil
	}
	return err
}

func (x *Index) remove(ctx context.Context, uid, m string) error {
	ctx, cancel := x.ctx(ctx)
	defer cancel()
	n, err := removeScript.Run(ctx, x.rdb, []string{x.dueKey}, x.prefix, uid, m).Int()
	switch {
	case err != nil:
		return fmt.Errorf("delay: remove %s: %w", uid, err)
	case n == 0:
		return ErrNotFound
	case n == 2:
		return ErrInFlight
	}
	return nil
}

// CancelKey removes every message scheduled for topic with this key and
// returns their uids.
func (x *Index) CancelKey(ctx context.Context, topic, key string) ([]string, error) {
	if key == "" {
		return nil, fmt.Errorf("%w: key is required", ErrInvalid)
	}
	ctx, cancel := x.ctx(ctx)
	defer cancel()
	uids, err := cancelKeyScript.Run(ctx, x.rdb, []string{x.dueKey}, x.prefix, topic, key).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("delay: cancel %s key %s: %w", topic, key, err)
	}
	return uids, nil
}

// Query selects messages for List.
type Query struct {
	// Topic and Key, both set: the messages with that key. Both empty: all
	// messages.
	Topic, Key string
	// Limit caps the answer; default 100.
	Limit int
}

// List returns scheduled messages in due order (claimed ones by lease
// deadline): those of one (topic, key), or the earliest of all.
func (x *Index) List(ctx context.Context, q Query) ([]Scheduled, error) {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	if (q.Topic == "") != (q.Key == "") {
		return nil, fmt.Errorf("%w: list by topic needs a key", ErrInvalid)
	}
	ctx, cancel := x.ctx(ctx)
	defer cancel()
	var members []string
	var err error
	if q.Key != "" {
		members, err = x.rdb.SMembers(ctx, x.prefix+"k:"+q.Topic+"\n"+q.Key).Result()
		for i, n := range members {
			seq, perr := strconv.ParseUint(n, 10, 64)
			if perr != nil {
				return nil, fmt.Errorf("%w: key set member %q", ErrCorrupt, n)
			}
			members[i] = member(seq)
		}
	} else {
		members, err = x.rdb.ZRange(ctx, x.dueKey, 0, int64(q.Limit)-1).Result()
	}
	if err != nil {
		return nil, fmt.Errorf("delay: list: %w", err)
	}
	out, err := x.getMembers(ctx, members)
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b Scheduled) int { return a.Due.Compare(b.Due) })
	if len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, nil
}

// Reschedule moves the message with this uid to a new due time. A message
// that a replica is forwarding is left alone (ErrInFlight).
func (x *Index) Reschedule(ctx context.Context, uid string, due time.Time) error {
	s, err := x.Get(ctx, uid)
	if err != nil {
		return err
	}
	s.Due = due
	body, err := encodeMessage(&s.Message)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	ctx, cancel := x.ctx(ctx)
	defer cancel()
	n, err := rescheduleScript.Run(ctx, x.rdb, []string{x.dueKey},
		x.prefix, uid, member(s.Seq), dueSeconds(due), body, x.nowArg()).Int()
	switch {
	case err != nil:
		return fmt.Errorf("delay: reschedule %s: %w", uid, err)
	case n == 0:
		return ErrNotFound
	case n < 0:
		return ErrInFlight
	}
	return nil
}

// Len is the number of messages in the index.
func (x *Index) Len(ctx context.Context) (int64, error) {
	ctx, cancel := x.ctx(ctx)
	defer cancel()
	return x.rdb.ZCard(ctx, x.dueKey).Result()
}

// Due returns the numbers of up to limit messages due at now (by the
// caller's clock), earliest first: those that no wheel has taken, such as
// messages scheduled by another replica or whose lease ran out.
func (x *Index) Due(ctx context.Context, now time.Time, limit int) ([]uint64, error) {
	ctx, cancel := x.ctx(ctx)
	defer cancel()
	ms, err := x.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{
		Key: x.dueKey, Start: "-inf", Stop: strconv.FormatInt(now.Unix(), 10),
		ByScore: true, Count: int64(limit),
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("delay: due: %w", err)
	}
	out := make([]uint64, 0, len(ms))
	for _, m := range ms {
		seq, err := parseMember(m)
		if err != nil {
			return nil, err
		}
		out = append(out, seq)
	}
	return out, nil
}

// ClaimStatus is the outcome of a claim for one message.
type ClaimStatus int

const (
	// Claimed: this caller holds the message until its lease ends and must
	// forward it, then Ack it.
	Claimed ClaimStatus = iota + 1
	// NotDue: not due yet by Redis's clock (or rescheduled, or another
	// replica holds a claim); Due says when to try again.
	NotDue
	// Gone: cancelled or already forwarded.
	Gone
)

// Claim is the outcome of a claim for one message.
type Claim struct {
	Seq    uint64
	Status ClaimStatus
	// Message is set when Claimed, with Claims and LeaseUntil.
	Message Scheduled
	// Due is when to try again, when NotDue.
	Due time.Time
}

// Claim atomically takes the due messages among seqs for forwarding: of all
// replicas that try, exactly one gets each message, and it holds it for the
// lease. Whether a message is due is decided by Redis's clock.
func (x *Index) Claim(ctx context.Context, seqs []uint64) ([]Claim, error) {
	if len(seqs) == 0 {
		return nil, nil
	}
	args := make([]any, 0, 3+len(seqs))
	args = append(args, x.prefix, x.lease, x.nowArg())
	for _, s := range seqs {
		args = append(args, member(s))
	}
	ctx, cancel := x.ctx(ctx)
	defer cancel()
	res, err := claimScript.Run(ctx, x.rdb, []string{x.dueKey}, args...).Slice()
	if err != nil {
		return nil, fmt.Errorf("delay: claim: %w", err)
	}
	out := make([]Claim, 0, len(res))
	for _, r := range res {
		c, err := parseClaim(r)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func parseClaim(r any) (Claim, error) {
	f, ok := r.([]any)
	if !ok || len(f) < 2 {
		return Claim{}, fmt.Errorf("%w: claim reply %v", ErrCorrupt, r)
	}
	seq, err := parseMember(f[0])
	if err != nil {
		return Claim{}, err
	}
	c := Claim{Seq: seq}
	switch f[1] {
	case "gone":
		c.Status = Gone
	case "wait":
		if len(f) < 3 {
			return Claim{}, fmt.Errorf("%w: claim reply %v", ErrCorrupt, r)
		}
		s, _ := f[2].(string)
		score, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return Claim{}, fmt.Errorf("%w: claim score %v", ErrCorrupt, f[2])
		}
		c.Status, c.Due = NotDue, time.Unix(int64(math.Ceil(score)), 0)
	case "ok":
		if len(f) < 5 {
			return Claim{}, fmt.Errorf("%w: claim reply %v", ErrCorrupt, r)
		}
		body, _ := f[2].(string)
		msg, err := decodeMessage([]byte(body))
		if err != nil {
			return Claim{}, err
		}
		n, _ := f[3].(int64)
		lease, _ := f[4].(string)
		until, err := strconv.ParseInt(lease, 10, 64)
		if err != nil {
			return Claim{}, fmt.Errorf("%w: lease %v", ErrCorrupt, f[4])
		}
		c.Status = Claimed
		c.Message = Scheduled{Message: msg, Seq: seq, Claims: int(n), LeaseUntil: time.Unix(until, 0)}
	default:
		return Claim{}, fmt.Errorf("%w: claim status %v", ErrCorrupt, f[1])
	}
	return c, nil
}

// member is the sorted-set member of a message number: 16 hex digits, so
// that the set orders equal due times by number, that is by schedule order.
func member(seq uint64) string {
	const digits = "0123456789abcdef"
	var b [16]byte
	for i := 15; i >= 0; i-- {
		b[i] = digits[seq&15]
		seq >>= 4
	}
	return string(b[:])
}

func parseMember(v any) (uint64, error) {
	s, ok := v.(string)
	if !ok || len(s) != 16 {
		return 0, fmt.Errorf("%w: member %v", ErrCorrupt, v)
	}
	seq, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: member %q", ErrCorrupt, s)
	}
	return seq, nil
}
