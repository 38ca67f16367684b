package delay

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// cancels holds cancellation marks for level messages in Redis.
//
// A level message sits in a Pulsar topic, where it cannot be removed, and
// no index of level messages is kept (that is the point of levels). So a
// cancel leaves a mark that the forwarder reads just before it forwards:
//
//	P lc:u:<uid>            cancel time (Unix ms): the message with this uid
//	P lc:k:<topic>\n<key>   cancel time (Unix ms): every message for topic
//	                        with key accepted at or before that time
//
// A mark expires after the longest level plus a margin, by which time every
// message it could match has been forwarded or dropped. The key mark keeps
// the latest cancel time, so a message accepted after CancelByKey is
// delivered as usual.
type cancels struct {
	rdb     redis.UniversalClient
	prefix  string
	ttl     time.Duration
	timeout time.Duration
}

// keepLatest: KEYS mark; ARGV time (ms), ttl (s). Sets the mark unless it
// already holds a later time, and renews its lifetime.
var keepLatest = redis.NewScript(`
local v = tonumber(redis.call('GET', KEYS[1]))
if not v or v < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
else
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 1
`)

func (c *cancels) uidKey(uid string) string { return c.prefix + "lc:u:" + uid }

func (c *cancels) keyKey(topic, key string) string { return c.prefix + "lc:k:" + topic + "\n" + key }

func (c *cancels) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.timeout)
}

func (c *cancels) mark(ctx context.Context, key string, at time.Time) error {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	ttl := int64(math.Ceil(c.ttl.Seconds()))
	if err := keepLatest.Run(ctx, c.rdb, []string{key}, at.UnixMilli(), ttl).Err(); err != nil {
		return fmt.Errorf("delay: mark cancelled: %w", err)
	}
	return nil
}

// cancelKey marks every level message for topic with key accepted at or
// before at as cancelled.
func (c *cancels) cancelKey(ctx context.Context, topic, key string, at time.Time) error {
	return c.mark(ctx, c.keyKey(topic, key), at)
}

// cancelled reports whether a mark covers the message: one round trip.
func (c *cancels) cancelled(ctx context.Context, uid, topic, key string, accepted time.Time) (bool, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	var byUID, byKey *redis.StringCmd
	_, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		byUID = p.Get(ctx, c.uidKey(uid))
		if key != "" {
			byKey = p.Get(ctx, c.keyKey(topic, key))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, fmt.Errorf("delay: read cancel marks: %w", err)
	}
	if byUID.Err() == nil {
		return true, nil
	}
	if byKey != nil && byKey.Err() == nil {
		at, err := strconv.ParseInt(byKey.Val(), 10, 64)
		if err != nil {
			return false, fmt.Errorf("%w: cancel mark %q", ErrCorrupt, byKey.Val())
		}
		return accepted.UnixMilli() <= at, nil
	}
	return false, nil
}
