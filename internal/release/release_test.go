package release

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/examples"
	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/gitx"
	"github.com/cutover/cutover/internal/manifest"
	"github.com/cutover/cutover/internal/secret"
	"github.com/cutover/cutover/internal/store/sqlite"
)

var ctx = context.Background()

// fixture is a real origin repository (bare), a work clone where commits
// are made and pushed, a store, and the release service.
type fixture struct {
	t      *testing.T
	origin string
	work   string
	st     *sqlite.Store
	svc    *Service
	day    time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{t: t, origin: filepath.Join(dir, "origin.git"), work: filepath.Join(dir, "work"), day: time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)}
	f.git(dir, "init", "-q", "--bare", "-b", "main", f.origin)
	if err := examples.WriteHello(f.work, examples.HelloOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := gitx.Init(ctx, f.work); err != nil {
		t.Fatal(err)
	}
	f.git(f.work, "remote", "add", "origin", f.origin)
	f.commit("chore: initial import", nil)
	box, _ := secret.LoadOrCreateKey(filepath.Join(dir, "key"))
	st, err := sqlite.Open(ctx, filepath.Join(dir, "db"), box)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f.st = st
	if err := st.CreateApp(ctx, core.App{Name: "hello", Repo: f.origin, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	f.svc = New(Config{Store: st, DataDir: filepath.Join(dir, "repos"), Now: func() time.Time { return f.day }})
	return f
}

func (f *fixture) git(dir string, args ...string) string {
	f.t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=Ada", "-c", "user.email=ada@example.invalid", "-c", "commit.gpgsign=false"}, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		f.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit writes files in the work clone, commits on the current branch and pushes it.
func (f *fixture) commit(msg string, files map[string]string) string {
	f.t.Helper()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(f.work, name), []byte(content), 0o644); err != nil {
			f.t.Fatal(err)
		}
	}
	f.git(f.work, "add", "-A")
	f.git(f.work, "commit", "-q", "--allow-empty", "-m", msg)
	branch := f.git(f.work, "rev-parse", "--abbrev-ref", "HEAD")
	f.git(f.work, "push", "-q", "-f", "origin", branch)
	return f.git(f.work, "rev-parse", "HEAD")
}

// live records sha as the release live in staging.
func (f *fixture) live(sha string) {
	f.t.Helper()
	rel, err := f.st.CreateRelease(ctx, core.Release{App: "hello", Env: "staging", SHA: sha, Digest: "sha256:x"})
	if err != nil {
		f.t.Fatal(err)
	}
	st, err := f.st.GetEnvState(ctx, "hello", "staging")
	if err != nil {
		f.t.Fatal(err)
	}
	st.Live = core.Blue
	st.Slot(core.Blue).State, st.Slot(core.Blue).Release = core.SlotLive, rel.Number
	if _, err := f.st.PutEnvState(ctx, st); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) originRef(ref string) string {
	f.t.Helper()
	out, err := exec.Command("git", "-C", f.origin, "rev-parse", "--verify", "--quiet", ref+"^{commit}").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func (f *fixture) originRefs() string {
	out, _ := exec.Command("git", "-C", f.origin, "show-ref").Output()
	return string(out)
}

func TestNumberingVersionsAndNotes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.commit("feat(api): greeting endpoint", nil)
	f.git(f.work, "checkout", "-q", "-b", "topic")
	f.commit("wip", map[string]string{"topic.txt": "x"})
	f.git(f.work, "checkout", "-q", "main")
	f.git(f.work, "merge", "-q", "--no-ff", "-m", "Merge pull request #5 from team/topic\n\nfix: crash when PORT is empty", "topic")
	f.git(f.work, "push", "-q", "origin", "main")
	head := f.commit("updated the readme somehow", nil)
	f.live(head)

	rc1, err := f.svc.Cut(ctx, CutRequest{App: "hello", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	if rc1.Label() != "RC 1" || rc1.Version != "1.0.0" || rc1.Branch != "stages/rc-2026-11-24" || rc1.Head != head || rc1.Base != "" {
		t.Fatalf("rc1 = %+v", rc1)
	}
	if f.originRef("refs/heads/stages/rc-2026-11-24") != head {
		t.Error("release branch not pushed")
	}
	for _, want := range []string{"# RC 1 (1.0.0)", "## Features\n\n- **api:** greeting endpoint", "## Bug fixes\n\n- crash when PORT is empty (#5)", "## Maintenance\n\n- initial import", "## Other\n\n- updated the readme somehow"} {
		if !strings.Contains(rc1.Notes, want) {
			t.Errorf("notes lack %q:\n%s", want, rc1.Notes)
		}
	}
	if strings.Contains(rc1.Notes, "wip") {
		t.Errorf("notes list a commit from inside a merged branch:\n%s", rc1.Notes)
	}
	if _, err := f.svc.Finish(ctx, "hello", "1", FinishOptions{}); err != nil {
		t.Fatal(err)
	}

	// Next day: RC 2 from staging with a minor bump, notes only since RC 1.
	f.day = f.day.Add(24 * time.Hour)
	head2 := f.commit("perf: faster boot", nil)
	f.live(head2)
	if _, err := f.svc.Cut(ctx, CutRequest{App: "hello", Version: "0.9.0"}); !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), "not greater") {
		t.Errorf("smaller version: %v", err)
	}
	rc2, err := f.svc.Cut(ctx, CutRequest{App: "hello", Bump: "minor"})
	if err != nil {
		t.Fatal(err)
	}
	if rc2.Label() != "RC 2" || rc2.Version != "1.1.0" || rc2.Branch != "stages/rc-2026-11-25" {
		t.Fatalf("rc2 = %+v", rc2)
	}
	if !strings.Contains(rc2.Notes, "faster boot") || strings.Contains(rc2.Notes, "greeting endpoint") || !strings.Contains(rc2.Notes, "1 commit(s)") {
		t.Errorf("rc2 notes cover the wrong range:\n%s", rc2.Notes)
	}
	// Editable notes.
	if got, err := f.svc.SetNotes(ctx, "hello", "2", "# RC 2\n\nEdited."); err != nil || got.Notes != "# RC 2\n\nEdited." {
		t.Errorf("set notes = %v", err)
	}
	// Patches on top of RC 2: 2.1, 2.2.
	for i, want := range []string{"2.1", "2.2"} {
		f.git(f.work, "checkout", "-q", "-B", "hotfix", "main")
		hot := f.commit("fix: urgent "+want, map[string]string{"hotfix.txt": want})
		_ = hot
		rc, err := f.svc.Cut(ctx, CutRequest{App: "hello", Patch: true, From: "hotfix", Bump: "patch"})
		if err != nil {
			t.Fatal(err)
		}
		if rc.ID() != want || rc.Version != []string{"1.1.1", "1.1.2"}[i] {
			t.Errorf("patch = %s %s, want %s", rc.ID(), rc.Version, want)
		}
		f.git(f.work, "checkout", "-q", "main")
		f.day = f.day.Add(time.Hour) // same day: the branch name gets a suffix
	}
	list, _ := f.svc.List(ctx, "hello")
	if len(list) != 4 || list[0].ID() != "2.2" || list[0].Branch != "stages/rc-2026-11-25-3" {
		t.Errorf("list = %+v", list)
	}
}

func TestConflictIsReportedAndNothingChanges(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	base := f.commit("feat: config", map[string]string{"settings.txt": "a\n"})
	f.live(base)
	if _, err := f.svc.Cut(ctx, CutRequest{App: "hello"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Finish(ctx, "hello", "1", FinishOptions{}); err != nil {
		t.Fatal(err)
	}
	// A patch release changes settings.txt on the production line...
	f.git(f.work, "fetch", "-q", "origin")
	f.git(f.work, "checkout", "-q", "-b", "hotfix", "origin/stages/prod")
	f.commit("fix: hotfix setting", map[string]string{"settings.txt": "hotfix\n"})
	if _, err := f.svc.Cut(ctx, CutRequest{App: "hello", Patch: true, From: "hotfix"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Finish(ctx, "hello", "1.1", FinishOptions{}); err != nil {
		t.Fatal(err)
	}
	// ...while main changes it differently: the next full release conflicts.
	f.git(f.work, "checkout", "-q", "main")
	head := f.commit("feat: new setting", map[string]string{"settings.txt": "main\n", "other.txt": "fine"})
	f.live(head)
	rc2, err := f.svc.Cut(ctx, CutRequest{App: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	before := f.originRefs()
	res, err := f.svc.Check(ctx, "hello", "2")
	if err != nil {
		t.Fatal(err)
	}
	if res.Clean || len(res.Conflicts) != 1 || res.Conflicts[0] != "settings.txt" {
		t.Fatalf("check = %+v", res)
	}
	_, err = f.svc.Finish(ctx, "hello", "2", FinishOptions{})
	if !errors.Is(err, core.ErrConflict) || !errors.Is(err, ErrConflicts) || !errors.Is(err, ErrLacksProduction) || !strings.Contains(err.Error(), "settings.txt") || !strings.Contains(err.Error(), "hotfix setting") {
		t.Fatalf("finish with a conflict: %v", err)
	}
	if after := f.originRefs(); after != before {
		t.Errorf("a refused finish changed the origin:\n%s\n---\n%s", before, after)
	}
	// The documented true-up takes the release wholesale.
	done, err := f.svc.Finish(ctx, "hello", "2", FinishOptions{TrueUp: true})
	if err != nil {
		t.Fatal(err)
	}
	prod := f.originRef("refs/heads/stages/prod")
	if prod != head || prod != done.Merge || f.originRef("refs/tags/rc-2") != head || f.git(f.origin, "show", prod+":settings.txt") != "main" {
		t.Errorf("true-up: production at %s has settings.txt %q", prod, f.git(f.origin, "show", prod+":settings.txt"))
	}
	// The true-up says what it dropped, in the notes and the tag.
	for _, notes := range []string{done.Notes, f.git(f.origin, "tag", "-l", "--format=%(contents)", "rc-2")} {
		if !strings.Contains(notes, "## Dropped from stages/prod") || !strings.Contains(notes, "hotfix setting") || !strings.Contains(notes, "--true-up") {
			t.Errorf("true-up notes do not list the dropped hotfix:\n%s", notes)
		}
	}
	if rc2.Head != head {
		t.Error("rc2 head")
	}
}

func TestFinish_TagsTheBuiltCommitAndIsSafeToRerun(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.commit("feat: first", nil)
	head := f.commit("fix: second", nil)
	f.live(head)
	rc, err := f.svc.Cut(ctx, CutRequest{App: "hello", Version: "2.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	// A production line that already exists, behind the candidate.
	f.git(f.work, "push", "-q", "origin", head+"~1:refs/heads/stages/prod")

	// Half-finished: refs written in the mirror, never pushed (a crash).
	w, err := f.svc.open(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.finish(ctx, w, rc, FinishOptions{}, false); err != nil {
		t.Fatal(err)
	}
	if f.originRef("refs/tags/v2.0.0") != "" {
		t.Fatal("nothing should be pushed yet")
	}
	for range 2 { // the rerun completes it; a second rerun changes nothing
		got, err := f.svc.Finish(ctx, "hello", "1", FinishOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// Production runs, and the tag names, the commit that was built.
		prod, tag := f.originRef("refs/heads/stages/prod"), f.originRef("refs/tags/v2.0.0")
		if prod != head || tag != head || got.Merge != head || got.State != core.CandidateFinished || got.Tag != "v2.0.0" {
			t.Fatalf("prod %s tag %s merge %s state %s, want all at %s", prod, tag, got.Merge, got.State, head)
		}
		if typ := f.git(f.origin, "cat-file", "-t", "v2.0.0"); typ != "tag" {
			t.Errorf("tag is %s, want an annotated tag", typ)
		}
		if msg := f.git(f.origin, "tag", "-l", "--format=%(contents)", "v2.0.0"); !strings.Contains(msg, "# RC 1 (2.0.0)") {
			t.Errorf("tag message = %q, want the notes", msg)
		}
	}
	// Nothing left to release.
	if _, err := f.svc.Cut(ctx, CutRequest{App: "hello"}); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("cut of what production has: %v", err)
	}
}

func TestInjectionRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.live(f.commit("feat: x", nil))
	for _, from := range []string{"--upload-pack=touch /tmp/pwned", "$(touch pwned)", "main\nHEAD", "`id`", "a;b", "-q"} {
		_, err := f.svc.Cut(ctx, CutRequest{App: "hello", Patch: true, From: from})
		if !errors.Is(err, core.ErrInvalid) {
			t.Errorf("--from %q: %v", from, err)
		}
	}
	for _, v := range []string{"1.0.0;rm -rf /", "$(id)", "--version", "1.0.0\n2.0.0", "v1"} {
		if _, err := f.svc.Cut(ctx, CutRequest{App: "hello", Version: v}); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("version %q: %v", v, err)
		}
	}
	for _, id := range []string{"1;2", "--x", "1\n2", "$(id)"} {
		if _, err := f.svc.Get(ctx, "hello", id); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("rc %q: %v", id, err)
		}
	}
	if _, err := f.svc.Cut(ctx, CutRequest{App: "../x"}); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("app ../x: %v", err)
	}
	if _, err := os.Stat(filepath.Join(f.work, "pwned")); err == nil {
		t.Error("an injected command ran")
	}
}

// lockProbe reports, each time the service syncs an app's mirror (open
// reads the app first), whether the app's lock was held.
type lockProbe struct {
	Store
	svc    *Service
	unheld []string
}

func (p *lockProbe) GetApp(ctx context.Context, name string) (core.App, error) {
	p.svc.mu.Lock()
	l := p.svc.locks[name]
	p.svc.mu.Unlock()
	if l == nil || l.TryLock() {
		if l != nil {
			l.Unlock()
		}
		p.unheld = append(p.unheld, name)
	}
	return p.Store.GetApp(ctx, name)
}

func TestDiff_TakesAppLockBeforeSyncingMirror(t *testing.T) {
	f := newFixture(t)
	a := f.commit("feat: one", map[string]string{"a.txt": "a"})
	f.live(a)
	b := f.commit("feat: two", map[string]string{"b.txt": "b"})
	f.live(b)
	probe := &lockProbe{Store: f.st}
	f.svc.cfg.Store = probe
	probe.svc = f.svc
	ch, err := f.svc.Diff(ctx, "hello", 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(ch.Commits), 1; got != want {
		t.Errorf("commits = %d, want %d", got, want)
	}
	if len(probe.unheld) != 0 {
		t.Errorf("mirror of %v synced without the app lock", probe.unheld)
	}
}

func TestRunCompat_EnvironmentAndFailure(t *testing.T) {
	t.Setenv("CUTOVER_TEST_SECRET", "s3cret")
	f := newFixture(t)
	sha := f.commit("test: compat", map[string]string{"compat.sh": "echo url=$COMPAT_TARGET_URL version=$COMPAT_VERSION secret=$CUTOVER_TEST_SECRET\nexit 3\n"})
	w, err := f.svc.open(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	passed, detail := f.svc.runCompat(ctx, w.mirror, sha, "v1.0.0", &manifest.Compat{Test: []string{"sh", "compat.sh"}, Timeout: time.Minute},
		manifest.Environment{Name: "staging", Listen: "127.0.0.1:1"})
	if passed {
		t.Error("a failing compatibility test passed")
	}
	for _, want := range []string{"url=http://127.0.0.1:1 version=v1.0.0 secret=\n", "exit status 3"} {
		if !strings.Contains(detail, want) {
			t.Errorf("detail %q does not contain %q", detail, want)
		}
	}
}
