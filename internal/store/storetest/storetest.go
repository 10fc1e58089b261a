// Package storetest is the conformance suite every deploy.Store
// implementation runs, so SQLite and PostgreSQL behave the same.
package storetest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/deploy"
	"github.com/cutover/cutover/internal/testutil"
)

const sha1 = "1111111111111111111111111111111111111111"

// Run runs the suite of what the deploy machine needs; open returns a
// fresh, empty store.
func Run(t *testing.T, open func(t *testing.T) deploy.Store) {
	t.Run("apps", func(t *testing.T) { apps(t, open(t)) })
	t.Run("delete an app", func(t *testing.T) { deleteApp(t, open(t)) })
	t.Run("artifacts are immutable", func(t *testing.T) { artifacts(t, open(t)) })
	t.Run("config versions and secrets", func(t *testing.T) { configs(t, open(t)) })
	t.Run("release numbering", func(t *testing.T) { releases(t, open(t)) })
	t.Run("deployments and paging", func(t *testing.T) { deployments(t, open(t)) })
	t.Run("events", func(t *testing.T) { events(t, open(t)) })
	t.Run("cursors", func(t *testing.T) { cursors(t, open(t)) })
	t.Run("env state", func(t *testing.T) { envState(t, open(t)) })
	t.Run("env state compare-and-swap", func(t *testing.T) { envStateCAS(t, open(t)) })
	t.Run("locks", func(t *testing.T) { locks(t, open(t)) })
}

// ReleaseStore is what release management persists beside the deploy
// machine's store.
type ReleaseStore interface {
	deploy.Store
	CreateCandidate(ctx context.Context, c core.Candidate) (core.Candidate, error)
	UpdateCandidate(ctx context.Context, c core.Candidate) error
	GetCandidate(ctx context.Context, app string, number, patch int) (core.Candidate, error)
	ListCandidates(ctx context.Context, app string, limit int) ([]core.Candidate, error)
	PutCheck(ctx context.Context, c core.Check) error
	GetCheck(ctx context.Context, app, sha, env, name string) (core.Check, error)
}

// RunRelease runs the suite of release candidates and checks.
func RunRelease(t *testing.T, open func(t *testing.T) ReleaseStore) {
	t.Run("release candidates", func(t *testing.T) { candidates(t, open(t)) })
	t.Run("checks", func(t *testing.T) { checks(t, open(t)) })
}

func candidates(t *testing.T, s ReleaseStore) {
	mustApp(t, s, "a")
	if _, err := s.CreateCandidate(ctx, core.Candidate{App: "a", Patch: 1}); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("patch before any full release: %v", err)
	}
	want := []string{"1", "2", "2.1", "2.2", "3", "3.1"}
	for _, id := range want {
		patch := 0
		if strings.Contains(id, ".") {
			patch = 1 // asks for a patch; the store numbers it
		}
		c, err := s.CreateCandidate(ctx, core.Candidate{App: "a", Patch: patch, Head: sha1, State: core.CandidateCut})
		if err != nil || c.ID() != id {
			t.Fatalf("candidate = %s, %v; want %s", c.ID(), err, id)
		}
	}
	c, err := s.GetCandidate(ctx, "a", 2, 2)
	if err != nil || c.Head != sha1 {
		t.Fatalf("get 2.2 = %+v, %v", c, err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	c.State, c.Tag, c.Notes, c.FinishedAt = core.CandidateFinished, "v1.0.0", "## Notes", &now
	if err := s.UpdateCandidate(ctx, c); err != nil {
		t.Fatal(err)
	}
	got, _ := s.GetCandidate(ctx, "a", 2, 2)
	if got.State != core.CandidateFinished || got.Tag != "v1.0.0" || !got.FinishedAt.Equal(now) {
		t.Errorf("round trip = %+v", got)
	}
	if _, err := s.GetCandidate(ctx, "a", 9, 0); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("missing: %v", err)
	}
	l, _ := s.ListCandidates(ctx, "a", 3)
	if len(l) != 3 || l[0].ID() != "3.1" || l[2].ID() != "2.2" {
		t.Errorf("list = %v", l)
	}
	// Number and Patch are floors (releases the repository's tags know of).
	for _, tc := range []struct {
		number, patch int
		want          string
	}{{7, 0, "7"}, {2, 0, "8"}, {8, 4, "8.4"}, {0, 1, "8.5"}, {9, 2, "9.2"}} {
		c, err := s.CreateCandidate(ctx, core.Candidate{App: "a", Number: tc.number, Patch: tc.patch, Head: sha1, State: core.CandidateCut})
		if err != nil || c.ID() != tc.want {
			t.Errorf("floor %d.%d: candidate = %s, %v; want %s", tc.number, tc.patch, c.ID(), err, tc.want)
		}
	}
}

func checks(t *testing.T, s ReleaseStore) {
	if _, err := s.GetCheck(ctx, "a", sha1, "staging", "compat"); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("missing check: %v", err)
	}
	for _, passed := range []bool{false, true} {
		if err := s.PutCheck(ctx, core.Check{App: "a", SHA: sha1, Env: "staging", Name: "compat", Passed: passed, Detail: "ran", CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := s.GetCheck(ctx, "a", sha1, "staging", "compat")
	if err != nil || !c.Passed || c.Detail != "ran" {
		t.Errorf("check = %+v, %v", c, err)
	}
}

var ctx = context.Background()

func mustApp(t *testing.T, s deploy.Store, name string) {
	t.Helper()
	if err := s.CreateApp(ctx, core.App{Name: name, Repo: "/r/" + name, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

func apps(t *testing.T, s deploy.Store) {
	mustApp(t, s, "b")
	mustApp(t, s, "a")
	if err := s.CreateApp(ctx, core.App{Name: "a", Repo: "x"}); !errors.Is(err, core.ErrConflict) {
		t.Errorf("duplicate app: err = %v, want ErrConflict", err)
	}
	if _, err := s.GetApp(ctx, "zzz"); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("missing app: err = %v", err)
	}
	got, err := s.ListApps(ctx)
	if err != nil || len(got) != 2 || got[0].Name != "a" || got[1].Repo != "/r/b" {
		t.Errorf("list = %+v, %v", got, err)
	}
}

func artifacts(t *testing.T, s deploy.Store) {
	mustApp(t, s, "a")
	a := core.Artifact{App: "a", SHA: sha1, Digest: "sha256:aa", Ref: "/x", Size: 3, CreatedAt: time.Now()}
	if _, err := s.PutArtifact(ctx, a); err != nil {
		t.Fatal(err)
	}
	again := a
	again.Ref = "/elsewhere"
	got, err := s.PutArtifact(ctx, again)
	if err != nil || got.Ref != "/x" {
		t.Errorf("same digest again = %+v, %v; want the stored record", got, err)
	}
	bad := a
	bad.Digest = "sha256:bb"
	if _, err := s.PutArtifact(ctx, bad); !errors.Is(err, core.ErrConflict) || !strings.Contains(err.Error(), "sha256:bb") {
		t.Errorf("different digest: err = %v, want ErrConflict naming both digests", err)
	}
	if got, _ := s.GetArtifact(ctx, "a", sha1); got.Digest != "sha256:aa" {
		t.Errorf("digest changed to %s", got.Digest)
	}
	if _, err := s.GetArtifact(ctx, "a", strings.Repeat("2", 40)); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("missing artifact: %v", err)
	}
	if l, _ := s.ListArtifacts(ctx, "a", 10); len(l) != 1 {
		t.Errorf("list = %d", len(l))
	}
	if err := s.DeleteArtifact(ctx, "a", sha1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetArtifact(ctx, "a", sha1); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("deleted artifact: %v, want ErrNotFound", err)
	}
	if err := s.DeleteArtifact(ctx, "a", sha1); err != nil {
		t.Errorf("deleting twice: %v", err)
	}
}

func configs(t *testing.T, s deploy.Store) {
	mustApp(t, s, "a")
	cv, err := s.GetConfig(ctx, "a", "prod", 0)
	if err != nil || cv.Version != 0 || len(cv.Vars) != 0 {
		t.Fatalf("no config yet = %+v, %v", cv, err)
	}
	v1, err := s.PutConfig(ctx, "a", "prod", map[string]string{"A": "1"}, map[string]string{"KEY": "topsecret", "B": "x"})
	if err != nil || v1.Version != 1 {
		t.Fatal(v1, err)
	}
	v2, _ := s.PutConfig(ctx, "a", "prod", map[string]string{"A": "2"}, nil)
	if v2.Version != 2 {
		t.Errorf("second version = %d", v2.Version)
	}
	if other, _ := s.PutConfig(ctx, "a", "staging", nil, nil); other.Version != 1 {
		t.Errorf("versions are per environment: got %d", other.Version)
	}
	got, _ := s.GetConfig(ctx, "a", "prod", 1)
	if got.Vars["A"] != "1" || strings.Join(got.SecretKeys, ",") != "B,KEY" {
		t.Errorf("v1 = %+v", got)
	}
	latest, _ := s.GetConfig(ctx, "a", "prod", 0)
	if latest.Version != 2 || latest.Vars["A"] != "2" {
		t.Errorf("latest = %+v", latest)
	}
	sec, err := s.GetConfigSecrets(ctx, "a", "prod", 1)
	if err != nil || sec["KEY"] != "topsecret" {
		t.Errorf("secrets = %v, %v", sec, err)
	}
	if _, err := s.GetConfig(ctx, "a", "prod", 9); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("missing version: %v", err)
	}
}

func releases(t *testing.T, s deploy.Store) {
	mustApp(t, s, "a")
	mustApp(t, s, "b")
	var wg sync.WaitGroup
	nums := make(chan int, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := s.CreateRelease(ctx, core.Release{App: "a", Env: "prod", SHA: sha1, Digest: "d"})
			if err != nil {
				t.Error(err)
				return
			}
			nums <- r.Number
		}()
	}
	wg.Wait()
	close(nums)
	seen := map[int]bool{}
	for n := range nums {
		if seen[n] || n < 1 || n > 20 {
			t.Errorf("release number %d repeated or out of 1..20", n)
		}
		seen[n] = true
	}
	if r, _ := s.CreateRelease(ctx, core.Release{App: "b", Env: "prod", SHA: sha1}); r.Number != 1 {
		t.Errorf("numbering is per app: got %d", r.Number)
	}
	got, err := s.GetRelease(ctx, "a", 7)
	if err != nil || got.Number != 7 || got.SHA != sha1 {
		t.Errorf("get = %+v, %v", got, err)
	}
	if _, err := s.GetRelease(ctx, "a", 99); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("missing release: %v", err)
	}
	if l, _ := s.ListReleases(ctx, "a", 5); len(l) != 5 || l[0].Number != 20 {
		t.Errorf("list newest first = %+v", l)
	}
}

func deployments(t *testing.T, s deploy.Store) {
	mustApp(t, s, "a")
	now := time.Now().UTC().Truncate(time.Microsecond)
	var ids []int64
	for i := range 10 {
		env := "staging"
		if i%2 == 1 {
			env = "prod"
		}
		d, err := s.CreateDeployment(ctx, core.Deployment{App: "a", Env: env, Kind: core.KindDeploy, Release: i + 1, State: core.StatePending, Step: core.StepQueued, CreatedAt: now, UpdatedAt: now})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.ID)
	}
	d, _ := s.GetDeployment(ctx, ids[3])
	sw := now.Add(time.Second)
	d.State, d.Step, d.SwitchedAt, d.FinishedAt, d.Reason = core.StateSucceeded, core.StepDone, &sw, &sw, "ok"
	d.Instances = []string{"hello-prod-blue-r4-0-abc", "hello-prod-blue-r4-1-def"}
	if err := s.UpdateDeployment(ctx, d); err != nil {
		t.Fatal(err)
	}
	got, _ := s.GetDeployment(ctx, ids[3])
	if got.State != core.StateSucceeded || got.SwitchedAt == nil || !got.SwitchedAt.Equal(sw) || !got.CreatedAt.Equal(now) || len(got.Instances) != 2 || got.Instances[1] != "hello-prod-blue-r4-1-def" {
		t.Errorf("round trip = %+v", got)
	}
	if err := s.UpdateDeployment(ctx, core.Deployment{ID: 999999}); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("update missing: %v", err)
	}
	page, _ := s.ListDeployments(ctx, "a", "", 0, 4)
	if len(page) != 4 || page[0].ID != ids[9] {
		t.Fatalf("first page = %v", page)
	}
	next, _ := s.ListDeployments(ctx, "a", "", page[3].ID, 100)
	if len(next) != 6 || next[0].ID != ids[5] {
		t.Errorf("second page = %d rows", len(next))
	}
	prod, _ := s.ListDeployments(ctx, "a", "prod", 0, 100)
	if len(prod) != 5 {
		t.Errorf("prod = %d, want 5", len(prod))
	}
	un, _ := s.UnfinishedDeployments(ctx)
	if len(un) != 9 || un[0].ID != ids[0] {
		t.Errorf("unfinished = %d", len(un))
	}
	// A waiting deployment is unfinished and keeps what it waits on.
	until := now.Add(time.Hour)
	w, err := s.CreateDeployment(ctx, core.Deployment{App: "a", Env: "prod", Kind: core.KindDeploy, State: core.StateWaiting, Step: core.StepGates,
		WaitingOn: "approval", WaitUntil: &until, CreatedAt: now, UpdatedAt: now,
		Options: core.DeployOptions{Hotfix: true, Reason: "payments down", WaitForApproval: true}})
	if err != nil {
		t.Fatal(err)
	}
	got, _ = s.GetDeployment(ctx, w.ID)
	if got.WaitingOn != "approval" || got.WaitUntil == nil || !got.WaitUntil.Equal(until) || !got.Options.Hotfix || got.Options.Reason != "payments down" || !got.Options.WaitForApproval {
		t.Errorf("waiting round trip = %+v", got)
	}
	if un, _ := s.UnfinishedDeployments(ctx); len(un) != 10 || un[9].ID != w.ID {
		t.Errorf("unfinished with a waiting one = %d", len(un))
	}
}

func events(t *testing.T, s deploy.Store) {
	for i, app := range []string{"a", "b", "a"} {
		if _, err := s.AppendEvent(ctx, core.Event{App: app, Env: "e", Time: time.Now(), Type: core.EventDeployFailed, DeploymentID: 7,
			Release: 3, SHA: sha1, State: core.StateFailed, Reason: "health", Actor: "ann", Message: string(rune('x' + i))}); err != nil {
			t.Fatal(err)
		}
	}
	all, _ := s.ListEvents(ctx, "", 0, 10)
	if len(all) != 3 || all[0].ID >= all[1].ID {
		t.Fatalf("events = %+v", all)
	}
	if e := all[0]; e.Type != core.EventDeployFailed || e.DeploymentID != 7 || e.Release != 3 || e.SHA != sha1 || e.State != core.StateFailed || e.Reason != "health" || e.Actor != "ann" {
		t.Errorf("structured fields lost: %+v", e)
	}
	as, _ := s.ListEvents(ctx, "a", all[0].ID, 10)
	if len(as) != 1 || as[0].Message != "z" {
		t.Errorf("after = %+v", as)
	}
	if _, err := s.AppendEvent(ctx, core.Event{App: "a", Time: time.Now(), Type: core.EventBuildFailed, SHA: sha1, Message: "w"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		app   string
		types []core.EventType
		want  string // message; "" = none
	}{
		{"a", []core.EventType{core.EventDeployFailed}, "z"},
		{"a", []core.EventType{core.EventDeployFailed, core.EventBuildFailed}, "w"},
		{"b", []core.EventType{core.EventDeployFailed, core.EventBuildFailed}, "y"},
		{"a", []core.EventType{core.EventBuildFinished}, ""},
		{"nope", []core.EventType{core.EventDeployFailed}, ""},
		{"a", nil, ""},
	} {
		e, ok, err := s.LastEvent(ctx, tc.app, tc.types...)
		if err != nil || ok != (tc.want != "") || ok && (e.Message != tc.want || e.SHA == "" && tc.want == "w") {
			t.Errorf("LastEvent(%s, %v) = %+v, %v, %v; want message %q", tc.app, tc.types, e, ok, err, tc.want)
		}
	}
}

func cursors(t *testing.T, s deploy.Store) {
	if pos, err := s.GetCursor(ctx, "notify"); err != nil || pos != 0 {
		t.Fatalf("new cursor = %d, %v; want 0", pos, err)
	}
	for _, p := range []int64{5, 9} {
		if err := s.PutCursor(ctx, "notify", p); err != nil {
			t.Fatal(err)
		}
	}
	if pos, _ := s.GetCursor(ctx, "notify"); pos != 9 {
		t.Errorf("cursor = %d, want 9", pos)
	}
	if pos, _ := s.GetCursor(ctx, "other"); pos != 0 {
		t.Errorf("cursors are per name: %d", pos)
	}
}

func envStateCAS(t *testing.T, s deploy.Store) {
	a, _ := s.GetEnvState(ctx, "a", "prod")
	b := a // a second writer read the same version
	a.Live = core.Blue
	stored, err := s.PutEnvState(ctx, a)
	if err != nil || stored.Version != 1 {
		t.Fatalf("first write = v%d, %v", stored.Version, err)
	}
	b.Live = core.Green
	if _, err := s.PutEnvState(ctx, b); !errors.Is(err, core.ErrConflict) {
		t.Fatalf("stale create: %v, want ErrConflict", err)
	}
	stored.Verified = 3
	if stored, err = s.PutEnvState(ctx, stored); err != nil || stored.Version != 2 {
		t.Fatalf("second write = v%d, %v", stored.Version, err)
	}
	stale := stored
	stale.Version = 1
	stale.Live = core.Green
	if _, err := s.PutEnvState(ctx, stale); !errors.Is(err, core.ErrConflict) {
		t.Fatalf("stale update: %v, want ErrConflict", err)
	}
	got, _ := s.GetEnvState(ctx, "a", "prod")
	if got.Live != core.Blue || got.Verified != 3 || got.Version != 2 {
		t.Errorf("a refused write changed the state: %+v", got)
	}
}

func envState(t *testing.T, s deploy.Store) {
	st, err := s.GetEnvState(ctx, "a", "prod")
	if err != nil || st.LiveRelease() != 0 {
		t.Fatalf("empty state = %+v, %v", st, err)
	}
	st.Live = core.Green
	st.Slot(core.Green).State = core.SlotLive
	st.Slot(core.Green).Release = 4
	st.Slot(core.Green).Instances = []core.Instance{{ID: "i1", Addr: "127.0.0.1:1", Data: map[string]string{"pid": "5"}}}
	st.Slot(core.Blue).State = core.SlotStandby
	st.Slot(core.Blue).Until = time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	if st, err = s.PutEnvState(ctx, st); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutEnvState(ctx, st); err != nil {
		t.Fatal(err)
	}
	other := core.EnvState{App: "a", Env: "beta"}
	if _, err := s.PutEnvState(ctx, other); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutEnvState(ctx, core.EnvState{App: "b", Env: "prod"}); err != nil {
		t.Fatal(err)
	}
	all, err := s.ListEnvStates(ctx, "a")
	if err != nil || len(all) != 2 || all[0].Env != "beta" || all[1].LiveRelease() != 4 {
		t.Errorf("list = %+v, %v", all, err)
	}
	got, _ := s.GetEnvState(ctx, "a", "prod")
	if got.LiveRelease() != 4 || got.Slots[core.Green].Instances[0].Data["pid"] != "5" || !got.Slots[core.Blue].Until.Equal(st.Slot(core.Blue).Until) {
		t.Errorf("round trip = %+v", got)
	}
}

func locks(t *testing.T, s deploy.Store) {
	if err := s.TryLock(ctx, "a", "prod", "deployment 1", time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.TryLock(ctx, "a", "prod", "deployment 1", time.Hour); err != nil {
		t.Errorf("re-lock by holder: %v", err)
	}
	err := s.TryLock(ctx, "a", "prod", "deployment 2", time.Hour)
	if !errors.Is(err, core.ErrLocked) || !strings.Contains(err.Error(), "deployment 1") {
		t.Errorf("second holder: err = %v, want ErrLocked naming deployment 1", err)
	}
	if h, _ := s.LockHolder(ctx, "a", "prod"); h != "deployment 1" {
		t.Errorf("holder = %q", h)
	}
	if err := s.TryLock(ctx, "a", "staging", "deployment 2", time.Hour); err != nil {
		t.Errorf("other env: %v", err)
	}
	_ = s.Unlock(ctx, "a", "prod", "deployment 2") // not the holder: no effect
	if h, _ := s.LockHolder(ctx, "a", "prod"); h != "deployment 1" {
		t.Errorf("unlock by non-holder released the lock")
	}
	_ = s.Unlock(ctx, "a", "prod", "deployment 1")
	if h, _ := s.LockHolder(ctx, "a", "prod"); h != "" {
		t.Errorf("after unlock holder = %q", h)
	}
	if err := s.TryLock(ctx, "a", "qa", "x", 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	testutil.WaitFor(t, "the expired 10 ms lock to be taken over", 5*time.Second, func() bool {
		lastErr = s.TryLock(ctx, "a", "qa", "y", time.Hour)
		if lastErr != nil && !errors.Is(lastErr, core.ErrLocked) {
			t.Fatalf("expired lock not taken over: %v", lastErr)
		}
		return lastErr == nil
	})
}

func deleteApp(t *testing.T, s deploy.Store) {
	mustApp(t, s, "a")
	mustApp(t, s, "b")
	now := time.Now().UTC()
	for _, app := range []string{"a", "b"} {
		if _, err := s.PutArtifact(ctx, core.Artifact{App: app, SHA: sha1, Digest: "d", Ref: "x", CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.PutConfig(ctx, app, "prod", map[string]string{"K": "v"}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateRelease(ctx, core.Release{App: app, Env: "prod", SHA: sha1, Digest: "d", CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateDeployment(ctx, core.Deployment{App: app, Env: "prod", Kind: core.KindDeploy, Release: 1, State: core.StateSucceeded, Step: core.StepDone, CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.PutEnvState(ctx, core.EnvState{App: app, Env: "prod", Live: core.Blue}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AppendEvent(ctx, core.Event{App: app, Type: core.EventAppAdded, Time: now, Message: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteApp(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetApp(ctx, "a"); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("deleted app: %v", err)
	}
	if ds, _ := s.ListDeployments(ctx, "a", "", 0, 10); len(ds) != 0 {
		t.Errorf("deployments of a deleted app: %v", ds)
	}
	if sts, _ := s.ListEnvStates(ctx, "a"); len(sts) != 0 {
		t.Errorf("states of a deleted app: %v", sts)
	}
	if _, err := s.GetArtifact(ctx, "a", sha1); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("artifact of a deleted app: %v", err)
	}
	if es, _ := s.ListEvents(ctx, "a", 0, 10); len(es) != 1 {
		t.Errorf("the timeline of a deleted app must stay: %d events", len(es))
	}
	if ds, _ := s.ListDeployments(ctx, "b", "", 0, 10); len(ds) != 1 {
		t.Errorf("another app lost its deployments: %v", ds)
	}
	if err := s.DeleteApp(ctx, "a"); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("deleting twice: %v", err)
	}
	// The name can be used again.
	mustApp(t, s, "a")
	if r, err := s.CreateRelease(ctx, core.Release{App: "a", Env: "prod", SHA: sha1, Digest: "d", CreatedAt: now}); err != nil || r.Number != 1 {
		t.Errorf("first release of a new app with an old name = %+v, %v", r, err)
	}
}
