package deploy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/policy"
)

// The server-side policy: per environment, a rule over ci, cd, review and
// approval, the checks ci requires, how many approvals, and deploy
// windows. It is set by an admin (never read from the commit it judges)
// and, once set, replaces the manifest's promotion chain for the
// environments it names.

// policyCache keeps the parsed latest policy of each app.
type policyCache struct {
	mu sync.Mutex
	m  map[string]cachedPolicy
}

type cachedPolicy struct {
	version int
	p       *policy.Policy
}

// policyOf returns the policy in force for app's env, or false when no
// policy names that environment.
func (s *Service) policyOf(ctx context.Context, app, env string) (policy.EnvPolicy, int, bool, error) {
	if s.cfg.Governance == nil {
		return policy.EnvPolicy{}, 0, false, nil
	}
	pv, err := s.cfg.Governance.Policy(ctx, app)
	if errors.Is(err, core.ErrNotFound) {
		return policy.EnvPolicy{}, 0, false, nil
	}
	if err != nil {
		return policy.EnvPolicy{}, 0, false, err
	}
	s.policies.mu.Lock()
	c, ok := s.policies.m[app]
	s.policies.mu.Unlock()
	if !ok || c.version != pv.Version {
		p, err := policy.ParseFile([]byte(pv.Body))
		if err != nil {
			return policy.EnvPolicy{}, 0, false, fmt.Errorf("policy v%d of %s: %w", pv.Version, app, err)
		}
		c = cachedPolicy{version: pv.Version, p: p}
		s.policies.mu.Lock()
		s.policies.m[app] = c
		s.policies.mu.Unlock()
	}
	ep, ok := c.p.Env(env)
	return ep, c.version, ok, nil
}

// SetPolicy validates and records a new version of an app's policy.
func (s *Service) SetPolicy(ctx context.Context, app string, body []byte, by string) (core.PolicyVersion, error) {
	if s.cfg.Governance == nil {
		return core.PolicyVersion{}, errors.New("this server keeps no policy")
	}
	if _, err := s.activation(); err != nil {
		return core.PolicyVersion{}, err
	}
	a, err := s.App(ctx, app)
	if err != nil {
		return core.PolicyVersion{}, err
	}
	p, err := policy.ParseFile(body)
	if err != nil {
		return core.PolicyVersion{}, fmt.Errorf("%w: %v", core.ErrInvalid, err)
	}
	// Environments and from must be the app's (its manifest at HEAD).
	for _, ep := range p.Environments {
		if err := s.checkConfigEnv(ctx, a, ep.Name); err != nil {
			return core.PolicyVersion{}, fmt.Errorf("policy: environments.%s: %w", ep.Name, err)
		}
		if ep.From != "" {
			if err := s.checkConfigEnv(ctx, a, ep.From); err != nil {
				return core.PolicyVersion{}, fmt.Errorf("policy: environments.%s.from: %w", ep.Name, err)
			}
		}
	}
	pv, err := s.cfg.Governance.PutPolicy(ctx, core.PolicyVersion{App: app, Body: string(p.Marshal()), By: by, At: s.now()})
	if err != nil {
		return pv, err
	}
	s.emit(ctx, core.Event{App: app, Type: core.EventPolicySet, Actor: by,
		Message: fmt.Sprintf("policy v%d of %s set by %s", pv.Version, app, orSomeone(by))})
	return pv, nil
}

// Policy returns an app's policy in force (ErrNotFound when none was set).
func (s *Service) Policy(ctx context.Context, app string) (core.PolicyVersion, error) {
	if s.cfg.Governance == nil {
		return core.PolicyVersion{}, fmt.Errorf("no policy: %w", core.ErrNotFound)
	}
	if _, err := s.App(ctx, app); err != nil {
		return core.PolicyVersion{}, err
	}
	return s.cfg.Governance.Policy(ctx, app)
}

// PolicyVerdict is what the policy says of a commit for an environment.
type PolicyVerdict struct {
	App     string         `json:"app"`
	Env     string         `json:"env"`
	SHA     string         `json:"sha"`
	Version int            `json:"policy_version"` // 0: no policy names the environment
	Allowed bool           `json:"allowed"`
	Rule    string         `json:"rule"`
	Verdict policy.Verdict `json:"verdict"`
	// Window is the deploy window that refuses now, and Next when one
	// opens (RFC 3339 in the window's zone).
	Window string `json:"window,omitempty"`
	Next   string `json:"next_allowed,omitempty"`
	Text   string `json:"text"` // the verdict for people
}

// CheckPolicy judges a commit (HEAD when ref is empty) for an environment,
// as a deploy requested by by would be judged, without deploying.
func (s *Service) CheckPolicy(ctx context.Context, app, env, ref, by string) (PolicyVerdict, error) {
	a, err := s.App(ctx, app)
	if err != nil {
		return PolicyVerdict{}, err
	}
	if err := core.ValidateName("env", env); err != nil {
		return PolicyVerdict{}, err
	}
	if ref == "" {
		ref = "HEAD"
	}
	sha, err := s.resolve(ctx, a, ref)
	if err != nil {
		return PolicyVerdict{}, err
	}
	return s.judge(ctx, a, core.Deployment{App: app, Env: env, SHA: sha, Kind: core.KindDeploy, RequestedBy: by})
}

// judge evaluates the policy for deployment d.
func (s *Service) judge(ctx context.Context, app core.App, d core.Deployment) (PolicyVerdict, error) {
	pv := PolicyVerdict{App: app.Name, Env: d.Env, SHA: d.SHA, Allowed: true}
	ep, version, ok, err := s.policyOf(ctx, app.Name, d.Env)
	if err != nil || !ok {
		pv.Text = "no policy names " + d.Env + ": the manifest's promotion chain applies"
		return pv, err
	}
	pv.Version, pv.Rule = version, ep.Require.String()
	facts := map[string]policy.Fact{}
	for _, cond := range ep.Require.Uses() {
		f, err := s.fact(ctx, app, d, ep, cond)
		if err != nil {
			return pv, fmt.Errorf("policy condition %s: %w", cond, err)
		}
		facts[cond] = f
	}
	pv.Verdict = ep.Require.Evaluate(facts)
	pv.Allowed = pv.Verdict.Holds
	pv.Text = pv.Verdict.Text()
	if ep.Windows != nil {
		if allowed, window, next := ep.Windows.Check(s.now()); !allowed {
			pv.Allowed, pv.Window = false, window
			if !next.IsZero() {
				pv.Next = next.Format(time.RFC3339)
			}
			// The window first: it is what refuses when the rule holds.
			pv.Text = fmt.Sprintf("the deploy window %q (%s) refuses deploys now: next allowed %s\n%s", window, ep.Windows.Location(), cmpOr(pv.Next, "never"), pv.Text)
		}
	}
	return pv, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// fact gathers one condition of the policy for deployment d.
func (s *Service) fact(ctx context.Context, app core.App, d core.Deployment, ep policy.EnvPolicy, cond string) (policy.Fact, error) {
	g := s.cfg.Governance
	switch cond {
	case policy.CondCI:
		sts, err := g.CommitStatuses(ctx, app.Name, d.SHA)
		if err != nil {
			return policy.Fact{}, err
		}
		state := map[string]core.CheckState{}
		for _, st := range sts {
			state[st.Name] = st.State
		}
		var bad []string
		for _, name := range ep.Checks {
			if st := state[name]; st != core.CheckSuccess {
				if st == "" {
					st = "not reported"
				}
				bad = append(bad, fmt.Sprintf("check %q is %s", name, st))
			}
		}
		f := policy.Fact{Holds: len(bad) == 0, Needs: "every required check success: " + strings.Join(ep.Checks, ", ")}
		f.Detail = "every required check passed"
		if len(bad) > 0 {
			f.Detail = strings.Join(bad, ", ")
		}
		return f, nil
	case policy.CondCD:
		if d.Options.Hotfix {
			// A hotfix never ran in the environment before: cd is replaced
			// by an approval from another person.
			f, err := s.approvalFact(ctx, app, d, max(1, ep.Approvals))
			f.Detail = "hotfix (" + d.Options.Reason + "): cd replaced by approval: " + f.Detail
			return f, err
		}
		from := ep.From
		if from == "" {
			return policy.Fact{Holds: false, Detail: "the policy names no environment to promote from", Needs: "from: in the policy"}, nil
		}
		ok, err := s.succeededIn(ctx, app.Name, from, d.SHA)
		f := policy.Fact{Holds: ok, Needs: fmt.Sprintf("a successful deploy of %s to %s", core.ShortSHA(d.SHA), from)}
		f.Detail = "deployed successfully to " + from
		if !ok {
			f.Detail = "not deployed successfully to " + from
		}
		return f, err
	case policy.CondReview:
		return s.reviewFact(ctx, app, d)
	case policy.CondApproval:
		return s.approvalFact(ctx, app, d, max(1, ep.Approvals))
	}
	return policy.Fact{Detail: "unknown condition"}, nil
}

// succeededIn reports whether sha was deployed successfully to env.
func (s *Service) succeededIn(ctx context.Context, app, env, sha string) (bool, error) {
	var before int64
	for {
		ds, err := s.cfg.Store.ListDeployments(ctx, app, env, before, 500)
		if err != nil {
			return false, err
		}
		for _, d := range ds {
			if d.SHA == sha && d.State == core.StateSucceeded {
				return true, nil
			}
		}
		if len(ds) < 500 {
			return false, nil
		}
		before = ds[len(ds)-1].ID
	}
}

// reviewFact: someone other than the requester and every author of the
// commits this deploy newly brings approved the commit.
func (s *Service) reviewFact(ctx context.Context, app core.App, d core.Deployment) (policy.Fact, error) {
	excluded := map[string]bool{d.RequestedBy: true}
	authors, err := s.newAuthors(ctx, app, d)
	if err != nil {
		return policy.Fact{}, err
	}
	for _, a := range authors {
		excluded[a] = true
	}
	rs, err := s.cfg.Governance.Reviews(ctx, app.Name, d.SHA)
	if err != nil {
		return policy.Fact{}, err
	}
	var counted, refused []string
	for _, r := range rs {
		if excluded[r.By] || (s.cfg.Users != nil && s.authorIsUser(ctx, authors, r.By)) {
			refused = append(refused, r.By)
			continue
		}
		counted = append(counted, r.By)
	}
	names := sortedKeys(excluded)
	f := policy.Fact{Holds: len(counted) > 0,
		Needs: fmt.Sprintf("`cutover review approve %s %s` by someone other than %s", app.Name, core.ShortSHA(d.SHA), strings.Join(names, ", "))}
	switch {
	case len(counted) > 0:
		f.Detail = "reviewed by " + strings.Join(counted, ", ")
	case len(refused) > 0:
		f.Detail = "reviewed only by " + strings.Join(refused, ", ") + ", who may not review it (the requester or an author)"
	default:
		f.Detail = "no review"
	}
	return f, nil
}

// approvalFact: n people other than the requester approved this release
// or commit for the environment.
func (s *Service) approvalFact(ctx context.Context, app core.App, d core.Deployment, n int) (policy.Fact, error) {
	as, err := s.cfg.Governance.Approvals(ctx, app.Name, d.Env)
	if err != nil {
		return policy.Fact{}, err
	}
	by := map[string]bool{}
	for _, a := range as {
		if a.By == d.RequestedBy {
			continue
		}
		if a.SHA == d.SHA || (d.Release > 0 && a.Release == d.Release) {
			by[a.By] = true
		}
	}
	f := policy.Fact{Holds: len(by) >= n,
		Needs: fmt.Sprintf("%d approval(s) by people other than %s: `cutover approve %s %s --commit %s`", n, orSomeone(d.RequestedBy), app.Name, d.Env, core.ShortSHA(d.SHA))}
	f.Detail = fmt.Sprintf("%d of %d approval(s)", len(by), n)
	if len(by) > 0 {
		f.Detail += " (" + strings.Join(sortedKeys(by), ", ") + ")"
	}
	return f, nil
}

// newAuthors are the names and emails of the authors of the commits this
// deploy brings that the environment's live release does not have.
func (s *Service) newAuthors(ctx context.Context, app core.App, d core.Deployment) ([]string, error) {
	from := ""
	if st, err := s.cfg.Store.GetEnvState(ctx, app.Name, d.Env); err == nil {
		if live := st.LiveRelease(); live > 0 {
			if rel, err := s.cfg.Store.GetRelease(ctx, app.Name, live); err == nil {
				from = rel.SHA
			}
		}
	}
	commits, err := s.cfg.Source.Log(ctx, app.Repo, from, d.SHA)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, c := range commits {
		seen[c.Author] = true
		seen[c.Email] = true
	}
	delete(seen, "")
	return sortedKeys(seen), nil
}

// authorIsUser reports whether user is known by one of the authors' emails.
func (s *Service) authorIsUser(ctx context.Context, authors []string, user string) bool {
	for _, a := range authors {
		if !strings.Contains(a, "@") {
			continue
		}
		if name, ok := s.cfg.Users.UserByEmail(ctx, a); ok && name == user {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		if k != "" {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// policyGate refuses, or makes wait, a deployment the policy does not
// allow. An override (with a reason; the API lets only admins ask for
// one) passes and is recorded.
type policyGate struct{ s *Service }

func (policyGate) Name() string { return "policy" }

func (g policyGate) Decide(ctx context.Context, in GateInput) (Decision, error) {
	d := in.Deployment
	if d.Options.Override {
		return Allowed(), nil
	}
	pv, err := g.s.judge(ctx, in.App, d)
	if err != nil {
		return Decision{}, err
	}
	if pv.Allowed {
		return Allowed(), nil
	}
	if pv.Window != "" && pv.Verdict.Holds || pv.Window != "" && d.Options.WhenAllowed {
		if d.Options.WhenAllowed && pv.Next != "" {
			next, _ := time.Parse(time.RFC3339, pv.Next)
			return Waiting(fmt.Sprintf("the deploy window %q (next allowed %s)", pv.Window, pv.Next), next), nil
		}
	}
	if d.Options.WaitForApproval && pv.Window == "" {
		dec := Waiting("the policy: "+strings.ReplaceAll(strings.TrimSpace(pv.Text), "\n", "; "), time.Time{})
		dec.Asks = asks(pv.Verdict)
		return dec, nil
	}
	return Denied(strings.TrimPrefix(pv.Text, "refused: ")), nil
}

// UserDirectory maps a git author's email to a cutover user name (so a
// user cannot review their own commits).
type UserDirectory interface {
	UserByEmail(ctx context.Context, email string) (name string, ok bool)
}

// asks lists what people can give to let a waiting deployment through:
// the unmet approval and review conditions of the verdict and what each
// needs ("" when the wait is for something else, such as CI).
func asks(v policy.Verdict) string {
	var out []string
	var walk func(v policy.Verdict)
	walk = func(v policy.Verdict) {
		if v.Op == policy.OpCondition && !v.Holds && (v.Condition == policy.CondApproval || v.Condition == policy.CondReview) {
			out = append(out, v.Condition+": "+v.Needs)
		}
		for _, c := range v.Children {
			walk(c)
		}
	}
	walk(v)
	return strings.Join(out, "; ")
}
