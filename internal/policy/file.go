package policy

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/yamlfield"
)

// FileName is the name the policy file's errors are reported under.
const FileName = "policy.yml"

// Defaults and limits of the policy file. They are documented in docs/policy.md.
const (
	DefaultApprovals = 1
	MaxApprovals     = 10
	MaxPolicyBytes   = 64 << 10
	MaxCheckName     = 100
)

// Policy is a parsed and validated policy file with defaults applied.
type Policy struct {
	Environments []EnvPolicy // in file order
}

// EnvPolicy is what an environment requires before a deploy may enter it.
type EnvPolicy struct {
	Name string
	// From is the environment this one promotes from, when the policy
	// names one; the caller cross-checks it with the app's manifest.
	From   string
	Checks []string // the checks that must succeed for ci, in file order
	// Require is the rule; nil requires nothing. Defaults: cd with from,
	// else ci with checks, else nothing.
	Require   *Rule
	Approvals int       // how many people must approve for approval; 1 when not given
	Windows   *Schedule // nil: any time
	// AutoDeploy, when set, deploys the head of a branch to the
	// environment whenever it changes and the policy allows it.
	AutoDeploy *AutoDeploy
}

// AutoDeploy is continuous delivery to one environment.
type AutoDeploy struct {
	Branch string        // the branch whose head is deployed
	Poll   time.Duration // how often its head is polled; 0: only on push webhooks
}

// Env returns the policy of an environment; false when the file does not
// name it (nothing is required of it).
func (p *Policy) Env(name string) (EnvPolicy, bool) {
	if p == nil {
		return EnvPolicy{}, false
	}
	i := slices.IndexFunc(p.Environments, func(e EnvPolicy) bool { return e.Name == name })
	if i < 0 {
		return EnvPolicy{}, false
	}
	return p.Environments[i], true
}

// FieldError is one problem in a policy file: where it is and what would
// be accepted. ParseFile returns them joined (errors.Join), in file order;
// their File is FileName, so Error formats them as policy.yml:LINE: FIELD: MSG.
type FieldError = yamlfield.FieldError

// The keys accepted at each level, in documentation order.
var (
	rootKeys    = []string{"environments"}
	envKeys     = []string{"from", "checks", "require", "approvals", "windows", "auto_deploy"}
	autoKeys    = []string{"branch", "poll"}
	windowsKeys = []string{"timezone", "deny", "allow"}
)

// checkName is what a check's name may contain: names of CI jobs such as
// "test", "lint (1.26)" or "ci/build: linux".
var checkName = regexp.MustCompile(`^[A-Za-z0-9_.:/()\[\]@#+-]+( [A-Za-z0-9_.:/()\[\]@#+-]+)*$`)

// ParseFile validates a policy file and applies defaults. Every error is a
// *FieldError that names the line and the field path:
// "policy.yml:7: environments.production.require: col 9: ...". All are
// returned, joined, in file order. An empty file is an empty policy.
func ParseFile(data []byte) (*Policy, error) {
	if len(data) > MaxPolicyBytes {
		return nil, &FieldError{Msg: fmt.Sprintf("larger than %d bytes", MaxPolicyBytes), File: FileName}
	}
	root, err := yamlfield.Document(FileName, data, "policy")
	if err != nil {
		return nil, err
	}
	if root == nil {
		return &Policy{}, nil
	}
	d := &decoder{yamlfield.Decoder{File: FileName, Aliases: aliases}}
	p := d.policy(root)
	if err := d.Err(); err != nil {
		return nil, err
	}
	return p, nil
}

func (d *decoder) policy(root *yaml.Node) *Policy {
	r := d.Mapping(yamlfield.Entry{Val: root}, "", "environments: {production: {require: ci}}", rootKeys...)
	p := &Policy{}
	e := r.Get("environments")
	f := d.Mapping(e, "environments", "{production: {require: ci}}")
	for _, name := range f.Keys {
		en := f.Get(name)
		path := "environments." + name
		if core.ValidateName("env", name) != nil {
			d.Fail(en.Line(), path, "%q is not a valid environment name: use lower-case letters, digits, '-' or '_'", name)
			continue
		}
		p.Environments = append(p.Environments, d.env(name, en, path))
	}
	return p
}

func (d *decoder) env(name string, en yamlfield.Entry, path string) EnvPolicy {
	ef := d.Mapping(en, path, "{from: staging, require: cd && approval}", envKeys...)
	at := func(k string) (yamlfield.Entry, string) { return ef.Get(k), path + "." + k }
	env := EnvPolicy{Name: name, Approvals: DefaultApprovals}

	fe, fp := at("from")
	if env.From = d.str(fe, fp); env.From != "" {
		switch {
		case core.ValidateName("env", env.From) != nil:
			d.Fail(fe.Line(), fp, "%q is not a valid environment name: use lower-case letters, digits, '-' or '_'", env.From)
		case env.From == name:
			d.Fail(fe.Line(), fp, "%q is this environment: it must promote from another one", env.From)
		}
	}

	ce, cp := at("checks")
	env.Checks = d.checks(ce, cp)

	re, rp := at("require")
	if n, ok := d.Scalar(re, rp, "a rule such as ci && approval"); ok {
		r, err := Parse(n.Value)
		var se *SyntaxError
		switch {
		case errors.As(err, &se):
			d.Fail(n.Line, rp, "%s", se)
		case err != nil:
			d.Fail(n.Line, rp, "%s", err)
		default:
			env.Require = r
		}
		if r != nil && r.Has(CondCI) && len(env.Checks) == 0 {
			d.Fail(n.Line, rp, "uses ci, but no checks are listed: add checks: [NAME, ...] (the checks that must succeed)")
		}
	} else if !re.Given() {
		switch {
		case env.From != "":
			env.Require = mustParse(CondCD)
		case len(env.Checks) > 0:
			env.Require = mustParse(CondCI)
		}
	}

	ae, ap := at("approvals")
	env.Approvals = d.Integer(ae, ap, DefaultApprovals, 1, MaxApprovals)
	if ae.Given() && env.Require != nil && !env.Require.Has(CondApproval) {
		d.Fail(ae.Line(), ap, "has no effect: require (%s) does not use approval (add && approval)", env.Require)
	}

	if we, wp := at("windows"); we.Given() {
		env.Windows = d.windows(we, wp)
	}
	if ae, ap := at("auto_deploy"); ae.Given() {
		env.AutoDeploy = d.autoDeploy(ae, ap)
	}
	return env
}

func (d *decoder) autoDeploy(e yamlfield.Entry, path string) *AutoDeploy {
	f := d.Mapping(e, path, "{branch: main, poll: 30s}", autoKeys...)
	a := &AutoDeploy{}
	be, bp := f.Get("branch"), path+".branch"
	if a.Branch = d.str(be, bp); a.Branch == "" {
		d.Fail(f.Line, bp, "is required: the branch whose head is deployed (for example: main)")
	} else if strings.ContainsAny(a.Branch, " ~^:?*[\\") || strings.HasPrefix(a.Branch, "-") || strings.Contains(a.Branch, "..") {
		d.Fail(be.Line(), bp, "%q is not a valid branch name", a.Branch)
	}
	if pe, pp := f.Get("poll"), path+".poll"; pe.Given() {
		if n, ok := d.Scalar(pe, pp, "a duration such as 30s"); ok {
			v, err := time.ParseDuration(n.Value)
			switch {
			case err != nil:
				d.Fail(n.Line, pp, "%q is not a duration (examples: 30s, 1m)", n.Value)
			case v < 5*time.Second || v > 24*time.Hour:
				d.Fail(n.Line, pp, "%s: want 5s to 24h (or leave it out to deploy on push webhooks only)", v)
			default:
				a.Poll = v
			}
		}
	}
	return a
}

func (d *decoder) checks(e yamlfield.Entry, path string) []string {
	n := yamlfield.Deref(e.Val)
	if yamlfield.IsNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.Fail(n.Line, path, "want a list of check names, not %s (for example: [test, lint])", yamlfield.KindName(n))
		return nil
	}
	var out []string
	first := map[string]int{}
	for i, c := range n.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		c = yamlfield.Deref(c)
		switch {
		case c.Kind != yaml.ScalarNode || yamlfield.IsNull(c):
			d.Fail(c.Line, p, "want a check name, not %s", yamlfield.KindName(c))
		case len(c.Value) > MaxCheckName || !checkName.MatchString(c.Value):
			d.Fail(c.Line, p, "%q is not a check name: up to %d letters, digits, single spaces and _ . : / ( ) [ ] @ # + -", c.Value, MaxCheckName)
		case first[c.Value] > 0:
			d.Fail(c.Line, p, "%q is listed twice (first on line %d)", c.Value, first[c.Value])
		default:
			first[c.Value] = c.Line
			out = append(out, c.Value)
		}
	}
	return out
}

func (d *decoder) windows(e yamlfield.Entry, path string) *Schedule {
	f := d.Mapping(e, path, `{timezone: Europe/Berlin, deny: ["Fri 12:00 - Mon 06:00"]}`, windowsKeys...)
	tz, tp := f.Get("timezone"), path+".timezone"
	loc, err := LoadZone(d.str(tz, tp))
	if err != nil {
		d.Fail(tz.Line(), tp, "%s", err)
	}
	ranges := func(k string) []Range {
		p := path + "." + k
		n := yamlfield.Deref(f.Get(k).Val)
		if yamlfield.IsNull(n) {
			return nil
		}
		items := n.Content
		if n.Kind == yaml.ScalarNode {
			items = []*yaml.Node{n} // one range needs no list
		} else if n.Kind != yaml.SequenceNode {
			d.Fail(n.Line, p, `want a list of ranges, not %s (for example: ["Fri 12:00 - Mon 06:00"])`, yamlfield.KindName(n))
			return nil
		}
		var out []Range
		for i, c := range items {
			ip := fmt.Sprintf("%s[%d]", p, i)
			if c = yamlfield.Deref(c); c.Kind != yaml.ScalarNode || yamlfield.IsNull(c) {
				d.Fail(c.Line, ip, "want a range as a string, not %s (%s)", yamlfield.KindName(c), RangeExamples)
				continue
			}
			r, err := ParseRange(c.Value)
			if err != nil {
				d.Fail(c.Line, ip, "%s", err)
				continue
			}
			out = append(out, r)
		}
		return out
	}
	return NewSchedule(loc, ranges("deny"), ranges("allow"))
}

func mustParse(src string) *Rule {
	r, err := Parse(src)
	if err != nil {
		panic(err)
	}
	return r
}

// Marshal renders the policy as canonical YAML (for policy show):
// environments in file order, defaults written out, rules and ranges in
// canonical form. ParseFile of the result gives the same policy.
func (p *Policy) Marshal() []byte {
	str := func(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: v} }
	flow := func(vs []string, style yaml.Style) *yaml.Node {
		n := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for _, v := range vs {
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: v, Style: style})
		}
		return n
	}
	envs := &yaml.Node{Kind: yaml.MappingNode}
	for _, e := range p.environmentsOrNil() {
		m := &yaml.Node{Kind: yaml.MappingNode}
		add := func(k string, v *yaml.Node) { m.Content = append(m.Content, str(k), v) }
		if e.From != "" {
			add("from", str(e.From))
		}
		if len(e.Checks) > 0 {
			add("checks", flow(e.Checks, 0))
		}
		if e.Require != nil {
			add("require", str(e.Require.String()))
			if e.Require.Has(CondApproval) {
				add("approvals", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(e.Approvals)})
			}
		}
		if w := e.Windows.Windows(); len(w.Deny)+len(w.Allow) > 0 || w.Timezone != "" {
			wm := &yaml.Node{Kind: yaml.MappingNode}
			if w.Timezone != "" {
				wm.Content = append(wm.Content, str("timezone"), str(w.Timezone))
			}
			if len(w.Deny) > 0 {
				wm.Content = append(wm.Content, str("deny"), flow(w.Deny, yaml.DoubleQuotedStyle))
			}
			if len(w.Allow) > 0 {
				wm.Content = append(wm.Content, str("allow"), flow(w.Allow, yaml.DoubleQuotedStyle))
			}
			add("windows", wm)
		}
		if a := e.AutoDeploy; a != nil {
			am := &yaml.Node{Kind: yaml.MappingNode, Style: yaml.FlowStyle, Content: []*yaml.Node{str("branch"), str(a.Branch)}}
			if a.Poll > 0 {
				am.Content = append(am.Content, str("poll"), str(a.Poll.String()))
			}
			add("auto_deploy", am)
		}
		if len(m.Content) == 0 {
			m.Style = yaml.FlowStyle
		}
		envs.Content = append(envs.Content, str(e.Name), m)
	}
	if len(envs.Content) == 0 {
		envs.Style = yaml.FlowStyle
	}
	root := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{str("environments"), envs}}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		panic(err) // a tree of plain strings always encodes
	}
	_ = enc.Close()
	return b.Bytes()
}

func (p *Policy) environmentsOrNil() []EnvPolicy {
	if p == nil {
		return nil
	}
	return p.Environments
}
