package tagfilter

import "strings"

type nodeKind uint8

const (
	nodeAll nodeKind = iota // '*': true for every message
	nodeTag                 // a tag name: true when the message carries it
	nodeNot
	nodeAnd
	nodeOr
)

// node is the syntax tree. '&&' and '||' are n-ary: "(A || B) || C" and
// "A || (B || C)" both parse to or(A, B, C), which is what makes the
// canonical form independent of redundant parentheses.
type node struct {
	kind nodeKind
	tag  string  // nodeTag
	args []*node // nodeNot: one operand; nodeAnd, nodeOr: two or more
}

// parser is a recursive-descent parser with one token of lookahead.
type parser struct {
	lex   lexer
	tok   token
	depth int
	terms int
}

// parse turns expr into a syntax tree. An empty (or blank) expression is '*'.
func parse(expr string) (*node, error) {
	if len(expr) > MaxExprLen {
		return nil, limitErr(0, len(expr), "expression is %d bytes long, max %d", len(expr), MaxExprLen)
	}
	p := &parser{lex: lexer{input: expr}}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.tok.kind == tokEOF {
		return &node{kind: nodeAll}, nil
	}
	n, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	switch p.tok.kind {
	case tokEOF:
		return n, nil
	case tokRParen:
		return nil, p.unexpected("there is no '(' to close")
	}
	return nil, p.unexpected("expected '&&', '||' or end of expression")
}

func (p *parser) advance() error {
	t, err := p.lex.next()
	if err != nil {
		return err
	}
	p.tok = t
	return nil
}

func (p *parser) unexpected(why string) error {
	return syntaxErr(p.tok.pos, p.tok.end, "unexpected %s, %s", p.tok, why)
}

// parseOr: And { "||" And }.
func (p *parser) parseOr() (*node, error) {
	return p.parseList(nodeOr, tokOr, (*parser).parseAnd)
}

// parseAnd: Unary { "&&" Unary }.
func (p *parser) parseAnd() (*node, error) {
	return p.parseList(nodeAnd, tokAnd, (*parser).parseUnary)
}

// parseList parses operands joined by op into one n-ary node, splicing in
// the operands of parenthesised nodes of the same kind.
func (p *parser) parseList(kind nodeKind, op tokenKind, operand func(*parser) (*node, error)) (*node, error) {
	first, err := operand(p)
	if err != nil || p.tok.kind != op {
		return first, err
	}
	n := &node{kind: kind}
	n.args = splice(n.args, kind, first)
	for p.tok.kind == op {
		if err := p.advance(); err != nil {
			return nil, err
		}
		next, err := operand(p)
		if err != nil {
			return nil, err
		}
		n.args = splice(n.args, kind, next)
	}
	return n, nil
}

func splice(args []*node, kind nodeKind, n *node) []*node {
	if n.kind == kind {
		return append(args, n.args...)
	}
	return append(args, n)
}

// parseUnary: "!" Unary | Primary.
func (p *parser) parseUnary() (*node, error) {
	if p.tok.kind != tokNot {
		return p.parsePrimary()
	}
	if err := p.enter(); err != nil {
		return nil, err
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	operand, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	p.depth--
	return &node{kind: nodeNot, args: []*node{operand}}, nil
}

// parsePrimary: "*" | Tag | "(" Or ")".
func (p *parser) parsePrimary() (*node, error) {
	switch p.tok.kind {
	case tokTag, tokStar:
		p.terms++
		if p.terms > MaxTerms {
			return nil, limitErr(p.tok.pos, p.tok.end, "more than %d terms", MaxTerms)
		}
		n := &node{kind: nodeAll}
		if p.tok.kind == tokTag {
			n = &node{kind: nodeTag, tag: p.tok.text}
		}
		return n, p.advance()
	case tokLParen:
		open := p.tok
		if err := p.enter(); err != nil {
			return nil, err
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		n, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		switch p.tok.kind {
		case tokRParen:
			p.depth--
			return n, p.advance()
		case tokEOF:
			return nil, syntaxErr(p.tok.pos, p.tok.end, "unexpected end of expression, expected ')' to close '(' at %d", open.pos)
		}
		return nil, p.unexpected("expected '&&', '||' or ')'")
	}
	return nil, p.unexpected("expected a tag, '*', '!' or '('")
}

// enter accounts for one more level of '(' or '!' at the current token.
func (p *parser) enter() error {
	p.depth++
	if p.depth > MaxDepth {
		return limitErr(p.tok.pos, p.tok.end, "'(' and '!' nested more than %d deep", MaxDepth)
	}
	return nil
}

// format writes the canonical form of n: single spaces around binary
// operators, none after '!', and parentheses only where precedence needs them.
func format(b *strings.Builder, n *node) {
	switch n.kind {
	case nodeAll:
		b.WriteByte('*')
	case nodeTag:
		b.WriteString(n.tag)
	case nodeNot:
		b.WriteByte('!')
		formatOperand(b, n.args[0], nodeAnd)
	case nodeAnd, nodeOr:
		sep := " && "
		if n.kind == nodeOr {
			sep = " || "
		}
		for i, a := range n.args {
			if i > 0 {
				b.WriteString(sep)
			}
			formatOperand(b, a, nodeOr)
		}
	}
}

// formatOperand formats a, in parentheses when it is an '&&' or '||' node
// that binds no tighter than loosest.
func formatOperand(b *strings.Builder, a *node, loosest nodeKind) {
	if a.kind >= loosest {
		b.WriteByte('(')
		format(b, a)
		b.WriteByte(')')
		return
	}
	format(b, a)
}
