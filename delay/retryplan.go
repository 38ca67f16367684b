package delay

import (
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"
)

// A retry plan lets a producer say how a message is retried when a consumer
// gives up on it for now: "1s,5s,30s,2m" means the first retry one second
// after the first failure, the second five seconds after the second, and so
// on; after the last step the message is dead-lettered. The plan travels
// with the message as the property psc-retry-plan; psc-retry-step counts
// the retries scheduled so far (absent means none). The consume API calls
// NextRetry on a nack with "retry" and schedules the returned properties at
// the returned due time (deliverAt), or dead-letters the message.

// Limits of a retry plan.
const (
	MaxRetrySteps   = 64
	MaxRetryPlanLen = 1024                 // bytes
	MaxRetryDelay   = 366 * 24 * time.Hour // per step
)

var (
	// ErrRetryPlan: a retry plan or step property cannot be read. Errors
	// that wrap it are *RetryPlanError.
	ErrRetryPlan = errors.New("delay: invalid retry plan")
	// ErrNoRetryPlan: the message carries no retry plan.
	ErrNoRetryPlan = errors.New("delay: message has no retry plan")
)

// RetryPlanError says what is wrong with a plan and where: Offset is the
// byte offset in Input of the step at fault (Step, 1-based; 0 when the
// whole plan is at fault).
type RetryPlanError struct {
	Input  string
	Offset int
	Step   int
	Msg    string
}

func (e *RetryPlanError) Error() string {
	in := e.Input
	if len(in) > 64 {
		in = in[:64] + "..."
	}
	if e.Step == 0 {
		return fmt.Sprintf("invalid retry plan %q: %s", in, e.Msg)
	}
	return fmt.Sprintf("invalid retry plan %q: %d: step %d: %s", in, e.Offset, e.Step, e.Msg)
}

// Unwrap makes errors.Is(err, ErrRetryPlan) true.
func (e *RetryPlanError) Unwrap() error { return ErrRetryPlan }

// RetryPlan is the delay before each retry, in order.
type RetryPlan []time.Duration

// ParseRetryPlan reads a plan: Go durations separated by commas, spaces
// around them allowed ("1s, 5s, 30s, 2m"). Each step is more than zero and
// at most MaxRetryDelay; at most MaxRetrySteps steps, MaxRetryPlanLen
// bytes.
func ParseRetryPlan(s string) (RetryPlan, error) {
	fail := func(off, step int, format string, a ...any) (RetryPlan, error) {
		return nil, &RetryPlanError{Input: s, Offset: off, Step: step, Msg: fmt.Sprintf(format, a...)}
	}
	if len(s) > MaxRetryPlanLen {
		return fail(0, 0, "longer than %d bytes", MaxRetryPlanLen)
	}
	if strings.TrimSpace(s) == "" {
		return fail(0, 0, "empty; want delays separated by commas, such as 1s,5s,30s,2m")
	}
	var plan RetryPlan
	off := 0
	for i, raw := range strings.Split(s, ",") {
		step := i + 1
		if step > MaxRetrySteps {
			return fail(off, step, "more than %d steps", MaxRetrySteps)
		}
		lead := len(raw) - len(strings.TrimLeft(raw, " \t"))
		item := strings.TrimSpace(raw)
		at := off + lead
		switch d, err := time.ParseDuration(item); {
		case item == "":
			return fail(at, step, "empty step")
		case err != nil:
			return fail(at, step, "%q is not a duration such as 500ms, 30s, 2m or 1h", item)
		case d <= 0:
			return fail(at, step, "%q is not positive", item)
		case d > MaxRetryDelay:
			return fail(at, step, "%q is longer than %s", item, formatDuration(MaxRetryDelay))
		default:
			plan = append(plan, d)
		}
		off += len(raw) + 1
	}
	return plan, nil
}

// String is the plan in the form ParseRetryPlan reads: "1s,5s,30s,2m".
func (p RetryPlan) String() string {
	var b strings.Builder
	for i, d := range p {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(formatDuration(d))
	}
	return b.String()
}

// formatDuration is Duration.String without zero trailing units ("2m",
// not "2m0s"; "1h30m", not "1h30m0s").
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// NextRetry reads a message's retry plan and step from its properties and
// says what a retry does now:
//
//   - ok: retry at due; next is a copy of props with the step counted
//     (schedule the message with next as its properties and deliverAt due).
//   - !ok, err nil: the plan is exhausted; dead-letter the message.
//   - err wraps ErrNoRetryPlan: no plan; the caller's default applies.
//   - err wraps ErrRetryPlan (*RetryPlanError): the plan or the step is
//     unreadable; dead-letter with the error as the reason.
//
// due is now plus the step's delay: never earlier.
func NextRetry(props map[string]string, now time.Time) (due time.Time, next map[string]string, ok bool, err error) {
	raw, has := props[PropRetryPlan]
	if !has {
		return time.Time{}, nil, false, ErrNoRetryPlan
	}
	plan, err := ParseRetryPlan(raw)
	if err != nil {
		return time.Time{}, nil, false, err
	}
	step := 0
	if s, has := props[PropRetryStep]; has {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 0 {
			return time.Time{}, nil, false, &RetryPlanError{Input: s, Msg: PropRetryStep + " is not a count of retries (0, 1, 2...)"}
		}
		step = n
	}
	if step >= len(plan) {
		return time.Time{}, nil, false, nil
	}
	next = maps.Clone(props)
	next[PropRetryStep] = strconv.Itoa(step + 1)
	return now.Add(plan[step]), next, true, nil
}
