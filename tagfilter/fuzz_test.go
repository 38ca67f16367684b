package tagfilter

import (
	"errors"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// FuzzCompile checks the invariants that hold for any input:
//   - Compile never panics;
//   - an error is a *ParseError wrapping exactly one of ErrSyntax and
//     ErrLimit, with 0 <= Pos <= End <= len(input);
//   - a filter's canonical form compiles to a filter with the same canonical
//     form, tags and MatchAll, and both filters agree with a direct
//     evaluation of the syntax tree on tag sets derived from the filter's
//     tags, with either matching strategy;
//   - MatchAll filters match every derived tag set;
//   - a string is a valid tag exactly when it compiles to a filter that
//     mentions just that tag and prints as itself.
func FuzzCompile(f *testing.F) {
	for _, seed := range []string{
		"", "*", "A", "!A", "A || B", "A && B", "A || B && !C", "(A || B) && C",
		"!(A && (B || !(C && D))) || E", "* && !X", "X || *", "!*", "!!*",
		"A && !A", "(A&&B)||(A&&C)", "biz:pay/1001 || v1.2-rc_3", "A || )",
		"(A", "A B", "A | B", "A & B", "()", "!", "PAY_*", "A,B", `"A"`,
		"A || 支付", "A\xff", "((((A))))", "!!!!!!A", " \t\nA\r\n",
		"(A || B || C || D || E || F) && !(G || H || I || J || K || L) || M && *",
	} {
		f.Add(seed)
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "*.txt"))
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(string(data)) // whole files: the separator and output are fine noise
		}
	}
	f.Fuzz(func(t *testing.T, input string) {
		filter, err := Compile(input)
		if err != nil {
			checkError(t, input, err)
			if ValidTag(input) == nil {
				t.Fatalf("ValidTag(%q) accepts a string that does not compile: %v", input, err)
			}
			return
		}
		canon := filter.String()
		if len(canon) > MaxExprLen {
			t.Fatalf("canonical form is %d bytes long", len(canon))
		}
		again, err := Compile(canon)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not compile: %v", canon, input, err)
		}
		if again.String() != canon {
			t.Fatalf("canonical form is not stable: %q -> %q -> %q", input, canon, again.String())
		}
		tags := filter.Tags()
		if !slices.Equal(tags, again.Tags()) || filter.MatchAll() != again.MatchAll() {
			t.Fatalf("%q and its canonical form %q differ in tags or MatchAll", input, canon)
		}
		for _, tag := range tags {
			if err := ValidTag(tag); err != nil {
				t.Fatalf("%q compiled with an invalid tag: %v", input, err)
			}
		}
		isTag := len(tags) == 1 && tags[0] == input && canon == input
		if (ValidTag(input) == nil) != isTag {
			t.Fatalf("ValidTag(%q) = %v, but it compiles to %q with tags %q", input, ValidTag(input), canon, tags)
		}

		tree, err := parse(input)
		if err != nil {
			t.Fatalf("parse fails where Compile succeeds: %v", err)
		}
		// Both strategies, whichever Match picks for this filter.
		linear, indexed := filter.prog, filter.prog
		indexed.code = slices.Clone(filter.code)
		indexed.buildIndex(tags)
		forEachTagSet(input, tags, func(set []string) {
			want := evalTree(tree, set)
			if got := filter.Match(set); got != want {
				t.Fatalf("%q.Match(%q) = %t, the syntax tree says %t", input, set, got, want)
			}
			if linear.matchLinear(set) != want || indexed.matchIndexed(set) != want {
				t.Fatalf("%q: linear and indexed matching disagree on %q", input, set)
			}
			if got := again.Match(set); got != want {
				t.Fatalf("canonical %q.Match(%q) = %t, the syntax tree says %t", canon, set, got, want)
			}
			if filter.MatchAll() && !want {
				t.Fatalf("%q: MatchAll but does not match %q", input, set)
			}
		})
	})
}

func checkError(t *testing.T, input string, err error) {
	t.Helper()
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *ParseError", err, err)
	}
	if errors.Is(err, ErrSyntax) == errors.Is(err, ErrLimit) {
		t.Fatalf("error %v must wrap exactly one of ErrSyntax and ErrLimit", err)
	}
	if pe.Pos < 0 || pe.Pos > pe.End || pe.End > len(input) {
		t.Fatalf("error %v: span %d:%d outside input of %d bytes", err, pe.Pos, pe.End, len(input))
	}
	if pe.Msg == "" {
		t.Fatalf("error without a message at %d", pe.Pos)
	}
}

// forEachTagSet calls fn with tag sets derived from a filter's tags: every
// subset when there are few, else the empty set, singletons, all but one,
// and random subsets seeded from input. Each set also carries a tag the
// filter does not mention.
func forEachTagSet(input string, tags []string, fn func([]string)) {
	const unrelated = "unrelated-tag"
	set := make([]string, 0, len(tags)+1)
	if len(tags) <= 8 {
		for mask := 0; mask < 1<<len(tags); mask++ {
			set = set[:0]
			for i, tag := range tags {
				if mask&(1<<i) != 0 {
					set = append(set, tag)
				}
			}
			fn(set)
			fn(append(set, unrelated))
		}
		return
	}
	fn(nil)
	fn(tags)
	for i := range tags {
		fn(tags[i : i+1])
		set = append(append(set[:0], tags[:i]...), tags[i+1:]...)
		fn(set)
	}
	h := fnv.New64a()
	h.Write([]byte(input))
	rng := rand.New(rand.NewPCG(h.Sum64(), 0))
	for range 64 {
		set = set[:0]
		for _, tag := range tags {
			if rng.IntN(2) == 0 {
				set = append(set, tag)
			}
		}
		rng.Shuffle(len(set), func(i, j int) { set[i], set[j] = set[j], set[i] })
		fn(append(set, unrelated))
	}
}
