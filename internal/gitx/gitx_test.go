package gitx

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutover/cutover/internal/core"
)

// newRepo makes a repository with two commits and returns it and the SHAs.
func newRepo(t *testing.T) (string, []string) {
	t.Helper()
	dir := t.TempDir()
	git := func(args ...string) string {
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@x.invalid", "-c", "commit.gpgsign=false"}, args...)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q")
	var shas []string
	for i, content := range []string{"one", "two"} {
		os.WriteFile(filepath.Join(dir, "f.txt"), []byte(content), 0o644)
		os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
		os.WriteFile(filepath.Join(dir, "sub", "run.sh"), []byte("#!/bin/sh\n"), 0o755)
		git("add", "-A")
		git("commit", "-q", "-m", []string{"feat: first", "fix: second\n\nbody text"}[i])
		shas = append(shas, git("rev-parse", "HEAD"))
	}
	return dir, shas
}

func TestResolveLogExport(t *testing.T) {
	repo, shas := newRepo(t)
	ctx := context.Background()
	got, err := ResolveCommit(ctx, repo, "HEAD")
	if err != nil || got != shas[1] {
		t.Fatalf("HEAD = %q, %v", got, err)
	}
	if got, _ := ResolveCommit(ctx, repo, "HEAD~1"); got != shas[0] {
		t.Errorf("HEAD~1 = %q", got)
	}
	if _, err := ResolveCommit(ctx, repo, "deadbeef"); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("unknown commit: err = %v, want ErrNotFound", err)
	}
	log, err := Log(ctx, repo, shas[0], shas[1])
	if err != nil || len(log) != 1 || log[0].Subject != "fix: second" || log[0].Body != "body text" || log[0].Parents[0] != shas[0] {
		t.Fatalf("log = %+v, %v", log, err)
	}
	// The export is the commit, not the working tree.
	os.WriteFile(filepath.Join(repo, "f.txt"), []byte("dirty"), 0o644)
	dst := filepath.Join(t.TempDir(), "out")
	if err := Export(ctx, repo, shas[0], dst); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "f.txt")); string(b) != "one" {
		t.Errorf("exported f.txt = %q, want one", b)
	}
	if fi, err := os.Stat(filepath.Join(dst, "sub", "run.sh")); err != nil || fi.Mode()&0o100 == 0 {
		t.Errorf("executable bit lost: %v %v", fi, err)
	}
}

func TestInjectionRefused(t *testing.T) {
	repo, _ := newRepo(t)
	for _, ref := range []string{"--upload-pack=evil", "-n", "$(touch x)", "a\nb", "`id`", "a;b", "main..evil", "x y", ""} {
		_, err := ResolveCommit(context.Background(), repo, ref)
		if !errors.Is(err, core.ErrInvalid) {
			t.Errorf("ref %q: err = %v, want ErrInvalid", ref, err)
		}
	}
	for _, r := range []string{"--upload-pack=touch /tmp/x", "ext::sh -c touch% /tmp/pwned", "a\nb"} {
		if _, err := ResolveCommit(context.Background(), r, "HEAD"); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("repo %q: err = %v, want ErrInvalid", r, err)
		}
	}
	if _, err := os.Stat(filepath.Join(repo, "x")); err == nil {
		t.Error("an injected command ran")
	}
}

func TestNotExist(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		code   int
		stderr string
		want   bool
	}{
		{"rev-parse --quiet, no such ref", 1, "", true},
		{"unknown revision", 128, "fatal: ambiguous argument 'nope': unknown revision or path not in the working tree.", true},
		{"bad revision", 128, "fatal: bad revision 'nope'", true},
		{"not a valid object name", 128, "fatal: Not a valid object name nope", true},
		{"invalid object name", 128, "fatal: invalid object name 'deadbeef'.", true},
		{"path not at commit", 128, "fatal: path 'cutover.yml' does not exist in 'HEAD'", true},
		{"no repository", 128, "fatal: not a git repository (or any of the parent directories): .git", false},
		{"permission", 128, "fatal: cannot change to '/srv/repo': Permission denied", false},
		{"corrupt", 128, "error: object file .git/objects/ce/38 is empty\nfatal: loose object ce38 (stored in .git/objects/ce/38) is corrupt", false},
		{"failure with a message", 1, "error: something else", false},
		{"killed", -1, "", false},
		{"other status", 129, "usage: git rev-parse", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := &Error{Op: "rev-parse", Code: tc.code, Stderr: tc.stderr, Err: errors.New("exit")}
			if got := notExist(err); got != tc.want {
				t.Errorf("notExist(%d, %q) = %v, want %v", tc.code, tc.stderr, got, tc.want)
			}
		})
	}
	if notExist(errors.New("git rev-parse: unknown revision")) {
		t.Error("an error that is not a git run counted as not found")
	}
}

func TestResolve_NotFoundVersusFailure(t *testing.T) {
	t.Parallel()
	repo, _ := newRepo(t)
	notRepo := t.TempDir()
	corrupt, _ := newRepo(t)
	objects := filepath.Join(corrupt, ".git", "objects")
	filepath.WalkDir(objects, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && len(filepath.Base(filepath.Dir(p))) == 2 {
			os.Chmod(p, 0o644)
			os.WriteFile(p, nil, 0o644)
		}
		return nil
	})
	expired, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name     string
		ctx      context.Context
		repo     string
		ref      string
		notFound bool
		msg      string // in the error when it is not "not found"
	}{
		{"unknown ref", context.Background(), repo, "refs/heads/nope", true, ""},
		{"unknown sha", context.Background(), repo, strings.Repeat("1", 40), true, ""},
		{"missing repository", context.Background(), filepath.Join(notRepo, "missing"), "HEAD", false, "no such file or directory"},
		{"not a repository", context.Background(), notRepo, "HEAD", false, "not a git repository"},
		{"corrupt repository", context.Background(), corrupt, "HEAD", false, "corrupt"},
		{"cancelled", expired, repo, "HEAD", false, "context canceled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ResolveCommit(tc.ctx, tc.repo, tc.ref)
			if got := errors.Is(err, core.ErrNotFound); got != tc.notFound {
				t.Fatalf("ResolveCommit: err = %v, not found = %v, want %v", err, got, tc.notFound)
			}
			if !tc.notFound && !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("ResolveCommit: err = %v, want git's message %q", err, tc.msg)
			}
			sha, err := RefSHA(tc.ctx, tc.repo, tc.ref)
			switch {
			case tc.notFound && (sha != "" || err != nil):
				t.Errorf("RefSHA = %q, %v, want \"\", nil", sha, err)
			case !tc.notFound && (err == nil || !strings.Contains(err.Error(), tc.msg)):
				t.Errorf("RefSHA = %q, %v, want an error with %q", sha, err, tc.msg)
			}
			_, err = ShowFile(tc.ctx, tc.repo, tc.ref, "f.txt")
			if got := errors.Is(err, core.ErrNotFound); got != tc.notFound {
				t.Errorf("ShowFile: err = %v, not found = %v, want %v", err, got, tc.notFound)
			}
		})
	}
}

func TestMessage_IsTrimmedAndBounded(t *testing.T) {
	t.Parallel()
	long := "\n  " + strings.Repeat("x", 5000) + "fatal: the end\n"
	got := message([]byte(long))
	if len(got) > maxMessage+3 || !strings.HasSuffix(got, "fatal: the end") || !strings.HasPrefix(got, "...") {
		t.Errorf("message = %d bytes ending %q", len(got), got[len(got)-20:])
	}
	if got, want := message([]byte("  fatal: short\n")), "fatal: short"; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
}

func TestExport_MissingCommit(t *testing.T) {
	t.Parallel()
	repo, _ := newRepo(t)
	err := Export(context.Background(), repo, strings.Repeat("1", 40), filepath.Join(t.TempDir(), "out"))
	if err == nil || !strings.Contains(err.Error(), "git archive") {
		t.Errorf("err = %v, want a git archive error", err)
	}
}

func TestMissing_ComparesByPatch(t *testing.T) {
	repo, shas := newRepo(t)
	ctx := context.Background()
	git := func(args ...string) string {
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@x.invalid", "-c", "commit.gpgsign=false"}, args...)...)
		cmd.Dir = repo
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	// prod gets two fixes; main cherry-picks one of them.
	git("checkout", "-q", "-b", "prod", shas[1])
	os.WriteFile(filepath.Join(repo, "a.txt"), []byte("a"), 0o644)
	git("add", "-A")
	git("commit", "-q", "-m", "fix: a")
	fixA := git("rev-parse", "HEAD")
	os.WriteFile(filepath.Join(repo, "b.txt"), []byte("b"), 0o644)
	git("add", "-A")
	git("commit", "-q", "-m", "fix: b")
	fixB := git("rev-parse", "HEAD")
	git("checkout", "-q", "-b", "main2", shas[1])
	git("cherry-pick", fixA)
	missing, err := Missing(ctx, repo, "main2", "prod")
	if err != nil || len(missing) != 1 || missing[0].SHA != fixB {
		t.Fatalf("missing = %+v, %v; want only %s", missing, err, fixB)
	}
	if got, _ := Missing(ctx, repo, "prod", "main2"); len(got) != 0 {
		t.Errorf("prod lacks %+v", got)
	}
	// Tags, and the nearest one.
	git("tag", "rc-1", shas[0])
	git("tag", "-a", "--cleanup=verbatim", "-m", "# RC 2 (1.0.0)\n\nnotes", "v1.0.0", shas[1])
	tags, err := Tags(ctx, repo)
	if err != nil || len(tags) != 2 || tags[0].Name != "rc-1" || tags[0].Commit != shas[0] || tags[1].Commit != shas[1] || tags[1].Subject != "# RC 2 (1.0.0)" {
		t.Fatalf("tags = %+v, %v", tags, err)
	}
	if got, err := NearestTag(ctx, repo, fixB, "rc-*", "v[0-9]*"); err != nil || got != "v1.0.0" {
		t.Errorf("nearest = %q, %v", got, err)
	}
	if got, err := NearestTag(ctx, repo, fixB, "nomatch-*"); err != nil || got != "" {
		t.Errorf("nearest without a match = %q, %v", got, err)
	}
}

func TestPushAtomic_AllOrNothing(t *testing.T) {
	repo, shas := newRepo(t)
	ctx := context.Background()
	origin := filepath.Join(t.TempDir(), "origin.git")
	if out, err := exec.Command("git", "clone", "-q", "--bare", repo, origin).CombinedOutput(); err != nil {
		t.Fatal(err, string(out))
	}
	mirror := filepath.Join(t.TempDir(), "m.git")
	if err := Mirror(ctx, origin, mirror); err != nil {
		t.Fatal(err)
	}
	branch := strings.TrimPrefix(strings.TrimSpace(string(must(exec.Command("git", "-C", origin, "symbolic-ref", "HEAD").Output()))), "refs/heads/")
	if err := ResetRef(ctx, mirror, "refs/heads/prod", shas[1]); err != nil {
		t.Fatal(err)
	}
	if err := ResetRef(ctx, mirror, "refs/heads/"+branch, shas[0]); err != nil {
		t.Fatal(err)
	}
	// The lease on the main branch is stale (origin has shas[1]): nothing is pushed.
	err := PushAtomic(ctx, mirror, origin, RefUpdate{Ref: "refs/heads/prod"}, RefUpdate{Ref: "refs/heads/" + branch, Old: shas[0]})
	if err == nil {
		t.Fatal("a stale lease was pushed")
	}
	if out, _ := exec.Command("git", "-C", origin, "rev-parse", "--verify", "--quiet", "refs/heads/prod").Output(); len(out) != 0 {
		t.Error("an atomic push that failed created a ref")
	}
	// With the right lease, a non-fast-forward move goes through.
	if err := PushAtomic(ctx, mirror, origin, RefUpdate{Ref: "refs/heads/prod"}, RefUpdate{Ref: "refs/heads/" + branch, Old: shas[1]}); err != nil {
		t.Fatal(err)
	}
	if got, _ := RefSHA(ctx, origin, "refs/heads/"+branch); got != shas[0] {
		t.Errorf("%s = %s, want %s", branch, got, shas[0])
	}
	if err := ResetRef(ctx, mirror, "refs/heads/prod", ""); err != nil {
		t.Fatal(err)
	}
	if got, _ := RefSHA(ctx, mirror, "refs/heads/prod"); got != "" {
		t.Error("ResetRef to nothing left the ref")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
