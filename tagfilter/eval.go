package tagfilter

// The expression is compiled into a decision graph: each instruction tests
// whether the message carries one tag and names the next instruction for
// either outcome. '!' swaps the two successors and '*' is no instruction at
// all, just the successor of the "true" outcome, so negation and '*' cost
// nothing at match time and '&&' and '||' short-circuit. Every tag operand
// becomes at most one instruction, and successors always have lower indices
// than their predecessor, so Match ends after at most len(prog) steps with no
// stack and no allocation.
//
// How an instruction learns whether the message has its tag depends on the
// size of the expression (numbers in docs/benchmarks.md, BenchmarkStrategy):
//
//   - linear: compare the tag with each of the message's tags. A message has
//     few tags (typically 1-10), and short-circuiting often skips most
//     instructions, so this wins for small expressions.
//   - indexed: look each message tag up once in a map from the filter's
//     distinct tag names to small ids, set a bit per id, and test bits. The
//     lookups cost about as much as 10 linear tests, so this is used for
//     expressions with more than linearMax tag operands. When the expression
//     is a plain "A || B || C || ..." of tags (a consumer of many business
//     codes), a hit in the map decides and there is no graph to walk.
const linearMax = 10

// maxIDs bounds the distinct tag names of a filter (one per operand at most).
const maxIDs = MaxTerms

// Successor values at or below accept are verdicts, not instructions.
const (
	accept int32 = 0
	reject int32 = -1
)

type instr struct {
	tag     string
	id      uint16 // index of tag in the filter's distinct tags (indexed only)
	yes, no int32  // successor when the message has / lacks tag
}

// prog is embedded in Filter. Its zero value matches everything.
type prog struct {
	code  []instr // code[0] is unused so that 0 can mean accept
	entry int32
	index map[string]uint16 // tag name to id; nil when matching linearly
	// anyOf is set when the expression is a plain "A || B || ..." of
	// tags, the common case of a consumer of several business codes:
	// indexed matching then needs no graph walk, only one hit in index.
	anyOf bool
}

// compileProg compiles tree; tags are its distinct tag names.
func compileProg(tree *node, tags []string) prog {
	c := &compiler{code: make([]instr, 1, 1+countTerms(tree))}
	entry := c.gen(tree, accept, reject)
	p := prog{code: c.code, entry: entry, anyOf: tree.kind == nodeOr}
	for _, a := range tree.args {
		p.anyOf = p.anyOf && a.kind == nodeTag
	}
	if len(p.code)-1 > linearMax {
		p.buildIndex(tags)
	}
	return p
}

// buildIndex switches p to indexed matching.
func (p *prog) buildIndex(tags []string) {
	p.index = make(map[string]uint16, len(tags))
	for i, t := range tags {
		p.index[t] = uint16(i)
	}
	for i := 1; i < len(p.code); i++ {
		p.code[i].id = p.index[p.code[i].tag]
	}
}

type compiler struct {
	code []instr
}

// gen emits the instructions for n, given where to continue when n is true
// (yes) and when it is false (no), and returns n's entry point. Operands
// are generated last to first so that each entry point is known before the
// operand that jumps to it is generated.
func (c *compiler) gen(n *node, yes, no int32) int32 {
	switch n.kind {
	case nodeAll:
		return yes
	case nodeTag:
		if yes == no {
			return yes // the outcome does not depend on this tag, as in "A || *"
		}
		c.code = append(c.code, instr{tag: n.tag, yes: yes, no: no})
		return int32(len(c.code) - 1)
	case nodeNot:
		return c.gen(n.args[0], no, yes)
	case nodeAnd:
		next := yes
		for i := len(n.args) - 1; i >= 0; i-- {
			next = c.gen(n.args[i], next, no)
		}
		return next
	default: // nodeOr
		next := no
		for i := len(n.args) - 1; i >= 0; i-- {
			next = c.gen(n.args[i], yes, next)
		}
		return next
	}
}

func countTerms(n *node) int {
	if n.kind == nodeTag {
		return 1
	}
	total := 0
	for _, a := range n.args {
		total += countTerms(a)
	}
	return total
}

// Match reports whether a message carrying tags passes the filter. Order
// and duplicates in tags do not matter; a message without tags matches
// only expressions such as "*" or "!A". Match does not allocate.
func (f *Filter) Match(tags []string) bool {
	if f == nil {
		return true
	}
	if f.index != nil {
		return f.matchIndexed(tags)
	}
	return f.matchLinear(tags)
}

func (p *prog) matchLinear(tags []string) bool {
	pc := p.entry
	for pc > accept {
		in := &p.code[pc]
		if has(tags, in.tag) {
			pc = in.yes
		} else {
			pc = in.no
		}
	}
	return pc == accept
}

func (p *prog) matchIndexed(tags []string) bool {
	if p.anyOf {
		for _, t := range tags {
			if _, ok := p.index[t]; ok {
				return true
			}
		}
		return false
	}
	var seen [maxIDs / 64]uint64
	for _, t := range tags {
		if id, ok := p.index[t]; ok {
			seen[id/64] |= 1 << (id % 64)
		}
	}
	pc := p.entry
	for pc > accept {
		in := &p.code[pc]
		if seen[in.id/64]&(1<<(in.id%64)) != 0 {
			pc = in.yes
		} else {
			pc = in.no
		}
	}
	return pc == accept
}

func has(tags []string, tag string) bool {
	for _, t := range tags {
		if t == tag {
			return true
		}
	}
	return false
}
