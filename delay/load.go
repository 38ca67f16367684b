package delay

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Reading the index back. Scores are whole seconds by construction (due
// times are rounded up, leases are whole seconds), which the by-second path
// relies on.

const (
	// pagesInFlight is how many rank pages loadScored asks for in one
	// pipeline.
	pagesInFlight = 8
	// bySecondSpan is the widest range loadBySecond reads, one command per
	// second; older entries (the overdue backlog) are read by rank pages.
	bySecondSpan = 6 * 3600
	// secondsInFlight is how many seconds loadBySecond asks for in one
	// pipeline.
	secondsInFlight = 256
)

// cursorFallbacks counts LoadRange calls that found the set moving and
// switched to the cursor script; tests read it.
var cursorFallbacks atomic.Int64

// LoadRange calls fn, in due order and for equal due times in schedule
// order, with the number and due time of every message due in [from, to]
// (a claimed message counts as due at its lease deadline). It is meant for
// filling a Wheel on start: no log is replayed.
//
// The last bySecondSpan seconds of the range are read one second at a time,
// pipelined, with ZRANGE BYSCORE s s: the due time is the second asked for,
// so Redis does not have to format a score per entry, which costs it about
// three times the walk itself. Anything earlier is read in rank pages with
// scores (see loadScored). An entry that does not move while LoadRange runs
// is reported exactly once; one that moves may be reported twice or missed
// (a new or rescheduled message is the writer's business, see Scheduler).
func (x *Index) LoadRange(ctx context.Context, from, to time.Time, fn func(seq uint64, due time.Time)) (int, error) {
	hi := dueSeconds(to)
	cut := hi - bySecondSpan + 1
	l := loader{x: x, fn: fn}
	if from.Before(time.Unix(0, 0)) || from.Unix() < cut {
		lo := "-inf"
		if !from.Before(time.Unix(0, 0)) {
			lo = strconv.FormatInt(from.Unix(), 10)
		}
		l.hi = float64(cut - 1)
		if err := x.loadScored(ctx, &l, lo); err != nil {
			return l.n, err
		}
	} else {
		cut = from.Unix()
	}
	err := x.loadBySecond(ctx, &l, cut, hi)
	return l.n, err
}

// loadBySecond reads the entries with scores lo, lo+1, ..., hi. One
// goroutine fetches windows of secondsInFlight seconds while the caller's
// goroutine hands the previous window to fn, so Redis and the wheel work at
// the same time.
func (x *Index) loadBySecond(ctx context.Context, l *loader, lo, hi int64) error {
	type window struct {
		start int64
		cmds  []*redis.StringSliceCmd
		err   error
	}
	ctx, cancel := context.WithCancel(ctx)
	windows := make(chan window, 1)
	go func() {
		defer close(windows)
		for s := lo; s <= hi; {
			end := min(hi, s+secondsInFlight-1)
			w := window{start: s, cmds: make([]*redis.StringSliceCmd, 0, end-s+1)}
			cctx, cancelCall := x.ctx(ctx)
			_, w.err = x.rdb.Pipelined(cctx, func(p redis.Pipeliner) error {
				for t := s; t <= end; t++ {
					v := strconv.FormatInt(t, 10)
					w.cmds = append(w.cmds, p.ZRangeByScore(cctx, x.dueKey, &redis.ZRangeBy{Min: v, Max: v}))
				}
				return nil
			})
			cancelCall()
			select {
			case windows <- w:
			case <-ctx.Done():
				return
			}
			if w.err != nil {
				return
			}
			s = end + 1
		}
	}()
	defer func() {
		cancel()
		for range windows { // let the fetcher finish
		}
	}()
	for w := range windows {
		if w.err != nil {
			return fmt.Errorf("delay: load range: %w", w.err)
		}
		for i, c := range w.cmds {
			due := time.Unix(w.start+int64(i), 0)
			for _, m := range c.Val() {
				seq, err := parseMember(m)
				if err != nil {
					return err
				}
				l.fn(seq, due)
				l.n++
			}
		}
	}
	return nil
}

// loadScored reads the entries with scores from lo up to l.hi in rank
// pages of PageSize with their scores. It asks for several pages in one
// pipeline, each page overlapping the previous one by one entry. If that
// entry is not the one the previous page ended with, the set changed under
// the reader, and the rest is read by the slower cursor script, which
// continues strictly after the last entry seen.
func (x *Index) loadScored(ctx context.Context, l *loader, lo string) error {
	cctx, cancel := x.ctx(ctx)
	var first, end *redis.IntCmd
	_, err := x.rdb.Pipelined(cctx, func(p redis.Pipeliner) error {
		first = p.ZCount(cctx, x.dueKey, "-inf", "("+lo)
		end = p.ZCount(cctx, x.dueKey, "-inf", strconv.FormatFloat(l.hi, 'f', -1, 64))
		return nil
	})
	cancel()
	if err != nil {
		return fmt.Errorf("delay: load range: %w", err)
	}
	next, stop := first.Val(), end.Val() // ranks [next, stop) are due in range
	page := int64(x.page)
	for next < stop && !l.done {
		cctx, cancel := x.ctx(ctx)
		var cmds []*redis.ZSliceCmd
		_, err := x.rdb.Pipelined(cctx, func(p redis.Pipeliner) error {
			for k := int64(0); k < pagesInFlight && next+k*page < stop; k++ {
				start := next + k*page
				if l.n > 0 || k > 0 {
					start-- // overlap by one entry to check continuity
				}
				cmds = append(cmds, p.ZRangeWithScores(cctx, x.dueKey, start, next+(k+1)*page-1))
			}
			return nil
		})
		cancel()
		if err != nil {
			return fmt.Errorf("delay: load range: %w", err)
		}
		for _, c := range cmds {
			zs := c.Val()
			if l.n > 0 {
				if len(zs) == 0 || !l.isLast(zs[0]) {
					cursorFallbacks.Add(1)
					return l.cursor(ctx, lo) // the set moved: continue carefully
				}
				zs = zs[1:]
			}
			if err := l.take(zs); err != nil {
				return err
			}
			next += page
			if l.done {
				break
			}
		}
	}
	return nil
}

// loader is the state of one LoadRange.
type loader struct {
	x         *Index
	hi        float64
	fn        func(seq uint64, due time.Time)
	n         int
	lastM     string
	lastScore float64
	done      bool // an entry beyond hi was seen
}

func (l *loader) isLast(z redis.Z) bool {
	m, _ := z.Member.(string)
	return m == l.lastM && z.Score == l.lastScore
}

func (l *loader) take(zs []redis.Z) error {
	for _, z := range zs {
		if z.Score > l.hi {
			l.done = true
			return nil
		}
		m, _ := z.Member.(string)
		seq, err := parseMember(m)
		if err != nil {
			return err
		}
		l.fn(seq, time.Unix(int64(math.Ceil(z.Score)), 0))
		l.n++
		l.lastM, l.lastScore = m, z.Score
	}
	return nil
}

// cursor reads the rest of the range with pageScript, one page per round
// trip, each starting strictly after the last entry seen.
func (l *loader) cursor(ctx context.Context, lo string) error {
	for !l.done {
		cctx, cancel := l.x.ctx(ctx)
		res, err := pageScript.Run(cctx, l.x.rdb, []string{l.x.dueKey},
			lo, l.x.page, l.lastM, strconv.FormatFloat(l.lastScore, 'f', -1, 64)).StringSlice()
		cancel()
		if err != nil {
			return fmt.Errorf("delay: load range: %w", err)
		}
		if len(res)%2 != 0 {
			return fmt.Errorf("%w: odd page reply", ErrCorrupt)
		}
		zs := make([]redis.Z, 0, len(res)/2)
		for i := 0; i < len(res); i += 2 {
			score, err := strconv.ParseFloat(res[i+1], 64)
			if err != nil {
				return fmt.Errorf("%w: score %q", ErrCorrupt, res[i+1])
			}
			zs = append(zs, redis.Z{Member: res[i], Score: score})
		}
		if err := l.take(zs); err != nil {
			return err
		}
		if len(res)/2 < l.x.page {
			break
		}
	}
	return nil
}
