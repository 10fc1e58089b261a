package release

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutover/cutover/internal/core"
)

// hotfixed finishes RC 1 from main, then RC 1.1 from a hotfix branched off
// the production line, and leaves the work clone on main. It returns the
// hotfix commit.
func (f *fixture) hotfixed() string {
	f.t.Helper()
	f.live(f.commit("feat: config", map[string]string{"settings.txt": "a\n"}))
	if _, err := f.svc.Cut(ctx, CutRequest{App: "hello"}); err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.svc.Finish(ctx, "hello", "1", FinishOptions{}); err != nil {
		f.t.Fatal(err)
	}
	f.git(f.work, "fetch", "-q", "origin")
	f.git(f.work, "checkout", "-q", "-b", "hotfix", "origin/stages/prod")
	fix := f.commit("fix: login loop", map[string]string{"login.txt": "fixed\n"})
	if _, err := f.svc.Cut(ctx, CutRequest{App: "hello", Patch: true, From: "hotfix"}); err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.svc.Finish(ctx, "hello", "1.1", FinishOptions{}); err != nil {
		f.t.Fatal(err)
	}
	f.git(f.work, "checkout", "-q", "main")
	return fix
}

// TestFinish_HotfixIsNeverLostSilently: RC 2 cut from main without RC 1.1's
// hotfix is reported at cut and check, refused at finish, and finished only
// when the hotfix is dropped by name; production and the tag then name the
// candidate's own commit.
func TestFinish_HotfixIsNeverLostSilently(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	fix := f.hotfixed()
	head := f.commit("feat: new page", map[string]string{"page.txt": "p"})
	f.live(head)
	rc2, err := f.svc.Cut(ctx, CutRequest{App: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rc2.Notes, "## Not in this release") || !strings.Contains(rc2.Notes, "login loop") {
		t.Errorf("cut does not report the hotfix RC 2 lacks:\n%s", rc2.Notes)
	}
	res, err := f.svc.Check(ctx, "hello", "2")
	if err != nil {
		t.Fatal(err)
	}
	if res.Clean || res.FastForward || len(res.Missing) != 1 || res.Missing[0].SHA != fix || len(res.Conflicts) != 0 {
		t.Fatalf("check = %+v, want the hotfix missing", res)
	}
	before := f.originRefs()
	for _, opts := range []FinishOptions{{}, {Drop: []string{strings.Repeat("ab", 4)}}, {Drop: []string{"xyz"}}} {
		_, err := f.svc.Finish(ctx, "hello", "2", opts)
		if err == nil {
			t.Fatalf("finish %+v went through", opts)
		}
		if len(opts.Drop) == 0 && (!errors.Is(err, ErrLacksProduction) || !strings.Contains(err.Error(), "login loop") || !strings.Contains(err.Error(), "--drop")) {
			t.Errorf("finish without --drop: %v", err)
		}
	}
	if after := f.originRefs(); after != before {
		t.Errorf("a refused finish changed the origin:\n%s\n---\n%s", before, after)
	}
	if c, _ := f.svc.Get(ctx, "hello", "2"); c.State != core.CandidateCut {
		t.Errorf("a refused finish recorded state %s", c.State)
	}
	done, err := f.svc.Finish(ctx, "hello", "2", FinishOptions{Drop: []string{fix[:10]}})
	if err != nil {
		t.Fatal(err)
	}
	if prod, tag := f.originRef("refs/heads/stages/prod"), f.originRef("refs/tags/rc-2"); prod != head || tag != head || done.Merge != head {
		t.Errorf("production %s, tag %s, want both at the built commit %s", prod, tag, head)
	}
	if !strings.Contains(done.Notes, "## Dropped from stages/prod") || !strings.Contains(done.Notes, fix[:8]) {
		t.Errorf("notes do not record the dropped hotfix:\n%s", done.Notes)
	}
}

// TestFinish_CherryPickedHotfixCountsAsPresent: when main has the hotfix by
// patch, check is clean and finish moves production to the candidate.
func TestFinish_CherryPickedHotfixCountsAsPresent(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	fix := f.hotfixed()
	f.git(f.work, "fetch", "-q", "origin")
	f.git(f.work, "-c", "user.name=Ada", "-c", "user.email=ada@example.invalid", "cherry-pick", fix)
	head := f.commit("feat: more", nil)
	f.live(head)
	rc2, err := f.svc.Cut(ctx, CutRequest{App: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(rc2.Notes, "Not in this release") {
		t.Errorf("a cherry-picked hotfix is reported missing:\n%s", rc2.Notes)
	}
	if res, err := f.svc.Check(ctx, "hello", "2"); err != nil || !res.Clean || len(res.Missing) != 0 {
		t.Fatalf("check = %+v, %v", res, err)
	}
	if _, err := f.svc.Finish(ctx, "hello", "2", FinishOptions{}); err != nil {
		t.Fatal(err)
	}
	if prod, tag := f.originRef("refs/heads/stages/prod"), f.originRef("refs/tags/rc-2"); prod != head || tag != head {
		t.Errorf("production %s, tag %s, want %s", prod, tag, head)
	}
}

// TestFinish_FailedPushChangesNothing: the origin refuses the push; no ref
// moves there or in the mirror, nothing is recorded, and a rerun finishes.
func TestFinish_FailedPushChangesNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	head := f.commit("feat: x", nil)
	f.live(head)
	if _, err := f.svc.Cut(ctx, CutRequest{App: "hello", Version: "1.0.0"}); err != nil {
		t.Fatal(err)
	}
	hook := filepath.Join(f.origin, "hooks", "pre-receive")
	if err := os.WriteFile(hook, []byte("#!/bin/sh\necho refused by policy >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	before := f.originRefs()
	if _, err := f.svc.Finish(ctx, "hello", "1", FinishOptions{}); err == nil || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("finish with a refused push: %v", err)
	}
	if after := f.originRefs(); after != before {
		t.Errorf("origin changed:\n%s\n---\n%s", before, after)
	}
	mirror := filepath.Join(f.svc.cfg.DataDir, "hello.git")
	if out := f.git(mirror, "show-ref"); strings.Contains(out, "stages/prod") || strings.Contains(out, "v1.0.0") {
		t.Errorf("mirror kept refs of a failed finish:\n%s", out)
	}
	if c, _ := f.svc.Get(ctx, "hello", "1"); c.State != core.CandidateCut || c.Tag != "" {
		t.Errorf("failed finish recorded %+v", c)
	}
	os.Remove(hook)
	if c, err := f.svc.Finish(ctx, "hello", "1", FinishOptions{}); err != nil || c.State != core.CandidateFinished {
		t.Fatalf("rerun: %+v, %v", c, err)
	}
}

// failingUpdates fails UpdateCandidate while fail is set: a crash between
// the push and the record.
type failingUpdates struct {
	Store
	fail bool
}

func (s *failingUpdates) UpdateCandidate(ctx context.Context, c core.Candidate) error {
	if s.fail {
		return errors.New("disk full")
	}
	return s.Store.UpdateCandidate(ctx, c)
}

func TestFinish_RerunRecordsWhatWasPushed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.live(f.commit("feat: x", nil))
	if _, err := f.svc.Cut(ctx, CutRequest{App: "hello"}); err != nil {
		t.Fatal(err)
	}
	st := &failingUpdates{Store: f.st, fail: true}
	f.svc.cfg.Store = st
	if _, err := f.svc.Finish(ctx, "hello", "1", FinishOptions{}); err == nil {
		t.Fatal("finish recorded with a failing store")
	}
	st.fail = false
	c, err := f.svc.Finish(ctx, "hello", "1", FinishOptions{})
	if err != nil || c.State != core.CandidateFinished || c.Tag != "rc-1" {
		t.Fatalf("rerun = %+v, %v", c, err)
	}
}

// tagRecorder is a Tagger that records its calls and answers err.
type tagRecorder struct {
	calls []string
	err   error
}

func (r *tagRecorder) TagArtifact(ctx context.Context, app, sha, tag string) (string, error) {
	r.calls = append(r.calls, app+" "+sha+" "+tag)
	if r.err != nil {
		return "", r.err
	}
	return "reg/" + app + "@sha256:1", nil
}

// A finished release's tag goes to the image of its commit; a registry
// that refuses does not undo the release.
func TestFinish_TagsTheImage(t *testing.T) {
	t.Parallel()
	for _, fail := range []bool{false, true} {
		f := newFixture(t)
		tags := &tagRecorder{}
		if fail {
			tags.err = errors.New("registry refused")
		}
		f.svc.cfg.Tagger = tags
		head := f.commit("feat: config", map[string]string{"settings.txt": "a\n"})
		f.live(head)
		if _, err := f.svc.Cut(ctx, CutRequest{App: "hello"}); err != nil {
			t.Fatal(err)
		}
		c, err := f.svc.Finish(ctx, "hello", "1", FinishOptions{})
		if err != nil || c.State != core.CandidateFinished {
			t.Fatalf("finish with a tagger failing=%v: %+v, %v", fail, c, err)
		}
		if want := "hello " + c.Head + " " + c.Tag; len(tags.calls) != 1 || tags.calls[0] != want {
			t.Errorf("tagger calls = %q, want [%q]", tags.calls, want)
		}
	}
}
