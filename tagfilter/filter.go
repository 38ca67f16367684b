package tagfilter

import (
	"slices"
	"strings"
)

// Filter is a compiled tag expression. It is immutable, so one Filter may
// be used by any number of goroutines at once.
//
// A nil *Filter and the zero Filter match every message, like "*".
type Filter struct {
	canon string   // canonical form, see String
	tags  []string // distinct tag names in order of first appearance
	prog
}

// Compile parses expr and compiles it for Match. An empty or blank
// expression means "*". Errors are *ParseError values wrapping ErrSyntax
// or ErrLimit.
func Compile(expr string) (*Filter, error) {
	tree, err := parse(expr)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	format(&b, tree)
	if b.Len() > MaxExprLen {
		// Only reachable for expressions close to MaxExprLen written without
		// spaces; refusing them keeps String() compilable.
		return nil, limitErr(0, len(expr), "expression is %d bytes long in canonical form, max %d", b.Len(), MaxExprLen)
	}
	f := &Filter{canon: b.String()}
	f.tags = appendTags(f.tags, tree)
	f.prog = compileProg(tree, f.tags)
	return f, nil
}

// MustCompile is like Compile but panics on error. It is meant for
// expressions fixed at build time, such as in tests.
func MustCompile(expr string) *Filter {
	f, err := Compile(expr)
	if err != nil {
		panic("tagfilter: Compile(" + expr + "): " + err.Error())
	}
	return f
}

// String returns the canonical form of the expression: operands separated
// by " || " and " && ", '!' directly before its operand, parentheses only
// where precedence needs them, and associative groups flattened, so
// "((A)||B) || !(C)" becomes "A || B || !C". The empty expression is "*".
// Compiling the canonical form gives an equivalent filter with the same
// canonical form.
func (f *Filter) String() string {
	if f == nil || f.canon == "" {
		return "*"
	}
	return f.canon
}

// Tags returns the distinct tag names the expression mentions, in order of
// first appearance (e.g. for per-tag counters). The caller owns the slice.
func (f *Filter) Tags() []string {
	if f == nil {
		return nil
	}
	return slices.Clone(f.tags)
}

// MatchAll reports whether the filter matches every message, so a consumer
// may skip filtering altogether. It is true for "*" and for expressions that
// reduce to it by the rules for '*' (such as "A || *" or "* && !!*"); it does
// not look for tautologies among tags such as "A || !A".
func (f *Filter) MatchAll() bool {
	return f == nil || f.entry == accept
}

func appendTags(tags []string, n *node) []string {
	if n.kind == nodeTag {
		if !slices.Contains(tags, n.tag) {
			tags = append(tags, n.tag)
		}
		return tags
	}
	for _, a := range n.args {
		tags = appendTags(tags, a)
	}
	return tags
}
