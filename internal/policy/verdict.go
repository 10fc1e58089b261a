package policy

import "strings"

// Fact is what the caller found out about one condition for one
// deployment: whether it holds, why, and what would make it hold.
type Fact struct {
	Holds  bool   `json:"holds"`
	Detail string `json:"detail,omitempty"` // e.g. `check "test" is failure`
	Needs  string `json:"needs,omitempty"`  // e.g. "every required check success: test"
}

// MissingDetail is the detail of a condition the caller gave no fact for:
// it does not hold.
const MissingDetail = "not known (no fact was gathered)"

// Verdict is the evaluation of a rule, as a tree that mirrors the rule:
// one node per operator or condition.
type Verdict struct {
	Op        Op        `json:"op"`
	Condition string    `json:"condition,omitempty"` // for Op "condition"
	Expr      string    `json:"expr"`                // canonical text of this node
	Holds     bool      `json:"holds"`
	Detail    string    `json:"detail,omitempty"`
	Needs     string    `json:"needs,omitempty"` // for a condition that does not hold
	Children  []Verdict `json:"children,omitempty"`
}

// Evaluate judges the rule against facts keyed by condition name. Every
// operand is evaluated (no short cut), so a refusal lists everything that
// is missing at once. A nil rule always holds.
func (r *Rule) Evaluate(facts map[string]Fact) Verdict {
	if r == nil {
		return Verdict{Op: OpAnd, Holds: true, Detail: "nothing required"}
	}
	return r.root.evaluate(facts)
}

func (n *node) evaluate(facts map[string]Fact) Verdict {
	v := Verdict{Op: n.op, Expr: n.text}
	switch n.op {
	case OpCondition:
		f, ok := facts[n.name]
		if !ok {
			f = Fact{Detail: MissingDetail}
		}
		v.Condition, v.Holds, v.Detail = n.name, f.Holds, f.Detail
		if !f.Holds {
			v.Needs = f.Needs
		}
		return v
	case OpNot:
		c := n.args[0].evaluate(facts)
		v.Holds = !c.Holds
		v.Children = []Verdict{c}
		return v
	}
	v.Children = make([]Verdict, len(n.args))
	v.Holds = n.op == OpAnd
	for i, a := range n.args {
		c := a.evaluate(facts)
		v.Children[i] = c
		if n.op == OpAnd {
			v.Holds = v.Holds && c.Holds
		} else {
			v.Holds = v.Holds || c.Holds
		}
	}
	return v
}

// Text renders the verdict as an indented tree for a terminal:
//
//	refused: ci && (cd || review)
//	  ✗ ci: check "test" is failure (needs: every required check success: test)
//	  ✗ cd || review
//	    ✗ cd: not deployed successfully to staging (needs: ...)
//	    ✗ review: no approval by another person (needs: ...)
//
// A rule that is one condition or a negation lists itself under the first
// line.
func (v Verdict) Text() string {
	var b strings.Builder
	if v.Holds {
		b.WriteString("allowed: ")
	} else {
		b.WriteString("refused: ")
	}
	if v.Expr == "" {
		b.WriteString(v.Detail)
		b.WriteByte('\n')
		return b.String()
	}
	b.WriteString(v.Expr)
	b.WriteByte('\n')
	if v.Op == OpCondition || v.Op == OpNot {
		v.line(&b, 1)
		return b.String()
	}
	for _, c := range v.Children {
		c.line(&b, 1)
	}
	return b.String()
}

func (v Verdict) line(b *strings.Builder, depth int) {
	for range depth {
		b.WriteString("  ")
	}
	if v.Holds {
		b.WriteString("✓ ")
	} else {
		b.WriteString("✗ ")
	}
	b.WriteString(v.Expr)
	if v.Detail != "" {
		b.WriteString(": ")
		b.WriteString(v.Detail)
	}
	if v.Needs != "" && !v.Holds {
		b.WriteString(" (needs: ")
		b.WriteString(v.Needs)
		b.WriteByte(')')
	}
	b.WriteByte('\n')
	for _, c := range v.Children {
		c.line(b, depth+1)
	}
}

// Refusals lists the conditions (and negations) that do not hold, in rule
// order, under the operators that do not hold: what would have to change
// (for a || node, any one of its branches).
func (v Verdict) Refusals() []Verdict {
	var out []Verdict
	var walk func(Verdict)
	walk = func(x Verdict) {
		switch {
		case x.Holds:
		case x.Op == OpCondition || x.Op == OpNot:
			out = append(out, x)
		default:
			for _, c := range x.Children {
				walk(c)
			}
		}
	}
	walk(v)
	return out
}
