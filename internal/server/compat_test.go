package server_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutover/cutover/examples"
	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/gitx"
)

// TestCompatGate: before a promotion, the compat/ tests of the oldest
// compatible version (tag v1.0.0) run against the new release live in
// staging; a breaking change is refused, a compatible one passes.
func TestCompatGate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example app and its compat tests")
	}
	t.Parallel()
	e := newEnv(t, func(o *examples.HelloOptions) { o.CompatOldest = "1.0.0" })
	ctx := context.Background()
	// v1 is the oldest compatible version.
	if _, err := gitx.Run(ctx, e.repo, "tag", "-a", "-m", "1.0.0", "v1.0.0"); err != nil {
		t.Fatal(err)
	}
	e.deploy("staging", core.StateSucceeded)
	e.deploy("production", core.StateSucceeded) // v1.0.0's tests against v1: pass
	check, err := e.srv.Release.Store().GetCheck(ctx, "hello", e.liveSHA("staging"), "staging", "compat")
	if err != nil || !check.Passed || !strings.Contains(check.Detail, "ok: /api/greeting") {
		t.Fatalf("recorded check = %+v, %v", check, err)
	}

	// A compatible v2 is promoted.
	e.version("v2", "")
	e.deploy("staging", core.StateSucceeded)
	e.deploy("production", core.StateSucceeded)
	e.serves(e.prod, "v2")

	// v3 renames the JSON field old clients read: staging takes it, production refuses it.
	write(t, filepath.Join(e.repo, "api.go"), "package main\n\nconst greetingField = \"message\"\n")
	e.version("v3", "")
	e.deploy("staging", core.StateSucceeded)
	refused := e.deploy("production", core.StateFailed)
	if !strings.Contains(refused.Reason, "refused by compat") || !strings.Contains(refused.Reason, `field "greeting" missing`) {
		t.Fatalf("breaking promotion: reason %q", refused.Reason)
	}
	e.serves(e.prod, "v2")
	check, _ = e.srv.Release.Store().GetCheck(ctx, "hello", e.liveSHA("staging"), "staging", "compat")
	if check.Passed {
		t.Error("failed check not recorded")
	}

	// Fixed in v4: promoted again.
	write(t, filepath.Join(e.repo, "api.go"), "package main\n\nconst greetingField = \"greeting\"\n")
	e.version("v4", "")
	e.deploy("staging", core.StateSucceeded)
	e.deploy("production", core.StateSucceeded)
	e.serves(e.prod, "v4")
}

// liveSHA is the commit live in an environment.
func (e *env) liveSHA(envName string) string {
	e.t.Helper()
	st, err := e.svc.Status(context.Background(), "hello")
	if err != nil {
		e.t.Fatal(err)
	}
	for _, s := range st {
		if s.Env == envName && s.Live != nil {
			return s.Live.SHA
		}
	}
	e.t.Fatalf("nothing live in %s", envName)
	return ""
}
