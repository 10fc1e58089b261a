package server_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/examples"
	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/deploy"
	"github.com/cutover/cutover/internal/gitx"
	"github.com/cutover/cutover/internal/testutil"
)

// The ci && (cd || review) rule end to end: real repositories, processes
// and the store; the requester is "ann", the commits' author "cutover".
func TestPolicyCIAndCDOrReview(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.svc.SetPolicy(ctx, "hello", []byte(`environments:
  staging:    {checks: [test]}
  production:
    from: staging
    checks: [test]
    require: ci && (cd || review)
`), "root"); err != nil {
		t.Fatal(err)
	}
	deploy := func(env string, want core.DeploymentState) core.Deployment {
		t.Helper()
		d, err := e.svc.Deploy(ctx, deploy.DeployRequest{App: "hello", Env: env, RequestedBy: "ann"})
		if err != nil {
			t.Fatal(err)
		}
		return e.wait(d, want)
	}
	sha1, err := e.svc.CheckPolicy(ctx, "hello", "production", "", "ann")
	if err != nil || sha1.Allowed {
		t.Fatalf("policy check before CI = %+v, %v; want a refusal", sha1, err)
	}

	// No CI: refused, and the verdict says what is missing.
	d := deploy("production", core.StateFailed)
	if !strings.Contains(d.Reason, "refused by policy") || !strings.Contains(d.Reason, `check "test" is not reported`) {
		t.Fatalf("no CI: %q", d.Reason)
	}
	report := func(sha string) {
		t.Helper()
		if _, err := e.svc.ReportCheck(ctx, core.CommitStatus{App: "hello", SHA: sha, Name: "test", State: core.CheckSuccess, By: "ci"}); err != nil {
			t.Fatal(err)
		}
	}
	// CI plus a staging success: allowed.
	report(sha1.SHA)
	deploy("staging", core.StateSucceeded)
	deploy("production", core.StateSucceeded)

	// A new commit with CI but never in staging: cd and review both fail.
	v2 := e.version("v2", "")
	report(v2)
	d = deploy("production", core.StateFailed)
	if !strings.Contains(d.Reason, "not deployed successfully to staging") || !strings.Contains(d.Reason, "no review") {
		t.Fatalf("cd and review missing: %q", d.Reason)
	}
	// A review by the commits' author does not count; nor by the requester.
	commits, err := gitx.Log(ctx, e.repo, "", v2)
	if err != nil || len(commits) == 0 {
		t.Fatal(err)
	}
	for _, by := range []string{commits[0].Author, "ann"} {
		if _, err := e.svc.ReviewCommit(ctx, "hello", v2, by); err != nil {
			t.Fatal(err)
		}
	}
	d = deploy("production", core.StateFailed)
	if !strings.Contains(d.Reason, "who may not review it") {
		t.Fatalf("review by the author and the requester counted: %q", d.Reason)
	}
	// A review by someone else: allowed without staging.
	if _, err := e.svc.ReviewCommit(ctx, "hello", v2, "bob"); err != nil {
		t.Fatal(err)
	}
	deploy("production", core.StateSucceeded)
	e.serves(e.prod, "v2")
	v, err := e.svc.CheckPolicy(ctx, "hello", "production", v2, "ann")
	if err != nil || !v.Allowed || !strings.Contains(v.Text, "bob") {
		t.Errorf("policy check = %+v, %v", v, err)
	}
}

// A deploy window refuses with the next allowed time; an override with a
// reason goes through and is recorded.
func TestPolicyWindowAndOverride(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	today := time.Now().UTC().Format("2006-01-02")
	if _, err := e.svc.SetPolicy(ctx, "hello", []byte(`environments:
  staging:
    windows:
      timezone: UTC
      deny: ["`+today+` - `+today+`"]
`), "root"); err != nil {
		t.Fatal(err)
	}
	d, err := e.svc.Deploy(ctx, deploy.DeployRequest{App: "hello", Env: "staging", RequestedBy: "ann"})
	if err != nil {
		t.Fatal(err)
	}
	d = e.wait(d, core.StateFailed)
	tomorrow := time.Now().UTC().AddDate(0, 0, 1).Format("2006-01-02")
	if !strings.Contains(d.Reason, "deploy window") || !strings.Contains(d.Reason, "next allowed "+tomorrow+"T00:00:00Z") {
		t.Fatalf("window refusal: %q", d.Reason)
	}
	// --when-allowed waits instead.
	w, err := e.svc.Deploy(ctx, deploy.DeployRequest{App: "hello", Env: "staging", RequestedBy: "ann", Options: core.DeployOptions{WhenAllowed: true}})
	if err != nil {
		t.Fatal(err)
	}
	var got core.Deployment
	waitShowing(t, "--when-allowed to wait until tomorrow", 20*time.Second, func() bool {
		got, _ = e.svc.Deployment(ctx, w.ID)
		return got.State == core.StateWaiting && got.WaitUntil != nil && got.WaitUntil.Format("2006-01-02") == tomorrow
	}, func() string { return fmt.Sprintf("--when-allowed: %s %q", got.State, got.WaitingOn) })
	if _, err := e.svc.Cancel(ctx, w.ID, "ann"); err != nil {
		t.Fatal(err)
	}
	// An override with a reason passes and is in the timeline.
	o, err := e.svc.Deploy(ctx, deploy.DeployRequest{App: "hello", Env: "staging", RequestedBy: "root", Options: core.DeployOptions{Override: true, Reason: "incident 7 fix"}})
	if err != nil {
		t.Fatal(err)
	}
	e.wait(o, core.StateSucceeded)
	es, _ := e.svc.Events(ctx, "hello", 0, 1000)
	found := false
	for _, ev := range es {
		found = found || (ev.Type == core.EventDeployOverride && ev.Actor == "root" && strings.Contains(ev.Message, "incident 7 fix"))
	}
	if !found {
		t.Error("the override is not in the timeline with its actor and reason")
	}
}

// An automatic switch-back locks the environment: a later deploy is
// refused until unlock, a rollback is not.
func TestSwitchBackLocksTheEnvironment(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *examples.HelloOptions) { o.Verify = 3 * time.Second })
	ctx := context.Background()
	e.deploy("staging", core.StateSucceeded)
	e.version("v2", "")
	e.deploy("staging", core.StateSucceeded)
	e.version("v3", "after")
	e.deploy("staging", core.StateRolledBack)
	st, _ := e.svc.Status(ctx, "hello")
	if st[0].Lock == nil || !st[0].Lock.Automatic || !strings.Contains(st[0].Lock.Reason, "automatic rollback of #3") {
		t.Fatalf("lock after the switch-back = %+v", st[0].Lock)
	}
	e.version("v4", "")
	d := e.deploy("staging", core.StateFailed)
	if !strings.Contains(d.Reason, "refused by lock") || !strings.Contains(d.Reason, "cutover unlock hello staging") {
		t.Fatalf("deploy into a locked environment: %q", d.Reason)
	}
	rb, err := e.svc.Rollback(ctx, deploy.RollbackRequest{App: "hello", Env: "staging"})
	if err != nil {
		t.Fatal(err)
	}
	e.wait(rb, core.StateSucceeded)
	e.serves(e.staging, "v1")
	if err := e.svc.Unlock(ctx, "hello", "staging", "ann"); err != nil {
		t.Fatal(err)
	}
	e.deploy("staging", core.StateSucceeded)
	e.serves(e.staging, "v4")
	if err := e.svc.Unlock(ctx, "hello", "staging", "ann"); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("unlock an unlocked environment: %v", err)
	}
}

// A hotfix reaches production with staging broken, on an approval by
// another person instead of cd; staging is left as it is.
func TestHotfix(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.svc.SetPolicy(ctx, "hello", []byte(`environments:
  production: {from: staging, require: cd}
`), "root"); err != nil {
		t.Fatal(err)
	}
	e.deploy("staging", core.StateSucceeded)
	e.deploy("production", core.StateSucceeded)
	e.version("v2", "boot") // staging is broken by v2
	e.deploy("staging", core.StateFailed)
	fix := e.version("v3", "")
	hot := deploy.DeployRequest{App: "hello", Env: "production", Ref: fix, RequestedBy: "ann", Options: core.DeployOptions{Hotfix: true, Reason: "payments down"}}
	d, err := e.svc.Deploy(ctx, hot)
	if err != nil {
		t.Fatal(err)
	}
	if d = e.wait(d, core.StateFailed); !strings.Contains(d.Reason, "hotfix (payments down): cd replaced by approval") {
		t.Fatalf("hotfix without approval: %q", d.Reason)
	}
	if _, err := e.svc.Approve(ctx, core.Approval{App: "hello", Env: "production", SHA: fix, By: "bob"}); err != nil {
		t.Fatal(err)
	}
	if d, err = e.svc.Deploy(ctx, hot); err != nil {
		t.Fatal(err)
	}
	if d = e.wait(d, core.StateSucceeded); !d.Options.Hotfix || d.Options.Reason != "payments down" {
		t.Errorf("the hotfix is not marked: %+v", d.Options)
	}
	e.serves(e.prod, "v3")
	e.serves(e.staging, "v1") // staging untouched
}

// A promotion ships the very artifact live in staging (same digest) with
// production's config; a recycle ships new config on the same digest
// without running the migration.
func TestPromoteAndRecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.deploy("staging", core.StateSucceeded)
	e.version("v2", "") // HEAD moves on; staging still runs v1
	p, err := e.svc.Promote(ctx, "hello", "staging", "production", "ann", core.DeployOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p = e.wait(p, core.StateSucceeded)
	rels, _ := e.svc.Releases(ctx, "hello", 10)
	digest := map[int]string{}
	for _, r := range rels {
		digest[r.Number] = r.Digest
	}
	st, _ := e.svc.Status(ctx, "hello")
	var staging, prod core.Release
	for _, s := range st {
		switch s.Env {
		case "staging":
			staging = *s.Live
		case "production":
			prod = *s.Live
		}
	}
	if p.Kind != core.KindPromote || prod.SHA != staging.SHA || digest[prod.Number] != digest[staging.Number] {
		t.Fatalf("promotion = %s; production %+v, staging %+v", p.Kind, prod, staging)
	}
	e.serves(e.prod, "v1")

	// A recycle: a new config version, the same digest, no migration.
	migrations := countMigrations(t, e)
	if _, err := e.svc.SetConfig(ctx, "hello", "production", map[string]string{"GREETING": "howdy"}, nil); err != nil {
		t.Fatal(err)
	}
	r, err := e.svc.Recycle(ctx, "hello", "production", "ann")
	if err != nil {
		t.Fatal(err)
	}
	r = e.wait(r, core.StateSucceeded)
	rel, _ := e.svc.Releases(ctx, "hello", 1)
	if r.Kind != core.KindRecycle || rel[0].SHA != prod.SHA || rel[0].Digest != digest[prod.Number] || rel[0].ConfigVersion != 1 {
		t.Errorf("recycle = %s, release %+v", r.Kind, rel[0])
	}
	if got := countMigrations(t, e); got != migrations {
		t.Errorf("the recycle ran the migration (%d -> %d events)", migrations, got)
	}
	if _, body := get(t, e.prod); !strings.Contains(body, "howdy") {
		t.Errorf("production answers %q, want the new greeting", body)
	}
}

func countMigrations(t *testing.T, e *env) int {
	t.Helper()
	es, _ := e.svc.Events(context.Background(), "hello", 0, 1000)
	n := 0
	for _, ev := range es {
		if ev.Step == core.StepMigrate && ev.Type == core.EventDeployStep {
			n++
		}
	}
	return n
}

// A deployment asked to wait for approval records approval.requested once,
// naming the command that gives it, and goes out when someone else
// approves; one that waits for CI asks nobody.
func TestApprovalRequested(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.svc.SetPolicy(ctx, "hello", []byte(`environments:
  staging:    {checks: [test], require: ci}
  production: {require: approval}
`), "root"); err != nil {
		t.Fatal(err)
	}
	asked := func() []core.Event {
		es, err := e.svc.Events(ctx, "hello", 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		var out []core.Event
		for _, ev := range es {
			if ev.Type == core.EventApprovalAsked {
				out = append(out, ev)
			}
		}
		return out
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		testutil.WaitFor(t, what, 30*time.Second, cond)
	}
	waitOpt := core.DeployOptions{WaitForApproval: true}

	// Staging waits for CI: no one is asked for an approval.
	ds, err := e.svc.Deploy(ctx, deploy.DeployRequest{App: "hello", Env: "staging", RequestedBy: "ann", Options: waitOpt})
	if err != nil {
		t.Fatal(err)
	}
	waitFor("staging to wait", func() bool {
		d, err := e.svc.Deployment(ctx, ds.ID)
		return err == nil && d.State == core.StateWaiting
	})
	if got := asked(); len(got) != 0 {
		t.Fatalf("a wait for CI asked for approval: %+v", got)
	}
	if _, err := e.svc.Cancel(ctx, ds.ID, "ann"); err != nil {
		t.Fatal(err)
	}

	d, err := e.svc.Deploy(ctx, deploy.DeployRequest{App: "hello", Env: "production", RequestedBy: "ann", Options: waitOpt})
	if err != nil {
		t.Fatal(err)
	}
	waitFor("approval.requested", func() bool { return len(asked()) > 0 })
	a := asked()[0]
	if a.DeploymentID != d.ID || a.Actor != "ann" || a.Env != "production" || !strings.Contains(a.Reason, "cutover approve hello production --commit") {
		t.Errorf("approval.requested = %+v", a)
	}
	if _, err := e.svc.Approve(ctx, core.Approval{App: "hello", Env: "production", SHA: d.SHA, By: "bob"}); err != nil {
		t.Fatal(err)
	}
	e.wait(d, core.StateSucceeded)
	if got := asked(); len(got) != 1 {
		t.Errorf("approval.requested recorded %d times, want once: %+v", len(got), got)
	}
}
