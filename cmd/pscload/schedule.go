package main

import (
	"sort"
	"time"
)

// schedule maps a request's global index (its slot) to its step and its
// intended send time, counted from the run's start. It is immutable and
// safe for concurrent use.
type schedule struct {
	steps  []step
	starts []time.Duration // step k starts at starts[k]; starts[len] is the end
	first  []int64         // step k's slots are first[k] .. first[k+1]-1
}

func newSchedule(steps []step) *schedule {
	s := &schedule{steps: steps}
	var at time.Duration
	var n int64
	for _, st := range steps {
		s.starts = append(s.starts, at)
		s.first = append(s.first, n)
		at += st.Duration
		n += st.slots()
	}
	s.starts = append(s.starts, at)
	s.first = append(s.first, n)
	return s
}

// total is how many requests the schedule sends.
func (s *schedule) total() int64 { return s.first[len(s.first)-1] }

// duration is the whole profile's length.
func (s *schedule) duration() time.Duration { return s.starts[len(s.starts)-1] }

// slot returns slot i's step and intended offset from the run's start
// (0 <= i < total).
func (s *schedule) slot(i int64) (int, time.Duration) {
	k := sort.Search(len(s.steps), func(k int) bool { return s.first[k+1] > i })
	return k, s.starts[k] + s.steps[k].offset(i-s.first[k])
}

// stepAt returns the step whose window holds offset d, or -1 after the end
// (an answer that arrives after the profile ended is in no step's window).
func (s *schedule) stepAt(d time.Duration) int {
	if d < 0 {
		return 0
	}
	k := sort.Search(len(s.steps), func(k int) bool { return s.starts[k+1] > d })
	if k == len(s.steps) {
		return -1
	}
	return k
}
