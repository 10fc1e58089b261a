package policy

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParse_Canonical(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ src, want string }{
		{"ci", "ci"},
		{"  ci  ", "ci"},
		{"ci&&cd", "ci && cd"},
		{"ci && (cd || review) && approval", "ci && (cd || review) && approval"},
		{"ci || cd && review", "ci || cd && review"},     // && binds tighter
		{"(ci || cd) && review", "(ci || cd) && review"}, // parentheses kept where needed
		{"(ci && cd) || review", "ci && cd || review"},   // and dropped where not
		{"((ci))", "ci"}, // redundant parentheses
		{"(ci && cd) && review", "ci && cd && review"}, // && is flattened
		{"ci || (cd || review)", "ci || cd || review"}, // so is ||
		{"! ci", "!ci"},                // ! next to its operand
		{"!!ci", "!!ci"},               // double negation kept as written
		{"!(ci && cd)", "!(ci && cd)"}, // ! over a group
		{"!ci && cd", "!ci && cd"},     // ! binds tighter than &&
		{"!(ci || cd) && (review || !approval)", "!(ci || cd) && (review || !approval)"},
		{"\tci\t||\tcd", "ci || cd"},
	} {
		r, err := Parse(tc.src)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.src, err)
			continue
		}
		if got := r.String(); got != tc.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tc.src, got, tc.want)
		}
		// The canonical form parses to itself.
		r2, err := Parse(r.String())
		if err != nil || r2.String() != r.String() {
			t.Errorf("Parse(%q) = %v, %v; want it canonical", r.String(), r2, err)
		}
	}
}

func TestParse_Errors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		src  string
		col  int
		want string
	}{
		{"", 1, "empty rule: want a condition (ci, cd, review, approval)"},
		{"   ", 1, "empty rule"},
		{"ci && (cd || reviw)", 14, `unknown condition "reviw" (did you mean review?); want one of ci, cd, review, approval`},
		{"CI", 1, `unknown condition "CI" (did you mean ci?)`},
		{"tests", 1, `unknown condition "tests"; want one of ci, cd, review, approval`},
		{"ci &&", 6, `want a condition or "(", got the end of the rule`},
		{"ci && && cd", 7, `want a condition or "(", got "&&"`},
		{"&& ci", 1, `want a condition or "(", got "&&"`},
		{"ci || )", 7, `want a condition or "(", got ")"`},
		{"()", 2, `want a condition or "(", got ")"`},
		{"(ci && cd", 10, `want ")" to close the "(" at col 1, got the end of the rule`},
		{"((ci) cd", 7, `want ")" to close the "(" at col 1, got "cd"`},
		{"ci && cd)", 9, `")" has no matching "("`},
		{"ci cd", 4, `want && or || or the end of the rule, got "cd"`},
		{"ci and cd", 4, `got "and" (write && for and)`},
		{"ci OR cd", 4, `(write || for OR)`},
		{"ci & cd", 4, `"&" is not an operator: want "&&"`},
		{"ci | cd", 4, `"|" is not an operator: want "||"`},
		{"ci && cd$", 9, `unexpected '$': want a condition (ci, cd, review, approval), &&, ||, !, ( or )`},
		{"ci && é", 7, `unexpected 'é'`},
		{"!", 2, `want a condition or "(", got the end of the rule`},
		{strings.Repeat("(", 40) + "ci" + strings.Repeat(")", 40), 33, "nested more than 32 deep"},
		{strings.Repeat("!", 40) + "ci", 33, "nested more than 32 deep"},
		{strings.Repeat("ci && ", 200) + "ci", MaxRuleBytes + 1, "longer than 1024 bytes"},
	} {
		_, err := Parse(tc.src)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%q) = %v, want a *SyntaxError", tc.src, err)
			continue
		}
		if se.Col != tc.col || !strings.Contains(se.Msg, tc.want) {
			t.Errorf("Parse(%q) = %q, want col %d and %q", tc.src, err, tc.col, tc.want)
		}
		if !strings.HasPrefix(err.Error(), "col ") {
			t.Errorf("Parse(%q) error %q does not start with the column", tc.src, err)
		}
	}
}

func TestRule_Uses(t *testing.T) {
	t.Parallel()
	r, err := Parse("approval && !(cd || ci)")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(r.Uses(), ","), "ci,cd,approval"; got != want {
		t.Errorf("Uses() = %s, want %s", got, want)
	}
	if !r.Has(CondCD) || r.Has(CondReview) {
		t.Errorf("Has: cd %v, review %v", r.Has(CondCD), r.Has(CondReview))
	}
	var none *Rule
	if none.Has(CondCI) || none.Uses() != nil || none.String() != "" {
		t.Error("a nil rule names no condition")
	}
}

func TestRule_Evaluate(t *testing.T) {
	t.Parallel()
	yes, no := Fact{Holds: true}, Fact{}
	for _, tc := range []struct {
		src   string
		facts map[string]Fact
		want  bool
	}{
		{"ci", map[string]Fact{"ci": yes}, true},
		{"ci", map[string]Fact{"ci": no}, false},
		{"ci", nil, false}, // a missing fact does not hold
		{"ci && cd", map[string]Fact{"ci": yes, "cd": no}, false},
		{"ci || cd", map[string]Fact{"ci": no, "cd": yes}, true},
		{"ci || cd && review", map[string]Fact{"ci": yes, "cd": no, "review": no}, true},
		{"(ci || cd) && review", map[string]Fact{"ci": yes, "cd": no, "review": no}, false},
		{"!ci", map[string]Fact{"ci": no}, true},
		{"!ci && cd", map[string]Fact{"ci": no, "cd": yes}, true},
		{"!(ci && cd)", map[string]Fact{"ci": yes, "cd": yes}, false},
		{"ci && (cd || review) && approval", map[string]Fact{"ci": yes, "cd": no, "review": yes, "approval": yes}, true},
		{"ci && (cd || review) && approval", map[string]Fact{"ci": yes, "cd": no, "review": no, "approval": yes}, false},
	} {
		r, err := Parse(tc.src)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Evaluate(tc.facts).Holds; got != tc.want {
			t.Errorf("%s with %v = %v, want %v", tc.src, tc.facts, got, tc.want)
		}
	}
	if v := (*Rule)(nil).Evaluate(nil); !v.Holds || v.Text() != "allowed: nothing required\n" {
		t.Errorf("nil rule: %+v %q", v, v.Text())
	}
}

func TestVerdict_Text(t *testing.T) {
	t.Parallel()
	facts := map[string]Fact{
		"ci":       {Detail: `check "test" is failure`, Needs: "every required check success: test"},
		"cd":       {Detail: "not deployed successfully to staging", Needs: "a successful deploy of this commit to staging"},
		"review":   {Detail: "no approval by another person", Needs: "`cutover review approve hello 3dffdc17` by someone other than ann, bob"},
		"approval": {Holds: true, Detail: "approved by carol", Needs: "ignored when it holds"},
	}
	for _, tc := range []struct{ src, want string }{
		{"ci && (cd || review)", `refused: ci && (cd || review)
  ✗ ci: check "test" is failure (needs: every required check success: test)
  ✗ cd || review
    ✗ cd: not deployed successfully to staging (needs: a successful deploy of this commit to staging)
    ✗ review: no approval by another person (needs: ` + "`cutover review approve hello 3dffdc17`" + ` by someone other than ann, bob)
`},
		{"approval", "allowed: approval\n  ✓ approval: approved by carol\n"},
		{"approval || ci", "allowed: approval || ci\n  ✓ approval: approved by carol\n  ✗ ci: check \"test\" is failure (needs: every required check success: test)\n"},
		{"!approval", "refused: !approval\n  ✗ !approval\n    ✓ approval: approved by carol\n"},
		{"cd && !ci", "refused: cd && !ci\n  ✗ cd: not deployed successfully to staging (needs: a successful deploy of this commit to staging)\n  ✓ !ci\n    ✗ ci: check \"test\" is failure (needs: every required check success: test)\n"},
	} {
		r, err := Parse(tc.src)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Evaluate(facts).Text(); got != tc.want {
			t.Errorf("%s:\n%s\nwant:\n%s", tc.src, got, tc.want)
		}
	}
}

func TestVerdict_JSONAndRefusals(t *testing.T) {
	t.Parallel()
	r, _ := Parse("ci && (cd || review)")
	v := r.Evaluate(map[string]Fact{"ci": {Holds: true, Detail: "all checks passed"}, "cd": {Detail: "no", Needs: "a deploy"}})
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"op":"and","expr":"ci \u0026\u0026 (cd || review)","holds":false,"children":[` +
		`{"op":"condition","condition":"ci","expr":"ci","holds":true,"detail":"all checks passed"},` +
		`{"op":"or","expr":"cd || review","holds":false,"children":[` +
		`{"op":"condition","condition":"cd","expr":"cd","holds":false,"detail":"no","needs":"a deploy"},` +
		`{"op":"condition","condition":"review","expr":"review","holds":false,"detail":"not known (no fact was gathered)"}]}]}`
	if string(b) != want {
		t.Errorf("JSON:\n%s\nwant:\n%s", b, want)
	}
	var back Verdict
	if err := json.Unmarshal(b, &back); err != nil || back.Text() != v.Text() {
		t.Errorf("round trip: %v\n%s", err, back.Text())
	}
	var names []string
	for _, x := range v.Refusals() {
		names = append(names, x.Expr)
	}
	if got := strings.Join(names, ","); got != "cd,review" {
		t.Errorf("Refusals = %s", got)
	}
}

func TestRule_TextMarshalling(t *testing.T) {
	t.Parallel()
	var s struct {
		Require *Rule `json:"require"`
	}
	if err := json.Unmarshal([]byte(`{"require":"ci&&(cd||review)"}`), &s); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(s)
	if got, want := string(b), `{"require":"ci \u0026\u0026 (cd || review)"}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if err := json.Unmarshal([]byte(`{"require":"ci &&"}`), &s); err == nil {
		t.Error("a bad rule was accepted")
	}
}

// BenchmarkParseEvaluate parses and evaluates a typical rule, as a gate
// does at every tick of a waiting deployment.
func BenchmarkParseEvaluate(b *testing.B) {
	facts := map[string]Fact{
		"ci":       {Holds: true, Detail: "every required check passed"},
		"cd":       {Detail: "not deployed successfully to staging", Needs: "a successful deploy of this commit to staging"},
		"review":   {Holds: true, Detail: "approved by carol"},
		"approval": {Holds: true, Detail: "approved by dave"},
	}
	b.ReportAllocs()
	for b.Loop() {
		r, err := Parse("ci && (cd || review) && approval")
		if err != nil {
			b.Fatal(err)
		}
		if !r.Evaluate(facts).Holds {
			b.Fatal("refused")
		}
	}
}

// BenchmarkEvaluate evaluates a parsed rule (a policy parses once).
func BenchmarkEvaluate(b *testing.B) {
	r, _ := Parse("ci && (cd || review) && approval")
	facts := map[string]Fact{"ci": {Holds: true}, "cd": {}, "review": {Holds: true}, "approval": {Holds: true}}
	b.ReportAllocs()
	for b.Loop() {
		if !r.Evaluate(facts).Holds {
			b.Fatal("refused")
		}
	}
}
