package release

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/manifest"
)

// TestNumbering_ContinuesFromTheRepositoryTags: a new server on a
// repository released before (rc-1, rc-2, rc-2.1, v6.13.0) continues the
// numbering and the versions instead of starting at RC 1 again.
func TestNumbering_ContinuesFromTheRepositoryTags(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	old := f.commit("feat: old work", nil)
	for _, tag := range []string{"rc-1", "rc-2", "rc-2.1"} {
		f.git(f.work, "tag", tag, old)
	}
	f.git(f.work, "tag", "-a", "-m", "v6.13.0", "v6.13.0", old)
	f.git(f.work, "push", "-q", "origin", "--tags")
	head := f.commit("feat: new work", nil)
	f.live(head)
	rc, err := f.svc.Cut(ctx, CutRequest{App: "hello", Bump: "minor"})
	if err != nil {
		t.Fatal(err)
	}
	if rc.ID() != "3" || rc.Version != "6.14.0" {
		t.Errorf("cut = RC %s %s, want RC 3 6.14.0", rc.ID(), rc.Version)
	}
	// The notes start at the latest release tag, not at the first commit.
	if strings.Contains(rc.Notes, "old work") || strings.Contains(rc.Notes, "initial import") || !strings.Contains(rc.Notes, "new work") {
		t.Errorf("notes cover history before the last release tag:\n%s", rc.Notes)
	}
	if _, err := f.svc.Cut(ctx, CutRequest{App: "hello", Version: "0.1.0"}); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("cut of a version behind v6.13.0: %v", err)
	}
	if _, err := f.svc.Finish(ctx, "hello", "3", FinishOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := f.originRef("refs/tags/v6.14.0"); got != head {
		t.Errorf("tag v6.14.0 at %s, want %s", got, head)
	}
}

// TestFinish_RefusesWhatGoesBackwards: an RC older than one released, or a
// version that is not greater than a released one, is refused and nothing
// changes; a tag name already used elsewhere is refused the same way.
func TestFinish_RefusesWhatGoesBackwards(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.commit("feat: a", nil)
	f.live(a)
	if _, err := f.svc.Cut(ctx, CutRequest{App: "hello", Version: "1.0.0"}); err != nil {
		t.Fatal(err)
	}
	b := f.commit("feat: b", nil)
	f.live(b)
	if _, err := f.svc.Cut(ctx, CutRequest{App: "hello", Version: "2.0.0"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Finish(ctx, "hello", "2", FinishOptions{}); err != nil {
		t.Fatal(err)
	}
	before := f.originRefs()
	if _, err := f.svc.Finish(ctx, "hello", "1", FinishOptions{}); !errors.Is(err, ErrBackwards) {
		t.Errorf("finish of RC 1 after RC 2: %v", err)
	}
	if after := f.originRefs(); after != before {
		t.Errorf("a refused finish changed the origin:\n%s\n---\n%s", before, after)
	}
	// Another server tagged v9.0.0; RC 3 (3.0.0) would go backwards.
	f.git(f.work, "tag", "v9.0.0", b)
	f.git(f.work, "push", "-q", "origin", "v9.0.0")
	c := f.commit("feat: c", nil)
	f.live(c)
	rc3, err := f.svc.Cut(ctx, CutRequest{App: "hello", Version: "10.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	rc3.Version = "3.0.0" // as cut before the v9.0.0 tag appeared
	if err := f.st.UpdateCandidate(ctx, rc3); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Finish(ctx, "hello", "3", FinishOptions{}); !errors.Is(err, ErrBackwards) || !strings.Contains(err.Error(), "v9.0.0") {
		t.Errorf("finish of 3.0.0 after v9.0.0: %v", err)
	}
	// A tag of the same name on another commit.
	f.git(f.work, "tag", "v3.0.0", a)
	f.git(f.work, "push", "-q", "origin", "v3.0.0")
	f.git(f.work, "push", "-q", "origin", ":v9.0.0")
	before = f.originRefs()
	if _, err := f.svc.Finish(ctx, "hello", "3", FinishOptions{}); !errors.Is(err, core.ErrConflict) || !strings.Contains(err.Error(), "tag v3.0.0 already names") {
		t.Errorf("finish onto a used tag: %v", err)
	}
	if after := f.originRefs(); after != before {
		t.Errorf("a refused finish changed the origin:\n%s\n---\n%s", before, after)
	}
}

func TestAbandon_RefusesFinishAndBranchesAreNeverShared(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	head := f.commit("feat: x", nil)
	f.live(head)
	rc1, err := f.svc.Cut(ctx, CutRequest{App: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	rc2, err := f.svc.Cut(ctx, CutRequest{App: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	if rc1.Branch == rc2.Branch {
		t.Errorf("RC 1 and RC 2 share branch %s", rc1.Branch)
	}
	if c, err := f.svc.Abandon(ctx, "hello", "1"); err != nil || c.State != core.CandidateAbandoned {
		t.Fatalf("abandon = %+v, %v", c, err)
	}
	if _, err := f.svc.Finish(ctx, "hello", "1", FinishOptions{}); !errors.Is(err, ErrAbandoned) {
		t.Errorf("finish of an abandoned RC: %v", err)
	}
	if _, err := f.svc.Finish(ctx, "hello", "2", FinishOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Abandon(ctx, "hello", "2"); !errors.Is(err, core.ErrConflict) {
		t.Errorf("abandon of a finished RC: %v", err)
	}
}

// TestNotes_RealHistory: --since, merges credited to the authors of what
// they merge, a commit and its revert left out of what shipped.
func TestNotes_RealHistory(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	since := f.commit("chore: long ago", nil)
	f.git(f.work, "checkout", "-q", "-b", "topic")
	f.git(f.work, "-c", "user.name=Bob", "-c", "user.email=bob@example.invalid", "commit", "-q", "--allow-empty", "-m", "feat: part one")
	f.git(f.work, "-c", "user.name=Carol", "-c", "user.email=carol@example.invalid", "commit", "-q", "--allow-empty", "-m", "feat: part two")
	f.git(f.work, "checkout", "-q", "main")
	f.git(f.work, "-c", "user.name=Merger", "-c", "user.email=m@example.invalid", "merge", "-q", "--no-ff", "-m", "Merge pull request #8 from team/topic\n\nfeat: search", "topic")
	bad := f.commit("feat: risky cache", map[string]string{"cache.txt": "x"})
	f.git(f.work, "revert", "--no-edit", bad)
	head := f.commit("fix: typo", nil)
	f.live(head)
	rc, err := f.svc.Cut(ctx, CutRequest{App: "hello", Since: since})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"search (#8) (", "Bob, Carol)", "## Reverted", "risky cache", "reverted by", "typo"} {
		if !strings.Contains(rc.Notes, want) {
			t.Errorf("notes lack %q:\n%s", want, rc.Notes)
		}
	}
	if strings.Contains(rc.Notes, "Merger") || strings.Contains(rc.Notes, "long ago") || strings.Contains(rc.Notes, "## Features\n\n- risky cache") || strings.Contains(rc.Notes, "Revert \"feat: risky cache\"") {
		t.Errorf("notes credit the merger, start before --since or ship a reverted change:\n%s", rc.Notes)
	}
}

// TestCompat_RefusalSaysSo: the gate's refusal reads as a refusal by the
// check, not as bad input, and still matches core.ErrInvalid for callers.
func TestCompat_RefusalSaysSo(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	sha := f.commit("feat: x", nil)
	f.live(sha)
	app, _ := f.st.GetApp(ctx, "hello")
	m := &manifest.Manifest{Compat: &manifest.Compat{Oldest: "9.9.9", Test: []string{"true"}, Timeout: time.Minute}, Release: manifest.ReleaseLines{TagPrefix: "v"}}
	err := f.svc.BeforePromotion(ctx, app, sha, m, manifest.Environment{Name: "staging"})
	if !errors.Is(err, ErrCompatRefused) || !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("err = %v", err)
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "refused by the backwards-compatibility gate: tag v9.9.9") || strings.Contains(msg, "invalid input") {
		t.Errorf("message = %q", msg)
	}
}
