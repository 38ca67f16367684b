package delay

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sync"
	"time"
)

// Wheel is a hierarchical timing wheel held in memory.
//
// A timer is an id (chosen by the caller, unique among pending timers) and a
// due time. The wheel never fires a timer early: the due time is rounded up
// to the next tick boundary, and the timer is handed out by the first call of
// Advance whose now is at or after that boundary. When Advance is called at
// every tick boundary (as Runner does), a timer is therefore at most one tick
// late.
//
// The wheel does not read the clock: time moves only through Advance, so
// tests drive it with whatever time they like.
//
// Layout: level L has 2^b slots; a slot is a plain slice of 16-byte entries
// (id, due tick), so a pending timer costs 16 bytes plus the slack of its
// slot's slice, and no heap object of its own. A timer sits at the level of
// the highest base-2^b digit in which its due tick differs from the current
// tick, in the slot named by that digit of its due tick. Its place is thus a
// function of (due, current tick) alone, which is what lets Cancel find it
// without an index. Delays beyond the top level's reach are kept in the top
// level under their digit modulo 2^b and re-examined each time that slot
// comes round, until they are due ("rollover").
//
// Ties: timers with the same due tick come out in the order they were added.
//
// A Wheel is safe for concurrent use.
type Wheel struct {
	mu sync.Mutex

	tick  int64  // nanoseconds per tick
	bits  uint   // log2(slots per level)
	mask  uint64 // slots per level - 1
	top   int    // index of the top level
	slots [][]entry
	cur   int64 // last tick processed: every timer due at or before it has been handed out or is in ready

	ready   []entry // due at or before cur, not yet handed out
	live    int     // pending timers, not counting cancelled ones
	stored  int     // entries in slots, counting cancelled ones not yet swept out
	scratch []entry // reused by cascade
}

// entry is one pending timer: 16 bytes.
type entry struct {
	id  uint64
	due int64 // tick index; cancelled when equal to dead
}

const dead = math.MinInt64

// Expired is a timer handed out by Advance. Due is the tick boundary at which
// it became due (the requested due time rounded up to the tick).
type Expired struct {
	ID  uint64
	Due time.Time
}

// WheelConfig configures a Wheel. The zero value is usable.
type WheelConfig struct {
	// Tick is the precision; default one second.
	Tick time.Duration
	// Span is the delay the levels cover without rollover; default 24 hours.
	// Longer delays work too, they are re-examined once per span.
	Span time.Duration
	// SlotsPerLevel is a power of two between 2 and 4096; default 64.
	SlotsPerLevel int
}

// ErrConfig reports an unusable configuration (WheelConfig, LevelsConfig,
// Config).
var ErrConfig = errors.New("delay: invalid configuration")

const (
	defaultTick  = time.Second
	defaultSpan  = 24 * time.Hour
	defaultSlots = 64
	releaseCap   = 1024 // a drained slot with more capacity than this gives it back
)

func (c WheelConfig) withDefaults() (WheelConfig, error) {
	if c.Tick == 0 {
		c.Tick = defaultTick
	}
	if c.Span == 0 {
		c.Span = defaultSpan
	}
	if c.SlotsPerLevel == 0 {
		c.SlotsPerLevel = defaultSlots
	}
	switch {
	case c.Tick < 0:
		return c, fmt.Errorf("%w: tick %s", ErrConfig, c.Tick)
	case c.Span < c.Tick:
		return c, fmt.Errorf("%w: span %s shorter than tick %s", ErrConfig, c.Span, c.Tick)
	case c.SlotsPerLevel < 2 || c.SlotsPerLevel > 4096 || c.SlotsPerLevel&(c.SlotsPerLevel-1) != 0:
		return c, fmt.Errorf("%w: slots per level %d is not a power of two in [2, 4096]", ErrConfig, c.SlotsPerLevel)
	}
	return c, nil
}

// NewWheel returns an empty wheel whose current time is now.
func NewWheel(cfg WheelConfig, now time.Time) (*Wheel, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	b := uint(bits.TrailingZeros(uint(cfg.SlotsPerLevel)))
	spanTicks := uint64((cfg.Span + cfg.Tick - 1) / cfg.Tick)
	levels := 1
	for levels*int(b) < 63 && uint64(1)<<(uint(levels)*b) < spanTicks {
		levels++
	}
	w := &Wheel{
		tick:  int64(cfg.Tick),
		bits:  b,
		mask:  uint64(cfg.SlotsPerLevel - 1),
		top:   levels - 1,
		slots: make([][]entry, levels<<b),
	}
	w.cur = w.floorTick(now)
	return w, nil
}

// Levels is the number of levels, for tests and metrics.
func (w *Wheel) Levels() int { return w.top + 1 }

// Add schedules id at due. A due time at or before the wheel's current time
// fires on the next Advance. Ids are not checked for uniqueness.
func (w *Wheel) Add(id uint64, due time.Time) {
	d := w.ceilTick(due)
	w.mu.Lock()
	w.place(entry{id: id, due: d})
	w.live++
	w.mu.Unlock()
}

// Cancel removes the pending timer id that was added with due (the same
// value given to Add). It reports whether such a timer was pending. Cost is
// a scan of one slot.
func (w *Wheel) Cancel(id uint64, due time.Time) bool {
	d := w.ceilTick(due)
	w.mu.Lock()
	defer w.mu.Unlock()
	var s []entry
	if d <= w.cur {
		s = w.ready
	} else {
		s = w.slots[w.slotOf(d)]
	}
	for i := range s {
		if s[i].id == id && s[i].due == d {
			s[i].due = dead
			w.live--
			return true
		}
	}
	return false
}

// Len is the number of pending timers.
func (w *Wheel) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.live
}

// Now is the start of the last tick the wheel has processed.
func (w *Wheel) Now() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.timeOf(w.cur)
}

// Advance moves the wheel to now and appends every timer that is due (due
// tick boundary at or before now) to dst, in due order and, for equal due
// times, in the order they were added. A now before the wheel's current time
// only hands out timers added in the past since the last call.
func (w *Wheel) Advance(now time.Time, dst []Expired) []Expired {
	target := w.floorTick(now)
	w.mu.Lock()
	defer w.mu.Unlock()
	// Timers added in the past came in arbitrary order.
	slices.SortStableFunc(w.ready, func(a, b entry) int { return cmpInt64(a.due, b.due) })
	if target > w.cur {
		if w.stored == 0 {
			w.cur = target
		} else if uint64(target-w.cur) > uint64(1)<<(uint(w.top+1)*w.bits) {
			w.rebuild(target)
		}
		for w.cur < target {
			w.step()
		}
	}
	for _, e := range w.ready {
		if e.due != dead {
			dst = append(dst, Expired{ID: e.id, Due: w.timeOf(e.due)})
			w.live--
		}
	}
	w.ready = release(w.ready)
	return dst
}

// step processes tick cur+1: from the top level down, it re-places the
// entries of each slot that comes round at that tick; those now due go to
// ready. Level 0 comes round every tick.
func (w *Wheel) step() {
	w.cur++
	t := uint64(w.cur)
	for lvl := w.top; lvl >= 0; lvl-- {
		shift := uint(lvl) * w.bits
		if t&(uint64(1)<<shift-1) == 0 {
			w.cascade(lvl<<w.bits | int(t>>shift&w.mask))
		}
	}
}

// cascade re-places the entries of slot i relative to the current tick.
func (w *Wheel) cascade(i int) {
	old := w.slots[i]
	if len(old) == 0 {
		return
	}
	w.slots[i] = w.scratch[:0]
	w.stored -= len(old)
	for _, e := range old {
		if e.due != dead {
			w.place(e)
		}
	}
	w.scratch = release(old)
}

// rebuild jumps to target directly, for gaps longer than the whole wheel: it
// takes every entry out, orders them by due time and places them again.
func (w *Wheel) rebuild(target int64) {
	all := make([]entry, 0, len(w.ready)+w.stored)
	for _, e := range w.ready {
		if e.due != dead {
			all = append(all, e)
		}
	}
	for i := range w.slots {
		for _, e := range w.slots[i] {
			if e.due != dead {
				all = append(all, e)
			}
		}
		w.slots[i] = nil
	}
	// Entries with equal due times share one slot, in insertion order, so a
	// stable sort keeps ties in insertion order.
	slices.SortStableFunc(all, func(a, b entry) int { return cmpInt64(a.due, b.due) })
	w.ready, w.stored, w.cur = w.ready[:0], 0, target
	for _, e := range all {
		w.place(e)
	}
}

func (w *Wheel) place(e entry) {
	if e.due <= w.cur {
		w.ready = append(w.ready, e)
		return
	}
	i := w.slotOf(e.due)
	w.slots[i] = append(w.slots[i], e)
	w.stored++
}

// slotOf is the slot index of a due tick after the current one.
func (w *Wheel) slotOf(due int64) int {
	lvl := (bits.Len64(uint64(due^w.cur)) - 1) / int(w.bits)
	if lvl > w.top {
		lvl = w.top
	}
	return lvl<<w.bits | int(uint64(due)>>(uint(lvl)*w.bits)&w.mask)
}

// floorTick is the tick containing t; times before 1970 count as tick 0.
func (w *Wheel) floorTick(t time.Time) int64 {
	ns := t.UnixNano()
	if ns < 0 {
		return 0
	}
	return ns / w.tick
}

// ceilTick is the first tick boundary at or after t.
func (w *Wheel) ceilTick(t time.Time) int64 {
	if w.tick == int64(time.Second) { // the common case, without a 64-bit division
		s := t.Unix()
		if s < 0 {
			return 0
		}
		if t.Nanosecond() > 0 {
			s++
		}
		return s
	}
	ns := t.UnixNano()
	if ns <= 0 {
		return 0
	}
	return (ns-1)/w.tick + 1
}

func (w *Wheel) timeOf(tick int64) time.Time {
	return time.Unix(0, tick*w.tick)
}

// release empties s, keeping its array unless it is large.
func release(s []entry) []entry {
	if cap(s) > releaseCap {
		return nil
	}
	return s[:0]
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
