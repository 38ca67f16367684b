package delay

import (
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var t0 = time.Unix(1_700_000_000, 250_000_000) // a quarter past a second boundary

func newWheel(t testing.TB, cfg WheelConfig, now time.Time) *Wheel {
	t.Helper()
	w, err := NewWheel(cfg, now)
	require.NoError(t, err)
	return w
}

func ids(exp []Expired) []uint64 {
	var out []uint64
	for _, e := range exp {
		out = append(out, e.ID)
	}
	return out
}

func TestWheelConfig(t *testing.T) {
	tests := []struct {
		name   string
		cfg    WheelConfig
		levels int
		err    bool
	}{
		{name: "defaults: 24h of seconds in 64-slot levels", cfg: WheelConfig{}, levels: 3},
		{name: "one level", cfg: WheelConfig{Span: time.Minute}, levels: 1},
		{name: "two levels", cfg: WheelConfig{Span: 65 * time.Second}, levels: 2},
		{name: "small slots", cfg: WheelConfig{Span: time.Hour, SlotsPerLevel: 4}, levels: 6},
		{name: "millisecond tick", cfg: WheelConfig{Tick: time.Millisecond, Span: time.Minute, SlotsPerLevel: 256}, levels: 2},
		{name: "slots not a power of two", cfg: WheelConfig{SlotsPerLevel: 60}, err: true},
		{name: "one slot", cfg: WheelConfig{SlotsPerLevel: 1}, err: true},
		{name: "negative tick", cfg: WheelConfig{Tick: -time.Second}, err: true},
		{name: "span below tick", cfg: WheelConfig{Tick: time.Minute, Span: time.Second}, err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := NewWheel(tt.cfg, t0)
			if tt.err {
				require.ErrorIs(t, err, ErrConfig)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.levels, w.Levels())
		})
	}
}

func TestWheelOrder(t *testing.T) {
	type add struct {
		id    uint64
		delay time.Duration
	}
	tests := []struct {
		name  string
		adds  []add
		steps []time.Duration // Advance to t0+step, in order
		want  [][]uint64      // ids handed out by each step
	}{
		{
			name:  "due order, not insertion order",
			adds:  []add{{1, 3 * time.Second}, {2, time.Second}, {3, 2 * time.Second}},
			steps: []time.Duration{10 * time.Second},
			want:  [][]uint64{{2, 3, 1}},
		},
		{
			name:  "ties keep insertion order",
			adds:  []add{{5, 2 * time.Second}, {4, 2500 * time.Millisecond}, {3, 2 * time.Second}, {9, 2700 * time.Millisecond}, {1, 1500 * time.Millisecond}},
			steps: []time.Duration{5 * time.Second},
			want:  [][]uint64{{1, 5, 4, 3, 9}}, // all but 1 round up to t0-250ms+3s
		},
		{
			name:  "not before the rounded-up boundary",
			adds:  []add{{1, 0}, {2, 750 * time.Millisecond}, {3, 751 * time.Millisecond}},
			steps: []time.Duration{700 * time.Millisecond, 750 * time.Millisecond, 1749 * time.Millisecond, 1750 * time.Millisecond},
			want:  [][]uint64{nil, {1, 2}, nil, {3}},
		},
		{
			name:  "past and present fire on the next advance",
			adds:  []add{{1, -time.Hour}, {2, -2 * time.Hour}, {3, -250 * time.Millisecond}, {4, 0}},
			steps: []time.Duration{0, 750 * time.Millisecond},
			want:  [][]uint64{{2, 1, 3}, {4}}, // 3 is due on the boundary just passed
		},
		{
			name:  "across level boundaries",
			adds:  []add{{1, 70 * time.Second}, {2, 64 * time.Second}, {3, 4100 * time.Second}, {4, 63 * time.Second}},
			steps: []time.Duration{63 * time.Second, 64 * time.Second, 65 * time.Second, 4100 * time.Second, 4101 * time.Second},
			want:  [][]uint64{nil, {4}, {2}, {1}, {3}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWheel(t, WheelConfig{}, t0)
			for _, a := range tt.adds {
				w.Add(a.id, t0.Add(a.delay))
			}
			for i, st := range tt.steps {
				got := w.Advance(t0.Add(st), nil)
				require.Equal(t, tt.want[i], ids(got), "step %d (t0+%s)", i, st)
			}
			require.Zero(t, w.Len())
		})
	}
}

func TestWheelRolloverBeyondSpan(t *testing.T) {
	// A one-minute wheel holding delays of hours, driven tick by tick and by
	// jumps: each timer fires at its own boundary, never in an earlier lap.
	for _, drive := range []string{"tick by tick", "jumps"} {
		t.Run(drive, func(t *testing.T) {
			w := newWheel(t, WheelConfig{Span: time.Minute, SlotsPerLevel: 8}, t0)
			delays := []time.Duration{3 * time.Hour, 61 * time.Second, 64 * time.Second, 128*time.Second + 1, 10 * time.Minute, 2*time.Hour + 1}
			for i, d := range delays {
				w.Add(uint64(i), t0.Add(d))
			}
			fired := map[uint64]time.Time{}
			step := time.Second
			if drive == "jumps" {
				step = 7 * time.Minute
			}
			start := t0.Truncate(time.Second)
			for now := start; now.Before(t0.Add(4 * time.Hour)); now = now.Add(step) {
				for _, e := range w.Advance(now, nil) {
					fired[e.ID] = now
				}
			}
			require.Len(t, fired, len(delays))
			for i, d := range delays {
				due := t0.Add(d)
				at := fired[uint64(i)]
				require.False(t, at.Before(due), "timer %d (%s) fired early at %s", i, d, at)
				require.Less(t, at.Sub(due), step+time.Second, "timer %d (%s) fired late", i, d)
			}
		})
	}
}

func TestWheelCancel(t *testing.T) {
	w := newWheel(t, WheelConfig{Span: time.Hour, SlotsPerLevel: 16}, t0)
	due := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	w.Add(1, due(5))
	w.Add(2, due(5))
	w.Add(3, due(300))
	w.Add(4, due(-10)) // already due, waiting in ready
	w.Add(5, due(2*3600))
	require.Equal(t, 5, w.Len())

	require.True(t, w.Cancel(1, due(5)))
	require.False(t, w.Cancel(1, due(5)), "second cancel")
	require.False(t, w.Cancel(2, due(6)), "wrong due")
	require.False(t, w.Cancel(99, due(5)), "unknown id")
	require.True(t, w.Cancel(4, due(-10)))
	require.True(t, w.Cancel(5, due(2*3600)))
	require.Equal(t, 2, w.Len())

	require.Equal(t, []uint64{2}, ids(w.Advance(due(10), nil)))
	require.False(t, w.Cancel(2, due(5)), "already fired")
	// 3 has cascaded to lower levels by now; Cancel still finds it.
	w.Advance(due(290), nil)
	require.True(t, w.Cancel(3, due(300)))
	require.Empty(t, w.Advance(due(3*3600), nil))
	require.Zero(t, w.Len())
}

func TestWheelLongGapRebuild(t *testing.T) {
	w := newWheel(t, WheelConfig{Span: time.Minute, SlotsPerLevel: 4}, t0)
	var want []uint64
	for i := range 50 {
		// descending delays with pairs of equal due times
		w.Add(uint64(i), t0.Add(time.Duration(200-i/2)*time.Second))
	}
	for i := range 50 {
		want = append(want, uint64(i))
	}
	slices.SortStableFunc(want, func(a, b uint64) int { return int(200-a/2) - int(200-b/2) })
	got := w.Advance(t0.Add(365*24*time.Hour), nil)
	require.Equal(t, want, ids(got))
	w.Add(100, t0.Add(365*24*time.Hour+2*time.Second))
	require.Empty(t, w.Advance(t0.Add(365*24*time.Hour+time.Second), nil))
	require.Equal(t, []uint64{100}, ids(w.Advance(t0.Add(365*24*time.Hour+3*time.Second), nil)))
}

func TestWheelClockBackwards(t *testing.T) {
	w := newWheel(t, WheelConfig{}, t0)
	w.Add(1, t0.Add(2*time.Second))
	require.Empty(t, w.Advance(t0.Add(-time.Hour), nil))
	require.Equal(t, 1, w.Len())
	require.Empty(t, w.Advance(t0.Add(2*time.Second), nil), "t0+2s lies before the boundary")
	require.Equal(t, []uint64{1}, ids(w.Advance(t0.Add(2750*time.Millisecond), nil)))
}

// model is the obvious, slow implementation the wheel must agree with.
type model struct {
	tick    time.Duration
	pending []modelTimer
}

type modelTimer struct {
	id       uint64
	due      time.Time // as requested
	boundary time.Time // rounded up to the tick
}

func (m *model) add(id uint64, due time.Time) {
	b := due.Truncate(m.tick)
	if b.Before(due) {
		b = b.Add(m.tick)
	}
	m.pending = append(m.pending, modelTimer{id: id, due: due, boundary: b})
}

func (m *model) cancel(id uint64) bool {
	for i, p := range m.pending {
		if p.id == id {
			m.pending = slices.Delete(m.pending, i, i+1)
			return true
		}
	}
	return false
}

func (m *model) advance(now time.Time) []modelTimer {
	var out, keep []modelTimer
	for _, p := range m.pending {
		if !p.boundary.After(now) {
			out = append(out, p)
		} else {
			keep = append(keep, p)
		}
	}
	m.pending = keep
	slices.SortStableFunc(out, func(a, b modelTimer) int { return a.boundary.Compare(b.boundary) })
	return out
}

// runModel plays ops decoded from data against a wheel and the model and
// fails on any difference. It also checks the two promises directly: never
// before the due time, and, when driven at every tick boundary, less than a
// tick after it.
func runModel(t *testing.T, cfg WheelConfig, data []byte) {
	w := newWheel(t, cfg, t0)
	m := &model{tick: cfg.Tick}
	now := t0
	nextID := uint64(1)
	dues := map[uint64]time.Time{}
	for len(data) >= 5 {
		op, arg := data[0], binary.LittleEndian.Uint32(data[1:5])
		data = data[5:]
		switch op % 8 {
		case 0, 1, 2, 3: // add, delays from a little in the past to many spans ahead
			span := int64(cfg.Span)
			d := time.Duration(int64(arg)%(3*span) - span/8)
			if op%8 == 3 {
				d = time.Duration(int64(arg) % int64(4*cfg.Tick)) // near: exercises level 0 and rounding
			}
			due := now.Add(d)
			w.Add(nextID, due)
			m.add(nextID, due)
			dues[nextID] = due
			nextID++
		case 4: // cancel a known or unknown id
			if nextID == 1 {
				continue
			}
			id := uint64(arg)%nextID + 1
			due, ok := dues[id]
			if !ok {
				due = now
			}
			require.Equal(t, m.cancel(id), w.Cancel(id, due), "cancel %d", id)
		case 5, 6: // advance tick by tick for a while
			boundary := now.Truncate(cfg.Tick)
			for range int(arg % 50) {
				boundary = boundary.Add(cfg.Tick)
				now = boundary
				advanceBoth(t, w, m, now, dues, true)
			}
		case 7: // jump by an arbitrary duration
			now = now.Add(time.Duration(int64(arg) % (2 * int64(cfg.Span))))
			advanceBoth(t, w, m, now, dues, false)
		}
		require.Equal(t, len(m.pending), w.Len())
	}
	// Drain: everything must fire by the end, at its boundary.
	for len(m.pending) > 0 {
		now = now.Add(cfg.Span)
		advanceBoth(t, w, m, now, dues, false)
	}
	require.Zero(t, w.Len())
}

func advanceBoth(t *testing.T, w *Wheel, m *model, now time.Time, dues map[uint64]time.Time, tickByTick bool) {
	t.Helper()
	got := w.Advance(now, nil)
	want := m.advance(now)
	require.Equal(t, len(want), len(got), "count at %s", now)
	for i := range want {
		require.Equal(t, want[i].id, got[i].ID, "order at %s, position %d", now, i)
		require.True(t, want[i].boundary.Equal(got[i].Due), "due of %d", got[i].ID)
		due := dues[got[i].ID]
		require.False(t, now.Before(due), "timer %d due %s fired early at %s", got[i].ID, due, now)
		if tickByTick && !due.Before(w.timeOf(0)) {
			// due may lie in the past when added; lateness counts from when it could first fire
			from := due
			if prev := now.Add(-w.tickDuration()); from.Before(prev) {
				from = prev
			}
			require.Less(t, now.Sub(from), w.tickDuration()+1, "timer %d late", got[i].ID)
		}
		delete(dues, got[i].ID)
	}
}

func (w *Wheel) tickDuration() time.Duration { return time.Duration(w.tick) }

var modelConfigs = []WheelConfig{
	{Tick: time.Second, Span: 30 * time.Second, SlotsPerLevel: 4}, // 3 levels of 4, lots of rollover
	{Tick: time.Second, Span: time.Hour, SlotsPerLevel: 8},
	{Tick: time.Second, Span: 8 * time.Second, SlotsPerLevel: 8}, // a single level
	{Tick: 10 * time.Millisecond, Span: time.Second, SlotsPerLevel: 2},
}

func TestWheelAgainstModel(t *testing.T) {
	for i, cfg := range modelConfigs {
		for seed := range uint64(20) {
			r := rand.New(rand.NewPCG(seed, uint64(i)))
			data := make([]byte, 5*400)
			for j := range data {
				data[j] = byte(r.Uint32())
			}
			runModel(t, cfg, data)
		}
	}
}

func FuzzWheel(f *testing.F) {
	f.Add(uint8(0), []byte{0, 10, 0, 0, 0, 5, 3, 0, 0, 0})
	f.Add(uint8(1), []byte{3, 200, 1, 0, 0, 0, 7, 0, 0, 0, 4, 1, 0, 0, 0, 7, 255, 255, 255, 255})
	f.Add(uint8(3), []byte{1, 1, 2, 3, 4, 2, 9, 9, 9, 9, 5, 40, 0, 0, 0})
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		runModel(t, modelConfigs[int(which)%len(modelConfigs)], data)
	})
}
