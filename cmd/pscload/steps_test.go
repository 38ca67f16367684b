package main

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseSteps(t *testing.T) {
	for _, tc := range []struct {
		name  string
		input string
		want  []step
		err   string // the positioned message; "" for success
	}{
		{"absolute", "1000:30s,8000:30s", []step{{1000, false, 30 * time.Second}, {8000, false, 30 * time.Second}}, ""},
		{"percent", "10%:30s,80%:30s", []step{{10, true, 30 * time.Second}, {80, true, 30 * time.Second}}, ""},
		{"mixed and spaces", " 12.5%:1m30s , 0:5s", []step{{12.5, true, 90 * time.Second}, {0, false, 5 * time.Second}}, ""},
		{"exponent", "1e3:1s", []step{{1000, false, time.Second}}, ""},
		{"empty", "", nil, "0:0: empty profile"},
		{"blank", "  ", nil, "0:2: empty profile"},
		{"no colon", "1000", nil, `0:4: step "1000" has no ':'`},
		{"empty item", "1000:1s,,5:1s", nil, "8:8: empty step"},
		{"trailing comma", "1000:1s,", nil, "8:8: empty step"},
		{"bad rate", "abc:1s", nil, `0:3: rate "abc" is not a number`},
		{"bad rate second item", "1:1s, 2x:1s", nil, `6:8: rate "2x" is not a number`},
		{"hex rate", "0x10:1s", nil, `0:4: rate "0x10" is not a number`},
		{"underscore rate", "1_000:1s", nil, `0:5: rate "1_000" is not a number`},
		{"negative", "-5:1s", nil, `0:2: rate "-5" must be a finite number >= 0`},
		{"nan", "NaN:1s", nil, `0:3: rate "NaN" must be a finite number >= 0`},
		{"inf", "Inf%:1s", nil, `0:4: rate "Inf" must be a finite number >= 0`},
		{"too fast", "2000000:1s", nil, "0:7: rate 2000000 is above 1000000"},
		{"too many percent", "1001%:1s", nil, "0:5: rate 1001% is above 1000%"},
		{"bad duration", "5:soon", nil, `2:6: duration "soon" is not a Go duration`},
		{"duration without unit", "5:30", nil, `2:4: duration "30" is not a Go duration`},
		{"zero duration", "5:0s", nil, "2:4: duration 0s must be more than 0"},
		{"negative duration", "5%:-1s", nil, "3:6: duration -1s must be more than 0"},
		{"too long", "5:25h", nil, "2:5: duration 25h must be more than 0 and at most 24h0m0s"},
		{"space inside", "5 :1s", nil, `0:2: rate "5 " is not a number`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseSteps(tc.input)
			if tc.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
					t.Fatalf("parseSteps(%q) error = %v, want prefix %q", tc.input, err, tc.err)
				}
				if !errors.Is(err, ErrSteps) {
					t.Fatalf("error %v does not wrap ErrSteps", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseSteps(%q): %v", tc.input, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("parseSteps(%q) = %+v, want %+v", tc.input, got, tc.want)
			}
		})
	}
}

func TestParseStepsLimit(t *testing.T) {
	many := strings.Repeat("1:1s,", maxSteps) + "1:1s"
	if _, err := parseSteps(many); err == nil || !strings.Contains(err.Error(), "more than 1000 steps") {
		t.Fatalf("%d steps: error %v", maxSteps+1, err)
	}
	if _, err := parseSteps(many[:len(many)-5]); err != nil {
		t.Fatalf("%d steps: %v", maxSteps, err)
	}
}

func TestResolve(t *testing.T) {
	steps, err := parseSteps("10%:30s,80%:30s,500:1s")
	if err != nil {
		t.Fatal(err)
	}
	got, err := resolve(steps, 8000)
	if err != nil {
		t.Fatal(err)
	}
	want := []step{{800, false, 30 * time.Second}, {6400, false, 30 * time.Second}, {500, false, time.Second}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("resolve = %+v, want %+v", got, want)
	}
	if _, err := resolve(steps, 0); !errors.Is(err, ErrSteps) || !strings.Contains(err.Error(), "--capacity") {
		t.Fatalf("percent without capacity: %v", err)
	}
	if _, err := resolve([]step{{1000, true, time.Second}}, 1e6); !errors.Is(err, ErrSteps) {
		t.Fatalf("1000%% of 1000000/s: %v", err)
	}
}

func TestScheduleSlots(t *testing.T) {
	s := newSchedule([]step{{Rate: 10, Duration: time.Second}, {Rate: 0, Duration: time.Second}, {Rate: 2.5, Duration: 2 * time.Second}})
	if s.total() != 15 || s.duration() != 4*time.Second {
		t.Fatalf("total %d duration %s, want 15 and 4s", s.total(), s.duration())
	}
	for _, tc := range []struct {
		i    int64
		step int
		at   time.Duration
	}{
		{0, 0, 0}, {9, 0, 900 * time.Millisecond}, {10, 2, 2 * time.Second}, {14, 2, 3600 * time.Millisecond},
	} {
		k, at := s.slot(tc.i)
		if k != tc.step || at != tc.at {
			t.Errorf("slot(%d) = step %d at %s, want step %d at %s", tc.i, k, at, tc.step, tc.at)
		}
	}
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{{-time.Second, 0}, {0, 0}, {999 * time.Millisecond, 0}, {time.Second, 1}, {3999 * time.Millisecond, 2}, {4 * time.Second, -1}} {
		if got := s.stepAt(tc.d); got != tc.want {
			t.Errorf("stepAt(%s) = %d, want %d", tc.d, got, tc.want)
		}
	}
}

func TestParseTagRange(t *testing.T) {
	for _, tc := range []struct {
		in     string
		lo, hi int
		ok     bool
	}{
		{"0", 0, 0, true}, {"2", 2, 2, true}, {"0-3", 0, 3, true}, {"128", 128, 128, true},
		{"", 0, 0, false}, {"-1", 0, 0, false}, {"3-1", 0, 0, false}, {"1-", 0, 0, false},
		{"1-2-3", 0, 0, false}, {"129", 0, 0, false}, {"+1", 0, 0, false}, {" 1", 0, 0, false}, {"a", 0, 0, false},
	} {
		lo, hi, err := parseTagRange(tc.in)
		if tc.ok != (err == nil) || lo != tc.lo || hi != tc.hi {
			t.Errorf("parseTagRange(%q) = %d, %d, %v", tc.in, lo, hi, err)
		}
		if err != nil && !errors.Is(err, ErrTagRange) {
			t.Errorf("parseTagRange(%q) error %v does not wrap ErrTagRange", tc.in, err)
		}
	}
}

// FuzzParseSteps checks that every profile parseSteps accepts is within the
// limits and survives formatSteps unchanged, and that every error points
// inside the input.
func FuzzParseSteps(f *testing.F) {
	for _, s := range []string{
		"1000:30s,8000:30s", "10%:30s,80%:30s", " 12.5%:1m30s , 0:5s", "1e3:1s", "", ",", "5:", ":5s",
		"%:1s", "5%%:1s", "1:1h0m0.000000001s", "0.1:24h", "1e-300:1ns", "NaN:1s", "1:1s,2", "x:1s",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		steps, err := parseSteps(input)
		if err != nil {
			var se *stepsError
			if !errors.As(err, &se) || !errors.Is(err, ErrSteps) {
				t.Fatalf("error %v is not a *stepsError wrapping ErrSteps", err)
			}
			if se.Pos < 0 || se.Pos > se.End || se.End > len(input) {
				t.Fatalf("error span %d:%d outside input of %d bytes", se.Pos, se.End, len(input))
			}
			return
		}
		if len(steps) == 0 || len(steps) > maxSteps {
			t.Fatalf("%d steps accepted", len(steps))
		}
		for _, st := range steps {
			if st.Rate < 0 || st.Duration <= 0 || st.Duration > maxStepDuration ||
				(!st.Percent && st.Rate > maxRate) || (st.Percent && st.Rate > maxPercent) {
				t.Fatalf("step %+v accepted", st)
			}
			if n := st.slots(); n < 0 || n > maxRate*int64(maxStepDuration/time.Second) {
				t.Fatalf("step %+v plans %d slots", st, n)
			}
		}
		again, err := parseSteps(formatSteps(steps))
		if err != nil || !reflect.DeepEqual(again, steps) {
			t.Fatalf("round trip of %q via %q: %+v, %v", input, formatSteps(steps), again, err)
		}
	})
}

// FuzzParseTagRange checks the accepted ranges are ordered and bounded.
func FuzzParseTagRange(f *testing.F) {
	for _, s := range []string{"0", "1", "0-3", "3-1", "-", "1-", "-1", "128", "0-128", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		lo, hi, err := parseTagRange(input)
		if err != nil {
			if !errors.Is(err, ErrTagRange) {
				t.Fatalf("error %v does not wrap ErrTagRange", err)
			}
			return
		}
		if lo < 0 || lo > hi || hi > maxTagsPerMsg {
			t.Fatalf("parseTagRange(%q) = %d, %d", input, lo, hi)
		}
	})
}
