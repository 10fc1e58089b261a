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
