// Package tagfilter compiles tag filter expressions and matches them
// against the set of tags a message carries.
//
// Many business codes share one topic; each message carries a set of tags
// and each subscription names the messages it wants with an expression
// such as
//
//	PAY_1001 || PAY_1002
//	(PAY_1001 || PAY_1002) && !test
//	* && !refund
//
// # Grammar
//
// In EBNF, with whitespace (space, tab, CR, LF) allowed between tokens and
// never required:
//
//	Filter  = [ Or ] .                    (* nothing at all means "*" *)
//	Or      = And { "||" And } .
//	And     = Unary { "&&" Unary } .
//	Unary   = "!" Unary | Primary .
//	Primary = "*" | Tag | "(" Or ")" .
//	Tag     = TagChar { TagChar } .       (* 1 to 128 bytes *)
//	TagChar = "A" … "Z" | "a" … "z" | "0" … "9" | "_" | "-" | "." | ":" | "/" .
//
// So '!' binds tighter than '&&', which binds tighter than '||', and both
// binary operators are associative: "A || B && !C" means "A || (B && (!C))".
// A RocketMQ-style "A || B" is a valid expression with the same meaning.
//
// # Meaning
//
// A tag name is true when the message carries exactly that tag (case
// matters, no prefixes or wildcards). '!', '&&' and '||' are not, and, or.
// '*' is true for every message, including one without tags, and may stand
// wherever a tag may: "* && !test" is the same as "!test", "A || *" matches
// everything, and "!*" matches nothing. An empty or blank expression is "*".
//
// Tag names follow one syntax everywhere: [ValidTag] checks it, and the
// produce API uses it, so every tag a message can carry can be named in a
// filter.
//
// # Limits
//
// An expression is at most [MaxExprLen] bytes, both as written and in
// canonical form; '(' and '!' nest at most [MaxDepth] deep; it holds at most
// [MaxTerms] operands; a tag is at most [MaxTagLen] bytes. Exceeding one is
// a [*ParseError] wrapping [ErrLimit]; any other malformed expression is a
// [*ParseError] wrapping [ErrSyntax]. Errors print as "pos:end: message",
// the byte span of the offending token:
//
//	5:6: unexpected ')', expected a tag, '*', '!' or '('
//
// # Use
//
// [Compile] an expression once, when the subscription is registered, and
// call [Filter.Match] for each message: it does not allocate and is safe for
// concurrent use. [Filter.String] gives the canonical form to store and
// display; [Filter.Tags] lists the tags an expression mentions; and
// [Filter.MatchAll] tells a consumer that it may skip filtering.
package tagfilter
