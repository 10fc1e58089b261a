package gitx

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestIsRemote(t *testing.T) {
	t.Parallel()
	for repo, want := range map[string]bool{
		"https://github.com/a/b.git": true, "file:///srv/git/api.git": true, "ssh://git@host/x": true,
		"git@github.com:a/b.git": true, "/srv/git/api": false, "./hello": false, "hello": false, "dir/with:colon": false,
	} {
		if got := IsRemote(repo); got != want {
			t.Errorf("IsRemote(%q) = %v, want %v", repo, got, want)
		}
	}
}

// A file:// repository is read through a mirror that follows new commits.
func TestMirrorsFollowARemote(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	origin := filepath.Join(t.TempDir(), "origin")
	if err := Init(ctx, origin); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(origin, "a"), []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	first, err := CommitAll(ctx, origin, "one")
	if err != nil {
		t.Fatal(err)
	}
	m := &Mirrors{Dir: t.TempDir()}
	url := "file://" + origin
	path, err := m.Path(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ResolveCommit(ctx, path, "HEAD"); err != nil || got != first {
		t.Fatalf("HEAD through the mirror = %s, %v; want %s", got, err, first)
	}
	second, err := CommitAll(ctx, origin, "two")
	if err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	m.synced = nil // stale
	m.mu.Unlock()
	if path, err = m.Path(ctx, url); err != nil {
		t.Fatal(err)
	}
	if got, _ := ResolveCommit(ctx, path, "main"); got != second {
		t.Errorf("main through the mirror = %s, want the new commit %s", got, second)
	}
	if local, _ := m.Path(ctx, origin); local != origin {
		t.Errorf("a local path is read in place, got %s", local)
	}
}
