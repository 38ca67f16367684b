package main

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Limits on a load profile. They keep a typo (an extra zero) from planning a
// run that would exhaust memory before it sends anything.
const (
	maxSteps        = 1000
	maxRate         = 1_000_000 // requests per second, per step
	maxStepDuration = 24 * time.Hour
	maxPercent      = 1000 // 10x the stated capacity
)

// ErrSteps marks a --steps value that does not parse; every error from
// parseSteps is a *stepsError that wraps it.
var ErrSteps = errors.New("pscload: bad --steps")

// stepsError says where in a --steps value parsing failed: Pos and End are
// byte offsets of the offending span, formatted "Pos:End: Msg" like
// tagfilter's errors.
type stepsError struct {
	Pos, End int
	Msg      string
}

func (e *stepsError) Error() string { return fmt.Sprintf("%d:%d: %s", e.Pos, e.End, e.Msg) }
func (e *stepsError) Unwrap() error { return ErrSteps }

// step is one constant-rate segment of the load profile: Rate requests per
// second for Duration. With Percent set, Rate is Percent% of --capacity and
// is filled in by resolve.
type step struct {
	Rate     float64
	Percent  bool
	Duration time.Duration
}

// parseSteps reads a profile such as "1000:30s,8000:30s" (absolute rates) or
// "10%:30s,80%:30s" (percent of a capacity given later to resolve). A rate
// of 0 is an idle step. Spaces around items are allowed.
func parseSteps(s string) ([]step, error) {
	if strings.TrimSpace(s) == "" {
		return nil, &stepsError{0, len(s), "empty profile: want RATE:DURATION[,RATE:DURATION...] such as 1000:30s or 10%:30s"}
	}
	var steps []step
	pos := 0
	for _, item := range strings.Split(s, ",") {
		start, end := pos, pos+len(item)
		pos = end + 1
		if len(steps) == maxSteps {
			return nil, &stepsError{start, len(s), fmt.Sprintf("more than %d steps", maxSteps)}
		}
		st, err := parseStep(item, start)
		if err != nil {
			return nil, err
		}
		steps = append(steps, st)
	}
	return steps, nil
}

// parseStep reads one "RATE:DURATION" item found at offset base.
func parseStep(item string, base int) (step, error) {
	lead := len(item) - len(strings.TrimLeft(item, " \t"))
	trimmed := strings.TrimSpace(item)
	if trimmed == "" {
		return step{}, &stepsError{base, base + len(item), "empty step: want RATE:DURATION"}
	}
	at := base + lead
	rateText, durText, ok := strings.Cut(trimmed, ":")
	if !ok {
		return step{}, &stepsError{at, at + len(trimmed), fmt.Sprintf("step %q has no ':': want RATE:DURATION such as 1000:30s", trimmed)}
	}
	var st step
	if p, found := strings.CutSuffix(rateText, "%"); found {
		st.Percent = true
		rateText = p
	}
	rate, err := strconv.ParseFloat(rateText, 64)
	rateEnd := at + len(rateText)
	if st.Percent {
		rateEnd++
	}
	if err != nil || rateText != strings.TrimSpace(rateText) || strings.ContainsAny(rateText, "xXpP_") {
		// ParseFloat accepts hex floats and underscores; a load profile has no use for them.
		return step{}, &stepsError{at, rateEnd, fmt.Sprintf("rate %q is not a number", rateText)}
	}
	switch {
	case math.IsNaN(rate) || math.IsInf(rate, 0) || rate < 0:
		return step{}, &stepsError{at, rateEnd, fmt.Sprintf("rate %q must be a finite number >= 0", rateText)}
	case st.Percent && rate > maxPercent:
		return step{}, &stepsError{at, rateEnd, fmt.Sprintf("rate %s%% is above %d%% of capacity", rateText, maxPercent)}
	case !st.Percent && rate > maxRate:
		return step{}, &stepsError{at, rateEnd, fmt.Sprintf("rate %s is above %d requests/s", rateText, maxRate)}
	}
	st.Rate = rate
	durAt := rateEnd + 1
	d, err := time.ParseDuration(durText)
	if err != nil {
		return step{}, &stepsError{durAt, durAt + len(durText), fmt.Sprintf("duration %q is not a Go duration such as 30s or 2m", durText)}
	}
	if d <= 0 || d > maxStepDuration {
		return step{}, &stepsError{durAt, durAt + len(durText), fmt.Sprintf("duration %s must be more than 0 and at most %s", durText, maxStepDuration)}
	}
	st.Duration = d
	return st, nil
}

// formatSteps writes steps back in the syntax parseSteps reads, so that
// parseSteps(formatSteps(s)) gives s again.
func formatSteps(steps []step) string {
	var b strings.Builder
	for i, st := range steps {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatFloat(st.Rate, 'g', -1, 64))
		if st.Percent {
			b.WriteByte('%')
		}
		b.WriteByte(':')
		b.WriteString(st.Duration.String())
	}
	return b.String()
}

// resolve turns percent steps into absolute rates given capacity (requests
// per second); absolute steps are kept. It fails when a percent step has no
// capacity to refer to.
func resolve(steps []step, capacity float64) ([]step, error) {
	out := make([]step, len(steps))
	for i, st := range steps {
		if st.Percent {
			if capacity <= 0 {
				return nil, fmt.Errorf("%w: step %d is %g%% of capacity: give --capacity (requests/s)", ErrSteps, i+1, st.Rate)
			}
			st = step{Rate: st.Rate * capacity / 100, Duration: st.Duration}
			if st.Rate > maxRate {
				return nil, fmt.Errorf("%w: step %d resolves to %g requests/s, above %d", ErrSteps, i+1, st.Rate, maxRate)
			}
		}
		out[i] = st
	}
	return out, nil
}

// slots is how many requests a step schedules: one every 1/Rate seconds from
// its start, the last strictly before its end.
func (st step) slots() int64 {
	n := st.Rate * st.Duration.Seconds()
	c := int64(math.Ceil(n - 1e-9))
	if c < 0 {
		return 0
	}
	return c
}

// offset is the intended send time of the step's j-th request, counted from
// the step's start.
func (st step) offset(j int64) time.Duration {
	return time.Duration(float64(j) * float64(time.Second) / st.Rate)
}
