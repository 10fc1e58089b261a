package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/deploy"
)

// benchPolicy: production requires ci && (cd || review) && approval, with
// a weekly window; the commit has CI, a review and an approval.
const benchPolicy = `environments:
  production:
    from: staging
    checks: [test, lint]
    require: ci && (cd || review) && approval
    windows:
      timezone: America/New_York
      deny: ["Sat 00:00 - Sat 06:00", "2099-12-20 - 2100-01-03"]
`

func benchEnv(b *testing.B) (*env, string) {
	e := newEnv(b)
	ctx := context.Background()
	if _, err := e.svc.SetPolicy(ctx, "hello", []byte(benchPolicy), "root"); err != nil {
		b.Fatal(err)
	}
	v, err := e.svc.CheckPolicy(ctx, "hello", "production", "", "ann")
	if err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"test", "lint"} {
		if _, err := e.svc.ReportCheck(ctx, core.CommitStatus{App: "hello", SHA: v.SHA, Name: name, State: core.CheckSuccess, By: "ci"}); err != nil {
			b.Fatal(err)
		}
	}
	return e, v.SHA
}

// BenchmarkPolicyCheck: the policy's judgement of one deploy, facts
// gathered from SQLite and git (CI results, deployments, reviews,
// approvals, the commits' authors) and the window: what every deploy pays.
func BenchmarkPolicyCheck(b *testing.B) {
	e, sha := benchEnv(b)
	ctx := context.Background()
	for b.Loop() {
		if _, err := e.svc.CheckPolicy(ctx, "hello", "production", sha, "ann"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRefusedDeploy: from the deploy request to its recorded refusal
// (the request answers at once; the refusal follows from the gates).
func BenchmarkRefusedDeploy(b *testing.B) {
	e, sha := benchEnv(b)
	ctx := context.Background()
	for b.Loop() {
		d, err := e.svc.Deploy(ctx, deploy.DeployRequest{App: "hello", Env: "production", Ref: sha, RequestedBy: "ann"})
		if err != nil {
			b.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		got, err := e.svc.Wait(wctx, d.ID)
		cancel()
		if err != nil || got.State != core.StateFailed {
			b.Fatalf("deploy = %s %q, %v; want refused", got.State, got.Reason, err)
		}
	}
}
