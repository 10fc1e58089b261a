// Package policy decides whether a commit may enter an environment: a rule
// over named conditions (ci && (cd || review) && approval), deploy windows
// in a time zone, and the server-side policy file that sets both per
// environment. It is pure: callers gather the facts (check results,
// deployments, approvals) and the clock, and policy only judges them.
package policy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/cutover/cutover/internal/yamlfield"
)

// The conditions a rule may name.
const (
	CondCI       = "ci"       // every required check of the commit passed
	CondCD       = "cd"       // the commit was deployed successfully to the environment it promotes from
	CondReview   = "review"   // someone other than the commit's authors approved its review
	CondApproval = "approval" // enough people approved this deployment
)

// Conditions lists the condition names a rule may use, in documentation order.
var Conditions = []string{CondCI, CondCD, CondReview, CondApproval}

// Limits that keep a rule cheap to parse and evaluate.
const (
	MaxRuleBytes = 1024
	MaxRuleDepth = 32 // nesting of parentheses and !
)

// Op is what a node of a rule is.
type Op string

// The node kinds.
const (
	OpCondition Op = "condition"
	OpNot       Op = "not"
	OpAnd       Op = "and"
	OpOr        Op = "or"
)

// Rule is a parsed rule. A nil *Rule requires nothing: it always holds.
type Rule struct {
	root *node
	text string   // canonical
	uses []string // conditions named, in Conditions order
}

// node is one operator or condition. && and || are n-ary: a && b && c is
// one node with three operands, so a verdict lists them side by side.
type node struct {
	op   Op
	name string // for OpCondition
	args []*node
	text string // canonical text of this node alone
}

// SyntaxError is a rule that does not parse: the column (1-based, in
// bytes of the rule) and what was expected there.
type SyntaxError struct {
	Col int
	Msg string
}

// Error formats the problem as "col N: MSG".
func (e *SyntaxError) Error() string { return "col " + strconv.Itoa(e.Col) + ": " + e.Msg }

// token kinds
const (
	tokEnd = iota
	tokName
	tokAnd
	tokOr
	tokNot
	tokOpen
	tokClose
)

type token struct {
	kind int
	text string
	col  int // 1-based
}

func (t token) describe() string {
	if t.kind == tokEnd {
		return "the end of the rule"
	}
	return strconv.Quote(t.text)
}

func isNameByte(c byte, first bool) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || !first && (c >= '0' && c <= '9' || c == '-')
}

// lex splits src into tokens; the last one is tokEnd.
func lex(src string) ([]token, error) {
	toks := make([]token, 0, 16)
	for i := 0; i < len(src); {
		c := src[i]
		col := i + 1
		switch {
		case c == ' ' || c == '\t':
			i++
			continue
		case c == '(':
			toks = append(toks, token{tokOpen, "(", col})
		case c == ')':
			toks = append(toks, token{tokClose, ")", col})
		case c == '!':
			toks = append(toks, token{tokNot, "!", col})
		case c == '&' || c == '|':
			op := string([]byte{c, c})
			if i+1 >= len(src) || src[i+1] != c {
				return nil, &SyntaxError{col, fmt.Sprintf("%q is not an operator: want %q", string(c), op)}
			}
			kind := tokAnd
			if c == '|' {
				kind = tokOr
			}
			toks = append(toks, token{kind, op, col})
			i += 2
			continue
		case isNameByte(c, true):
			j := i + 1
			for j < len(src) && isNameByte(src[j], false) {
				j++
			}
			toks = append(toks, token{tokName, src[i:j], col})
			i = j
			continue
		default:
			r := []rune(src[i:])[0]
			return nil, &SyntaxError{col, fmt.Sprintf("unexpected %q: want a condition (%s), &&, ||, !, ( or )", r, strings.Join(Conditions, ", "))}
		}
		i++
	}
	return append(toks, token{tokEnd, "", len(src) + 1}), nil
}

// parser is a recursive-descent parser over the grammar
//
//	or   = and { "||" and }
//	and  = not { "&&" not }
//	not  = "!" not | atom
//	atom = NAME | "(" or ")"
type parser struct {
	toks  []token
	pos   int
	depth int
}

func (p *parser) peek() token { return p.toks[p.pos] }
func (p *parser) next() token { t := p.toks[p.pos]; p.pos++; return t }

// Parse parses a rule such as "ci && (cd || review) && approval". Errors
// are *SyntaxError values that name the column and what was expected.
func Parse(src string) (*Rule, error) {
	if len(src) > MaxRuleBytes {
		return nil, &SyntaxError{MaxRuleBytes + 1, fmt.Sprintf("the rule is longer than %d bytes", MaxRuleBytes)}
	}
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	if toks[0].kind == tokEnd {
		return nil, &SyntaxError{1, fmt.Sprintf("empty rule: want a condition (%s)", strings.Join(Conditions, ", "))}
	}
	p := &parser{toks: toks}
	root, err := p.or()
	if err != nil {
		return nil, err
	}
	switch t := p.peek(); t.kind {
	case tokEnd:
	case tokClose:
		return nil, &SyntaxError{t.col, `")" has no matching "("`}
	default:
		msg := fmt.Sprintf("want && or || or the end of the rule, got %s", t.describe())
		if w, ok := wordOps[strings.ToLower(t.text)]; ok {
			msg += fmt.Sprintf(" (write %s for %s)", w, t.text)
		}
		return nil, &SyntaxError{t.col, msg}
	}
	r := &Rule{root: root, text: root.text}
	for _, c := range Conditions {
		if root.uses(c) {
			r.uses = append(r.uses, c)
		}
	}
	return r, nil
}

// wordOps are operators people write as words from other languages.
var wordOps = map[string]string{"and": "&&", "or": "||", "not": "!"}

func (p *parser) binary(op Op, kind int, operand func() (*node, error)) (*node, error) {
	first, err := operand()
	if err != nil {
		return nil, err
	}
	if p.peek().kind != kind {
		return first, nil
	}
	n := &node{op: op}
	n.add(first)
	for p.peek().kind == kind {
		p.next()
		x, err := operand()
		if err != nil {
			return nil, err
		}
		n.add(x)
	}
	n.text = n.render()
	return n, nil
}

// add appends an operand, flattening a nested node of the same operator:
// && and || are associative, so (a && b) && c is a && b && c.
func (n *node) add(x *node) {
	if x.op == n.op {
		n.args = append(n.args, x.args...)
		return
	}
	n.args = append(n.args, x)
}

func (p *parser) or() (*node, error)  { return p.binary(OpOr, tokOr, p.and) }
func (p *parser) and() (*node, error) { return p.binary(OpAnd, tokAnd, p.not) }

func (p *parser) not() (*node, error) {
	if p.peek().kind != tokNot {
		return p.atom()
	}
	t := p.next()
	if p.depth++; p.depth > MaxRuleDepth {
		return nil, &SyntaxError{t.col, fmt.Sprintf("nested more than %d deep", MaxRuleDepth)}
	}
	x, err := p.not()
	p.depth--
	if err != nil {
		return nil, err
	}
	n := &node{op: OpNot, args: []*node{x}}
	n.text = n.render()
	return n, nil
}

func (p *parser) atom() (*node, error) {
	t := p.next()
	switch t.kind {
	case tokName:
		if !slices.Contains(Conditions, t.text) {
			msg := fmt.Sprintf("unknown condition %q", t.text)
			if s := yamlfield.Suggest(t.text, Conditions); s != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", s)
			}
			return nil, &SyntaxError{t.col, msg + "; want one of " + strings.Join(Conditions, ", ")}
		}
		return &node{op: OpCondition, name: t.text, text: t.text}, nil
	case tokOpen:
		if p.depth++; p.depth > MaxRuleDepth {
			return nil, &SyntaxError{t.col, fmt.Sprintf("nested more than %d deep", MaxRuleDepth)}
		}
		x, err := p.or()
		p.depth--
		if err != nil {
			return nil, err
		}
		if c := p.next(); c.kind != tokClose {
			return nil, &SyntaxError{c.col, fmt.Sprintf(`want ")" to close the "(" at col %d, got %s`, t.col, c.describe())}
		}
		return x, nil
	}
	return nil, &SyntaxError{t.col, fmt.Sprintf(`want a condition or "(", got %s`, t.describe())}
}

// precedence orders the operators for printing: a higher one binds tighter.
func precedence(op Op) int {
	switch op {
	case OpOr:
		return 1
	case OpAnd:
		return 2
	case OpNot:
		return 3
	}
	return 4
}

// render writes n canonically: single spaces around && and ||, ! next to
// its operand, and parentheses only where precedence needs them.
func (n *node) render() string {
	wrap := func(x *node) string {
		if precedence(x.op) < precedence(n.op) {
			return "(" + x.text + ")"
		}
		return x.text
	}
	switch n.op {
	case OpNot:
		return "!" + wrap(n.args[0])
	case OpAnd, OpOr:
		sep := " && "
		if n.op == OpOr {
			sep = " || "
		}
		parts := make([]string, len(n.args))
		for i, a := range n.args {
			parts[i] = wrap(a)
		}
		return strings.Join(parts, sep)
	}
	return n.name
}

func (n *node) uses(name string) bool {
	if n.op == OpCondition {
		return n.name == name
	}
	return slices.ContainsFunc(n.args, func(a *node) bool { return a.uses(name) })
}

// String renders the rule canonically; "" for a nil rule.
func (r *Rule) String() string {
	if r == nil {
		return ""
	}
	return r.text
}

// Uses lists the conditions the rule names, in Conditions order: the
// facts Evaluate needs.
func (r *Rule) Uses() []string {
	if r == nil {
		return nil
	}
	return slices.Clone(r.uses)
}

// Has says whether the rule names the condition.
func (r *Rule) Has(name string) bool {
	return r != nil && slices.Contains(r.uses, name)
}

// MarshalText renders the rule canonically, so a Rule serialises as its text.
func (r *Rule) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText parses a rule.
func (r *Rule) UnmarshalText(b []byte) error {
	p, err := Parse(string(b))
	if err != nil {
		return err
	}
	*r = *p
	return nil
}
