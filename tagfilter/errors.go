package tagfilter

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by [Compile] is a [*ParseError]
// that wraps [ErrSyntax] or [ErrLimit]; [ValidTag] errors wrap [ErrInvalidTag].
var (
	// ErrSyntax marks an expression that is not well formed.
	ErrSyntax = errors.New("tagfilter: syntax error")
	// ErrLimit marks an expression that exceeds MaxExprLen, MaxDepth or MaxTerms.
	ErrLimit = errors.New("tagfilter: expression too complex")
	// ErrInvalidTag marks a tag name that breaks the tag syntax (see ValidTag).
	ErrInvalidTag = errors.New("tagfilter: invalid tag")
)

// ParseError describes where and why an expression failed to compile.
//
// Pos and End are byte offsets into the expression (0 <= Pos <= End <= len):
// the span of the offending token, or an empty span at len(expr) when the
// expression ended too early. Error formats it as "Pos:End: Msg", in the
// style of Alertmanager's matcher parser.
type ParseError struct {
	Pos int
	End int
	Msg string
	// Err is ErrSyntax or ErrLimit, so callers can tell them apart with errors.Is.
	Err error
}

func (e *ParseError) Error() string { return fmt.Sprintf("%d:%d: %s", e.Pos, e.End, e.Msg) }

// Unwrap returns the sentinel (ErrSyntax or ErrLimit).
func (e *ParseError) Unwrap() error { return e.Err }

func syntaxErr(pos, end int, format string, args ...any) *ParseError {
	return &ParseError{Pos: pos, End: end, Msg: fmt.Sprintf(format, args...), Err: ErrSyntax}
}

func limitErr(pos, end int, format string, args ...any) *ParseError {
	return &ParseError{Pos: pos, End: end, Msg: fmt.Sprintf(format, args...), Err: ErrLimit}
}
