package tagfilter

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Limits on tags and expressions. They bound the work done by Compile and
// Match no matter what a client sends.
const (
	// MaxTagLen is the longest tag name, in bytes.
	MaxTagLen = 128
	// MaxExprLen is the longest expression, in bytes. It bounds both the
	// expression as given and its canonical form (Filter.String), so the
	// canonical form of every compiled filter compiles again.
	MaxExprLen = 4096
	// MaxDepth is how deeply '(' and '!' may nest: "!(!(A))" has depth 4.
	MaxDepth = 32
	// MaxTerms is the number of operands (tag names and '*') an expression may hold.
	MaxTerms = 512
)

const tagChars = "A-Z a-z 0-9 _ - . : /"

// tagByte reports whether c may appear in a tag name.
func tagByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '_', '-', '.', ':', '/':
		return true
	}
	return false
}

// ValidTag reports whether tag is a well-formed tag name: 1 to MaxTagLen
// bytes, each an ASCII letter or digit or one of '_', '-', '.', ':', '/'.
// Tags are case-sensitive. The produce API uses it to validate the tags a
// message carries, so that every tag a message can have is also writable in
// a filter. The error wraps ErrInvalidTag.
func ValidTag(tag string) error {
	if tag == "" {
		return fmt.Errorf("%w: tag is empty", ErrInvalidTag)
	}
	if len(tag) > MaxTagLen {
		return fmt.Errorf("%w: tag is %d bytes long, max %d", ErrInvalidTag, len(tag), MaxTagLen)
	}
	for i := 0; i < len(tag); i++ {
		if !tagByte(tag[i]) {
			return fmt.Errorf("%w: %q: %s at offset %d is not allowed (allowed: %s)",
				ErrInvalidTag, tag, describeChar(tag[i:]), i, tagChars)
		}
	}
	return nil
}

// describeChar names the first character of s for an error message.
func describeChar(s string) string {
	r, size := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError && size <= 1 {
		return fmt.Sprintf("byte 0x%02x", s[0])
	}
	return "character " + strconv.QuoteRune(r)
}

type tokenKind uint8

const (
	tokEOF tokenKind = iota
	tokTag
	tokStar
	tokNot
	tokAnd
	tokOr
	tokLParen
	tokRParen
)

// token is one lexeme; pos and end are byte offsets into the input.
type token struct {
	kind tokenKind
	pos  int
	end  int
	text string // the tag name, for tokTag
}

// String describes the token for error messages.
func (t token) String() string {
	switch t.kind {
	case tokEOF:
		return "end of expression"
	case tokTag:
		return strconv.Quote(t.text)
	case tokStar:
		return "'*'"
	case tokNot:
		return "'!'"
	case tokAnd:
		return "'&&'"
	case tokOr:
		return "'||'"
	case tokLParen:
		return "'('"
	case tokRParen:
		return "')'"
	}
	return "unknown token"
}

// lexer splits an expression into tokens on demand; it holds no state
// beyond the offset of the next unread byte.
type lexer struct {
	input string
	pos   int
}

// hints explain characters people commonly try in other filter languages.
var hints = map[byte]string{
	',':  "; combine tags with '||'",
	'"':  "; tags are written without quotes",
	'\'': "; tags are written without quotes",
	'=':  "; a tag matches by name alone",
	'~':  "; negate with '!'",
}

// next returns the next token, or a *ParseError for a byte sequence that
// is no token.
func (l *lexer) next() (token, error) {
	for l.pos < len(l.input) {
		switch l.input[l.pos] {
		case ' ', '\t', '\n', '\r':
			l.pos++
			continue
		}
		break
	}
	start := l.pos
	if start == len(l.input) {
		return token{kind: tokEOF, pos: start, end: start}, nil
	}
	one := func(k tokenKind) (token, error) {
		l.pos++
		return token{kind: k, pos: start, end: l.pos}, nil
	}
	switch c := l.input[start]; c {
	case '*':
		return one(tokStar)
	case '!':
		return one(tokNot)
	case '(':
		return one(tokLParen)
	case ')':
		return one(tokRParen)
	case '&', '|':
		if start+1 < len(l.input) && l.input[start+1] == c {
			l.pos += 2
			k := tokAnd
			if c == '|' {
				k = tokOr
			}
			return token{kind: k, pos: start, end: l.pos}, nil
		}
		return token{}, syntaxErr(start, start+1, "unexpected '%c', the operator is '%c%c'", c, c, c)
	default:
		if !tagByte(c) {
			_, size := utf8.DecodeRuneInString(l.input[start:])
			return token{}, syntaxErr(start, start+size, "unexpected %s (tags may contain %s)%s",
				describeChar(l.input[start:]), tagChars, hints[c])
		}
	}
	for l.pos < len(l.input) && tagByte(l.input[l.pos]) {
		l.pos++
	}
	if n := l.pos - start; n > MaxTagLen {
		return token{}, syntaxErr(start, l.pos, "tag is %d bytes long, max %d", n, MaxTagLen)
	}
	return token{kind: tokTag, pos: start, end: l.pos, text: l.input[start:l.pos]}, nil
}
