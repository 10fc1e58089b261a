package image

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// The static binaries the test images carry, built once in TestMain.
var (
	helloBin  string // prints "hello from cutover" and its arguments
	engineErr error  // why the engine is unusable ("" when it is)
)

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "cutover-image-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		helloBin, err = buildStatic(dir, "hello", `package main

import (
	"fmt"
	"os"
	"strings"
)

func main() { fmt.Println("hello from cutover", strings.Join(os.Args[1:], " ")) }
`)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		im, err := New(context.Background(), Config{})
		if err != nil {
			engineErr = err
		} else {
			im.Close()
		}
		return m.Run()
	}()
	os.Exit(code)
}

// buildStatic compiles src into a static binary (CGO_ENABLED=0), so a
// FROM scratch image can run it.
func buildStatic(dir, name, src string) (string, error) {
	srcDir := filepath.Join(dir, name+"-src")
	if err := os.MkdirAll(srcDir, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(srcDir, "main.go"), []byte(src), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(srcDir, "go.mod"), []byte("module "+name+"\n\ngo 1.22\n"), 0o644); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	cmd.Dir = srcDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %v\n%s", name, err, out)
	}
	return bin, nil
}

// newImages connects to the engine or skips the test.
func newImages(t testing.TB, reg Registry) *Images {
	t.Helper()
	if engineErr != nil {
		t.Skipf("docker: no engine reachable at %s: %v", engineHost(), engineErr)
	}
	im, err := New(context.Background(), Config{Registry: reg})
	if err != nil {
		t.Skipf("docker: no engine reachable at %s: %v", engineHost(), err)
	}
	t.Cleanup(func() { im.Close() })
	return im
}

func engineHost() string {
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		return h
	}
	return "unix:///var/run/docker.sock"
}

// serveRegistry starts an in-process registry for one test.
func serveRegistry(t testing.TB) string {
	t.Helper()
	host, stop, err := Serve(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return host
}

// appContext writes a build context: the hello binary, a file whose
// content tells images apart, and a Dockerfile.
func appContext(t testing.TB, variant, dockerfile string) string {
	t.Helper()
	dir := t.TempDir()
	bin, err := os.ReadFile(helloBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hello"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	variant += " " + dir // unique per test
	if err := os.WriteFile(filepath.Join(dir, "variant.txt"), []byte(variant+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if dockerfile == "" {
		// variant.txt first: tests running at once share no cached
		// layer, so one's cleanup never prunes another's build parent.
		dockerfile = "FROM scratch\nCOPY variant.txt /variant.txt\nCOPY hello /hello\nENTRYPOINT [\"/hello\"]\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// uniqueName returns a fresh app name, so parallel tests and leftovers of
// earlier runs never share a repository.
func uniqueName(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// fakeSHA returns a random full commit SHA.
func fakeSHA() string {
	var b [20]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// cleanupRepo removes every local image of app's repository, and every
// container made from one, when the test ends.
func cleanupRepo(t testing.TB, im *Images, app string) {
	t.Helper()
	repo := im.Repository(app)
	t.Cleanup(func() {
		ctx := context.Background()
		res, err := im.cli.ImageList(ctx, client.ImageListOptions{All: true})
		if err != nil {
			t.Logf("cleanup %s: %v", repo, err)
			return
		}
		for _, img := range res.Items {
			mine := false
			for _, r := range append(append([]string{}, img.RepoTags...), img.RepoDigests...) {
				if repoOf(r) == repo {
					mine = true
				}
			}
			if !mine {
				continue
			}
			if _, err := im.cli.ImageRemove(ctx, img.ID, client.ImageRemoveOptions{Force: true, PruneChildren: true}); err != nil && !cerrdefs.IsNotFound(err) {
				t.Logf("cleanup %s: %v", img.ID, err)
			}
		}
	})
}
