package build

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/gitx"
)

const manifestTmpl = `build:
  command: %s
  timeout: %s
run:
  command: bin/app
environments:
  staging: {listen: 127.0.0.1:18081}
`

func repoWith(t *testing.T, buildCmd, timeout string) (core.App, string) {
	t.Helper()
	dir := t.TempDir()
	if err := gitx.Init(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	m := strings.Replace(strings.Replace(manifestTmpl, "%s", buildCmd, 1), "%s", timeout, 1)
	os.WriteFile(filepath.Join(dir, "cutover.yml"), []byte(m), 0o644)
	os.WriteFile(filepath.Join(dir, "data.txt"), []byte("committed"), 0o644)
	sha, err := gitx.CommitAll(context.Background(), dir, "init")
	if err != nil {
		t.Fatal(err)
	}
	// A dirty working tree must not leak into the build.
	os.WriteFile(filepath.Join(dir, "data.txt"), []byte("dirty"), 0o644)
	return core.App{Name: "app", Repo: dir}, sha
}

func TestBuildOnceImmutable(t *testing.T) {
	app, sha := repoWith(t, "cp data.txt built.txt", "30s")
	b := &Builder{Root: t.TempDir()}
	ctx := context.Background()
	var log strings.Builder
	a, m, err := b.Build(ctx, app, sha, &log)
	if err != nil {
		t.Fatal(err)
	}
	if m.Run.Command[0] != "bin/app" || !strings.HasPrefix(a.Digest, "sha256:") || a.SHA != sha {
		t.Fatalf("artifact %+v manifest %+v", a, m)
	}
	if got, _ := os.ReadFile(filepath.Join(Dir(b.Root, a.Ref), "built.txt")); string(got) != "committed" {
		t.Errorf("built from the working tree, not the commit: %q", got)
	}
	if fi, _ := os.Stat(filepath.Join(Dir(b.Root, a.Ref), "built.txt")); fi.Mode().Perm()&0o222 != 0 {
		t.Errorf("artifact file is writable: %v", fi.Mode())
	}
	// Second build, also concurrent: no-op with the same digest.
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a2, _, err := b.Build(ctx, app, sha, nil)
			if err != nil || a2.Digest != a.Digest || a2.Ref != a.Ref {
				t.Errorf("rebuild = %+v, %v", a2, err)
			}
		}()
	}
	wg.Wait()
}

func TestBuildFailures(t *testing.T) {
	for _, tc := range []struct{ name, cmd, timeout, want string }{
		{"command fails", "false", "30s", "build command \"false\""},
		{"timeout", "sleep 30", "200ms", "timed out after 200ms"},
		{"missing binary", "no-such-binary-xyz", "30s", "no-such-binary-xyz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app, sha := repoWith(t, tc.cmd, tc.timeout)
			root := t.TempDir()
			b := &Builder{Root: root}
			_, _, err := b.Build(context.Background(), app, sha, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(root, "app", sha)); !os.IsNotExist(err) {
				t.Errorf("a failed build left an artifact directory: %v", err)
			}
			ents, _ := os.ReadDir(filepath.Join(root, "app"))
			for _, e := range ents {
				if e.IsDir() {
					t.Errorf("leftover work dir %s", e.Name())
				}
			}
		})
	}
}

func TestBuildBadInput(t *testing.T) {
	b := &Builder{Root: t.TempDir()}
	if _, _, err := b.Build(context.Background(), core.App{Name: "../x", Repo: "."}, strings.Repeat("a", 40), nil); err == nil {
		t.Error("bad app name accepted")
	}
	if _, _, err := b.Build(context.Background(), core.App{Name: "x", Repo: "."}, "HEAD", nil); err == nil {
		t.Error("non-SHA accepted")
	}
}
