package tagfilter

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMatch(t *testing.T) {
	tests := []struct {
		name  string
		input string
		tags  []string
		want  bool
	}{
		{"star matches tagged message", "*", []string{"A"}, true},
		{"star matches untagged message", "*", nil, true},
		{"empty expression is star", "", nil, true},
		{"blank expression is star", " \t\n", []string{"A"}, true},
		{"tag present", "A", []string{"B", "A"}, true},
		{"tag absent", "A", []string{"B", "C"}, false},
		{"tag in untagged message", "A", nil, false},
		{"tags are case-sensitive", "pay_1001", []string{"PAY_1001"}, false},
		{"no prefix match", "PAY_100", []string{"PAY_1001"}, false},
		{"rocketmq or, first", "PAY_1001 || PAY_1002", []string{"PAY_1001"}, true},
		{"rocketmq or, second", "PAY_1001 || PAY_1002", []string{"x", "PAY_1002"}, true},
		{"rocketmq or, neither", "PAY_1001 || PAY_1002", []string{"PAY_1003"}, false},
		{"and, both", "A && B", []string{"B", "A"}, true},
		{"and, one", "A && B", []string{"A"}, false},
		{"not, absent", "!A", []string{"B"}, true},
		{"not, present", "!A", []string{"A"}, false},
		{"not matches untagged message", "!A", nil, true},
		{"double not", "!!A", []string{"A"}, true},
		{"and binds tighter than or", "A || B && C", []string{"A"}, true},
		{"and binds tighter than or, rhs", "A || B && C", []string{"B"}, false},
		{"parentheses override", "(A || B) && C", []string{"A"}, false},
		{"parentheses override, match", "(A || B) && C", []string{"A", "C"}, true},
		{"not binds tightest", "!A && B", []string{"B"}, true},
		{"not binds tightest, present", "!A && B", []string{"A", "B"}, false},
		{"not of group", "!(A || B)", []string{"C"}, true},
		{"not of group, present", "!(A || B)", []string{"B"}, false},
		{"star and not", "* && !test", []string{"PAY_1001"}, true},
		{"star and not, present", "* && !test", []string{"PAY_1001", "test"}, false},
		{"or star", "A || *", nil, true},
		{"not star matches nothing", "!*", []string{"A"}, false},
		{"duplicate message tags", "A && !B", []string{"A", "A"}, true},
		{"tag punctuation", "biz:pay/1001 && v1.2-rc_3", []string{"v1.2-rc_3", "biz:pay/1001"}, true},
		{"no spaces needed", "(A||B)&&!C", []string{"B"}, true},
		{"repeated tag", "(A && B) || (A && C)", []string{"A", "C"}, true},
		{"repeated tag, miss", "(A && B) || (A && C)", []string{"B", "C"}, false},
		{"contradiction", "A && !A", []string{"A"}, false},
		{"indexed, hit", orOf(40, 1000), []string{"x", "PAY_1039"}, true},
		{"indexed, miss", orOf(40, 1000), []string{"x", "PAY_1040"}, false},
		{"indexed, and not", "(" + orOf(20, 1000) + ") && !(" + orOf(20, 1010) + ")", []string{"PAY_1005"}, true},
		{"indexed, and not, excluded", "(" + orOf(20, 1000) + ") && !(" + orOf(20, 1010) + ")", []string{"PAY_1015"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Compile(tt.input)
			require.NoError(t, err)
			require.Equal(t, tt.want, f.Match(tt.tags))
			require.Equal(t, tt.want, evalTree(mustParse(t, tt.input), tt.tags), "reference evaluator disagrees")
		})
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name   string
		input  string
		errPos int
		errMsg string
	}{
		{"unbalanced close", "A || )", 5, "unexpected ')', expected a tag, '*', '!' or '('"},
		{"close without open", "A)", 1, "unexpected ')', there is no '(' to close"},
		{"unclosed group", "(A || B", 7, "unexpected end of expression, expected ')' to close '(' at 0"},
		{"dangling or", "A ||", 4, "unexpected end of expression, expected a tag, '*', '!' or '('"},
		{"leading and", "&& A", 0, "unexpected '&&', expected a tag, '*', '!' or '('"},
		{"missing operator", "A B", 2, `unexpected "B", expected '&&', '||' or end of expression`},
		{"missing operator in group", "(A B)", 3, `unexpected "B", expected '&&', '||' or ')'`},
		{"single bar", "A | B", 2, "unexpected '|', the operator is '||'"},
		{"single ampersand", "A & B", 2, "unexpected '&', the operator is '&&'"},
		{"single ampersand at end", "A &", 2, "unexpected '&', the operator is '&&'"},
		{"empty group", "()", 1, "unexpected ')', expected a tag, '*', '!' or '('"},
		{"not without operand", "A && !", 6, "unexpected end of expression, expected a tag, '*', '!' or '('"},
		{"star in tag", "PAY_*", 4, `unexpected '*', expected '&&', '||' or end of expression`},
		{"comma list", "A,B", 1, "unexpected character ',' (tags may contain A-Z a-z 0-9 _ - . : /); combine tags with '||'"},
		{"quoted tag", `"A"`, 0, `unexpected character '"' (tags may contain A-Z a-z 0-9 _ - . : /); tags are written without quotes`},
		{"non-ascii", "A || 支付", 5, "unexpected character '支' (tags may contain A-Z a-z 0-9 _ - . : /)"},
		{"invalid utf-8", "A\xff", 1, "unexpected byte 0xff (tags may contain A-Z a-z 0-9 _ - . : /)"},
		{"tag too long", "A || " + strings.Repeat("x", MaxTagLen+1), 5, "tag is 129 bytes long, max 128"},
		{"expression too long", strings.Repeat(" ", MaxExprLen) + "A", 0, "expression is 4097 bytes long, max 4096"},
		{"canonical form too long", strings.Repeat("AAAAAA||", MaxTerms-1) + "AAAAAA", 0, "expression is 5116 bytes long in canonical form, max 4096"},
		{"too deep", strings.Repeat("(", MaxDepth+1) + "A" + strings.Repeat(")", MaxDepth+1), MaxDepth, "'(' and '!' nested more than 32 deep"},
		{"too many nots", strings.Repeat("!", MaxDepth+1) + "A", MaxDepth, "'(' and '!' nested more than 32 deep"},
		{"too many terms", strings.Repeat("A||", MaxTerms) + "B", 3 * MaxTerms, "more than 512 terms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Compile(tt.input)
			require.Error(t, err)
			require.Nil(t, f)
			var pe *ParseError
			require.ErrorAs(t, err, &pe)
			require.Equal(t, tt.errPos, pe.Pos, "error: %v", err)
			require.Equal(t, tt.errMsg, pe.Msg)
			require.True(t, errors.Is(err, ErrSyntax) != errors.Is(err, ErrLimit), "exactly one sentinel: %v", err)
			require.LessOrEqual(t, pe.Pos, pe.End)
			require.LessOrEqual(t, pe.End, len(tt.input))
		})
	}
}

func TestParseErrorFormat(t *testing.T) {
	_, err := Compile("A || )")
	require.EqualError(t, err, "5:6: unexpected ')', expected a tag, '*', '!' or '('")
	require.ErrorIs(t, err, ErrSyntax)
	require.NotErrorIs(t, err, ErrLimit)

	_, err = Compile(strings.Repeat("!", 40) + "A")
	require.EqualError(t, err, "32:33: '(' and '!' nested more than 32 deep")
	require.ErrorIs(t, err, ErrLimit)
}

func TestLimitsAreInclusive(t *testing.T) {
	for _, expr := range []string{
		strings.Repeat("(", MaxDepth) + "A" + strings.Repeat(")", MaxDepth),
		strings.Repeat("!", MaxDepth) + "A",
		strings.Repeat("!(", MaxDepth/2) + "A" + strings.Repeat(")", MaxDepth/2),
		strings.Repeat("A || ", MaxTerms-1) + "B",
		"A || " + strings.Repeat("x", MaxTagLen),
		strings.Repeat(" ", MaxExprLen-1) + "A",
	} {
		_, err := Compile(expr)
		require.NoError(t, err, "%.40q...", expr)
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		input string
		want  string
	}{
		{"", "*"},
		{"*", "*"},
		{"A||B", "A || B"},
		{"  A   &&   B  ", "A && B"},
		{"((A))", "A"},
		{"(A || B) || (C || D)", "A || B || C || D"},
		{"A && (B && C)", "A && B && C"},
		{"A || (B && C)", "A || B && C"},
		{"(A || B) && C", "(A || B) && C"},
		{"! ( A )", "!A"},
		{"!(A && B)", "!(A && B)"},
		{"!(!A)", "!!A"},
		{"!(A) && !(B || C)", "!A && !(B || C)"},
		{"* && !X", "* && !X"},
	}
	for _, tt := range tests {
		t.Run(tt.input, func(t *testing.T) {
			f := MustCompile(tt.input)
			require.Equal(t, tt.want, f.String())
			require.Equal(t, tt.want, MustCompile(f.String()).String(), "canonical form is not stable")
		})
	}
}

func TestTags(t *testing.T) {
	require.Equal(t, []string{"B", "A", "C"}, MustCompile("B || !(A && B) || C && A").Tags())
	require.Empty(t, MustCompile("*").Tags())
	require.Empty(t, MustCompile("").Tags())

	f := MustCompile("A || B")
	tags := f.Tags()
	tags[0] = "Z"
	require.Equal(t, []string{"A", "B"}, f.Tags(), "Tags must return a copy")
}

func TestMatchAll(t *testing.T) {
	for expr, want := range map[string]bool{
		"":           true,
		"*":          true,
		"A || *":     true,
		"* || A":     true,
		"!!*":        true,
		"!(!* && A)": true,
		"* && A":     false,
		"A":          false,
		"!*":         false,
		"A || !A":    false, // a tautology, but MatchAll only folds '*'
	} {
		require.Equal(t, want, MustCompile(expr).MatchAll(), expr)
	}
}

func TestNilAndZeroFilterMatchAll(t *testing.T) {
	var nilFilter *Filter
	require.True(t, nilFilter.Match([]string{"A"}))
	require.True(t, nilFilter.MatchAll())
	require.Equal(t, "*", nilFilter.String())
	require.Nil(t, nilFilter.Tags())

	var zero Filter
	require.True(t, zero.Match(nil))
	require.True(t, zero.MatchAll())
	require.Equal(t, "*", zero.String())
}

func TestMatchDoesNotAllocate(t *testing.T) {
	tags := []string{"region:eu", "PAY_1002", "channel/web", "currency.EUR", "retry-0"}
	for _, bc := range benchExprs {
		f := MustCompile(bc.expr)
		allocs := testing.AllocsPerRun(100, func() { sink = f.Match(tags) })
		require.Zero(t, allocs, bc.name)
	}
}

func TestMustCompilePanics(t *testing.T) {
	require.PanicsWithValue(t, "tagfilter: Compile(A ||): 4:4: unexpected end of expression, expected a tag, '*', '!' or '('",
		func() { MustCompile("A ||") })
}

func TestValidTag(t *testing.T) {
	tests := []struct {
		name   string
		tag    string
		errMsg string // empty: valid
	}{
		{"business code", "PAY_1001", ""},
		{"all punctuation", "a-b_c.d:e/f", ""},
		{"digits only", "1001", ""},
		{"leading punctuation", "-x", ""},
		{"max length", strings.Repeat("x", MaxTagLen), ""},
		{"empty", "", "tagfilter: invalid tag: tag is empty"},
		{"too long", strings.Repeat("x", MaxTagLen+1), "tagfilter: invalid tag: tag is 129 bytes long, max 128"},
		{"space", "PAY 1001", `tagfilter: invalid tag: "PAY 1001": character ' ' at offset 3 is not allowed (allowed: A-Z a-z 0-9 _ - . : /)`},
		{"operator", "A||B", `tagfilter: invalid tag: "A||B": character '|' at offset 1 is not allowed (allowed: A-Z a-z 0-9 _ - . : /)`},
		{"star", "*", `tagfilter: invalid tag: "*": character '*' at offset 0 is not allowed (allowed: A-Z a-z 0-9 _ - . : /)`},
		{"non-ascii", "支付", `tagfilter: invalid tag: "支付": character '支' at offset 0 is not allowed (allowed: A-Z a-z 0-9 _ - . : /)`},
		{"invalid utf-8", "a\xffb", `tagfilter: invalid tag: "a\xffb": byte 0xff at offset 1 is not allowed (allowed: A-Z a-z 0-9 _ - . : /)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidTag(tt.tag)
			if tt.errMsg == "" {
				require.NoError(t, err)
				f, err := Compile(tt.tag)
				require.NoError(t, err, "a valid tag must be a valid expression")
				require.True(t, f.Match([]string{tt.tag}))
				return
			}
			require.EqualError(t, err, tt.errMsg)
			require.ErrorIs(t, err, ErrInvalidTag)
		})
	}
}

func mustParse(t testing.TB, expr string) *node {
	t.Helper()
	n, err := parse(expr)
	require.NoError(t, err)
	return n
}

// evalTree is the reference semantics: a direct recursive evaluation of
// the syntax tree, against which the compiled program is checked.
func evalTree(n *node, tags []string) bool {
	switch n.kind {
	case nodeAll:
		return true
	case nodeTag:
		for _, t := range tags {
			if t == n.tag {
				return true
			}
		}
		return false
	case nodeNot:
		return !evalTree(n.args[0], tags)
	case nodeAnd:
		for _, a := range n.args {
			if !evalTree(a, tags) {
				return false
			}
		}
		return true
	default:
		for _, a := range n.args {
			if evalTree(a, tags) {
				return true
			}
		}
		return false
	}
}
