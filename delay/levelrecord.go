package delay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/redis/go-redis/v9"
)

// Level records: what the delay API by uid needs to know about a level
// message, kept in Redis beside the cancel marks (issue 12).
//
//	P ll:<uid>   {"t":topic,"k":key,"g":tags,"a":app,"l":level,"d":due ms,"n":payload bytes}
//
// The message itself stays in its level topic; the record only answers
// "does a level message with this uid wait, and for which topic". Without
// it the engine could not tell another app's uid, or one that never
// existed, from a real one: a cancel would leave a mark for any string
// and the caller's permission could not be checked (the topic is unknown).
//
// A record is written while the level message is published (both before
// the produce answer), deleted by a cancel by uid and by the forwarder once
// the message is forwarded or dropped, and expires, like the marks, after
// its level plus CancelMargin. About 150 B per waiting level message.
type levelRecord struct {
	Topic string   `json:"t"`
	Key   string   `json:"k,omitempty"`
	Tags  []string `json:"g,omitempty"`
	App   string   `json:"a,omitempty"`
	Level string   `json:"l"`
	Due   int64    `json:"d"` // Unix ms
	Size  int      `json:"n"`
}

func (c *cancels) recordKey(uid string) string { return c.prefix + "ll:" + uid }

// putRecord stores the record of a level message for lifetime (its level
// plus CancelMargin).
func (c *cancels) putRecord(ctx context.Context, uid string, r levelRecord, lifetime time.Duration) error {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("delay: encode level record: %w", err)
	}
	if err := c.rdb.Set(ctx, c.recordKey(uid), b, time.Duration(math.Ceil(lifetime.Seconds()))*time.Second).Err(); err != nil {
		return fmt.Errorf("delay: store level record: %w", err)
	}
	return nil
}

// getRecord reads the record of a waiting level message: ErrNotFound when
// there is none, or when a cancel by (topic, key) covers it (the forwarder
// will drop it; until then its record is still there).
func (c *cancels) getRecord(ctx context.Context, uid string) (levelRecord, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	var r levelRecord
	b, err := c.rdb.Get(ctx, c.recordKey(uid)).Bytes()
	if errors.Is(err, redis.Nil) {
		return r, ErrNotFound
	}
	if err != nil {
		return r, fmt.Errorf("delay: read level record: %w", err)
	}
	if err := json.Unmarshal(b, &r); err != nil || r.Topic == "" {
		return r, fmt.Errorf("%w: level record of %s", ErrCorrupt, uid)
	}
	lv, err := ParseLevel(r.Level)
	if err != nil {
		return r, fmt.Errorf("%w: level record of %s: %w", ErrCorrupt, uid, err)
	}
	accepted := time.UnixMilli(r.Due).Add(-lv.Delay)
	cancelled, err := c.cancelled(ctx, uid, r.Topic, r.Key, accepted)
	if err != nil {
		return r, err
	}
	if cancelled {
		return r, ErrNotFound
	}
	return r, nil
}

// cancelRecord marks the level message with this uid cancelled and deletes
// its record, atomically: a second cancel finds nothing (as for the wheel).
func (c *cancels) cancelRecord(ctx context.Context, uid string, at time.Time) error {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	ttl := int64(math.Ceil(c.ttl.Seconds()))
	if err := cancelRecordScript.Run(ctx, c.rdb, []string{c.uidKey(uid), c.recordKey(uid)}, at.UnixMilli(), ttl).Err(); err != nil {
		return fmt.Errorf("delay: mark cancelled: %w", err)
	}
	return nil
}

// cancelRecordScript: KEYS uid mark, record; ARGV time (ms), ttl (s).
var cancelRecordScript = redis.NewScript(`
local v = tonumber(redis.call('GET', KEYS[1]))
if not v or v < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
else
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
redis.call('DEL', KEYS[2])
return 1
`)

// forgetRecord deletes the record of a level message that was forwarded
// or dropped. Best effort: a record left behind expires.
func (c *cancels) forgetRecord(ctx context.Context, uid string) error {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	return c.rdb.Del(ctx, c.recordKey(uid)).Err()
}

// scheduled is the record as the engine's answers show it.
func (r levelRecord) scheduled(uid string) Scheduled {
	return Scheduled{
		Message: Message{UID: uid, Topic: r.Topic, Key: r.Key, Tags: r.Tags, App: r.App, Due: time.UnixMilli(r.Due)},
		Mode:    ModeLevel, Level: r.Level, Size: r.Size,
	}
}
