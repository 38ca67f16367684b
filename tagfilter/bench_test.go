package tagfilter

import (
	"fmt"
	"strings"
	"testing"
)

// benchTags is a typical message: five tags, one of them a business code.
var benchTags = []string{"region:eu", "PAY_1002", "channel/web", "currency.EUR", "retry-0"}

var benchExprs = []struct {
	name string
	expr string
}{
	{"1term", "PAY_1002"},
	{"3terms", "PAY_1001 || PAY_1002 && !refund"},
	{"10terms", "(PAY_1001 || PAY_1003 || PAY_1005 || PAY_1007 || PAY_1009) && !(refund || test || currency.USD) && (region:eu || region:us)"},
	{"3terms-miss", "PAY_1001 || PAY_1003 || PAY_1005"},
	{"32terms-or", orOf(32, 990)},
	{"100terms-or", orOf(100, 1000)},
	{"100terms-or-miss", orOf(100, 2000)},
}

// orOf returns "PAY_<first> || PAY_<first+1> || ..." with n terms.
func orOf(n, first int) string {
	terms := make([]string, n)
	for i := range terms {
		terms[i] = fmt.Sprintf("PAY_%d", first+i)
	}
	return strings.Join(terms, " || ")
}

var sink bool

func BenchmarkMatch(b *testing.B) {
	for _, bc := range benchExprs {
		f := MustCompile(bc.expr)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sink = f.Match(benchTags)
			}
		})
	}
}

func BenchmarkCompile(b *testing.B) {
	for _, bc := range benchExprs {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Compile(bc.expr); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkStrategy compares the ways Match learns which tags a message
// has, on "||" chains of k business codes that the message does not carry
// (the worst case: nothing short-circuits): linear comparison, the indexed
// bitmask with a walk of the graph (what any indexed expression gets), and
// the indexed "any of" shortcut for plain "||" chains. It is how linearMax
// was chosen.
func BenchmarkStrategy(b *testing.B) {
	for _, k := range []int{4, 8, 10, 12, 16, 32} {
		f := MustCompile(orOf(k, 2000))
		linear, indexed := f.prog, f.prog
		linear.index = nil
		indexed.code = append([]instr(nil), f.code...)
		indexed.buildIndex(f.tags)
		indexed.anyOf = false
		anyOf := indexed
		anyOf.anyOf = true
		b.Run(fmt.Sprintf("linear/%dterms", k), func(b *testing.B) {
			for b.Loop() {
				sink = linear.matchLinear(benchTags)
			}
		})
		b.Run(fmt.Sprintf("indexed/%dterms", k), func(b *testing.B) {
			for b.Loop() {
				sink = indexed.matchIndexed(benchTags)
			}
		})
		b.Run(fmt.Sprintf("anyof/%dterms", k), func(b *testing.B) {
			for b.Loop() {
				sink = anyOf.matchIndexed(benchTags)
			}
		})
	}
}
