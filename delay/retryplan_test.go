package delay

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseRetryPlan(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  RetryPlan
		err   string
	}{
		{"typical", "1s,5s,30s,2m", RetryPlan{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute}, ""},
		{"spaces", " 1s , 1h30m,\t500ms ", RetryPlan{time.Second, 90 * time.Minute, 500 * time.Millisecond}, ""},
		{"one step", "10m", RetryPlan{10 * time.Minute}, ""},
		{"longest step", "8784h", RetryPlan{MaxRetryDelay}, ""},
		{"empty", "", nil, `invalid retry plan "": empty`},
		{"blank", "  ", nil, "empty"},
		{"empty step", "1s,,5s", nil, `invalid retry plan "1s,,5s": 3: step 2: empty step`},
		{"trailing comma", "1s,", nil, `3: step 2: empty step`},
		{"not a duration", "1s, soon", nil, `4: step 2: "soon" is not a duration`},
		{"no unit", "1s,5", nil, `3: step 2: "5" is not a duration`},
		{"zero", "0s", nil, `0: step 1: "0s" is not positive`},
		{"negative", "1s,-5s", nil, `3: step 2: "-5s" is not positive`},
		{"too long a step", "1s,8785h", nil, `step 2: "8785h" is longer than 8784h`},
		{"too many steps", strings.Repeat("1s,", MaxRetrySteps) + "1s", nil, "step 65: more than 64 steps"},
		{"too long", strings.Repeat(" ", MaxRetryPlanLen) + "1s", nil, "longer than 1024 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRetryPlan(tt.input)
			if tt.err != "" {
				require.ErrorIs(t, err, ErrRetryPlan)
				require.ErrorContains(t, err, tt.err)
				var pe *RetryPlanError
				require.ErrorAs(t, err, &pe)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
	require.Equal(t, "1s,5s,30s,2m,1h30m,500ms,1h", RetryPlan{time.Second, 5 * time.Second, 30 * time.Second,
		2 * time.Minute, 90 * time.Minute, 500 * time.Millisecond, time.Hour}.String())
}

// A message follows its plan step by step, then is exhausted.
func TestNextRetry(t *testing.T) {
	now := base
	props := map[string]string{PropRetryPlan: "1s,5s,30s", PropUID: "u", "orderId": "7"}
	var dues []time.Duration
	for {
		due, next, ok, err := NextRetry(props, now)
		require.NoError(t, err)
		if !ok {
			break
		}
		dues = append(dues, due.Sub(now))
		require.Equal(t, "7", next["orderId"], "other properties are kept")
		require.Equal(t, strconv.Itoa(len(dues)), next[PropRetryStep])
		require.NotEqual(t, props[PropRetryStep], next[PropRetryStep], "props are not changed in place")
		props, now = next, due
	}
	require.Equal(t, []time.Duration{time.Second, 5 * time.Second, 30 * time.Second}, dues)
	require.Equal(t, "3", props[PropRetryStep])

	tests := []struct {
		name  string
		props map[string]string
		err   error
	}{
		{"no plan", map[string]string{PropUID: "u"}, ErrNoRetryPlan},
		{"bad plan", map[string]string{PropRetryPlan: "1s,x"}, ErrRetryPlan},
		{"bad step", map[string]string{PropRetryPlan: "1s", PropRetryStep: "one"}, ErrRetryPlan},
		{"negative step", map[string]string{PropRetryPlan: "1s", PropRetryStep: "-1"}, ErrRetryPlan},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, next, ok, err := NextRetry(tt.props, now)
			require.ErrorIs(t, err, tt.err)
			require.False(t, ok)
			require.Nil(t, next)
		})
	}
	_, _, ok, err := NextRetry(map[string]string{PropRetryPlan: "1s", PropRetryStep: "99"}, now)
	require.NoError(t, err)
	require.False(t, ok, "beyond the plan: exhausted")
}

// FuzzParseRetryPlan: a plan either parses into valid steps that print back
// to the same plan, or fails with a RetryPlanError that points inside the
// input.
func FuzzParseRetryPlan(f *testing.F) {
	for _, s := range []string{"1s,5s,30s,2m", " 1s , 2m ", "", ",", "1s,,", "-1s", "1h30m,500ms", "0.5s", "1e3s",
		"9223372036854775807ns", "1s" + strings.Repeat(",1s", 70), "µs,1µs", "1s\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		plan, err := ParseRetryPlan(s)
		if err != nil {
			var pe *RetryPlanError
			if !errors.As(err, &pe) || !errors.Is(err, ErrRetryPlan) {
				t.Fatalf("%q: error %v is not a RetryPlanError", s, err)
			}
			if pe.Offset < 0 || pe.Offset > len(s) || pe.Step < 0 || pe.Step > MaxRetrySteps+1 {
				t.Fatalf("%q: position %d step %d out of range", s, pe.Offset, pe.Step)
			}
			return
		}
		if len(plan) == 0 || len(plan) > MaxRetrySteps {
			t.Fatalf("%q: %d steps", s, len(plan))
		}
		for _, d := range plan {
			if d <= 0 || d > MaxRetryDelay {
				t.Fatalf("%q: step %s out of range", s, d)
			}
		}
		again, err := ParseRetryPlan(plan.String())
		if err != nil {
			t.Fatalf("%q printed as %q does not parse: %v", s, plan.String(), err)
		}
		if again.String() != plan.String() || len(again) != len(plan) {
			t.Fatalf("%q: round trip %v -> %v", s, plan, again)
		}
		for i := range plan {
			if again[i] != plan[i] {
				t.Fatalf("%q: round trip step %d: %s -> %s", s, i, plan[i], again[i])
			}
		}
	})
}

// FuzzNextRetry: a retry is never earlier than now plus the step's delay,
// and counts exactly one step.
func FuzzNextRetry(f *testing.F) {
	f.Add("1s,5s", "0", true)
	f.Add("1s,5s", "2", true)
	f.Add("1s", " 0 ", true)
	f.Add("2m", "", false)
	f.Add("1s", "99999999999999999999", true)
	f.Fuzz(func(t *testing.T, plan, step string, hasStep bool) {
		props := map[string]string{PropRetryPlan: plan}
		if hasStep {
			props[PropRetryStep] = step
		}
		due, next, ok, err := NextRetry(props, base)
		if err != nil || !ok {
			if ok || next != nil {
				t.Fatalf("not ok but next %v", next)
			}
			return
		}
		p, _ := ParseRetryPlan(plan)
		n, _ := strconv.Atoi(strings.TrimSpace(props[PropRetryStep]))
		if due.Before(base.Add(p[n])) || due.After(base.Add(p[n])) {
			t.Fatalf("due %s, want now + %s", due, p[n])
		}
		if next[PropRetryStep] != strconv.Itoa(n+1) {
			t.Fatalf("next step %q after %d", next[PropRetryStep], n)
		}
	})
}
