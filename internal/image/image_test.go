package image

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/testutil"
)

func TestNew_Unreachable(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "nobody.sock")
	_, err := New(context.Background(), Config{Host: "unix://" + sock})
	if err == nil {
		t.Fatal("New answered for an engine that is not there")
	}
	if !strings.Contains(err.Error(), sock) {
		t.Errorf("error does not name the address %s: %v", sock, err)
	}
}

func TestRegistry_StringHidesPassword(t *testing.T) {
	t.Parallel()
	r := Registry{Repo: "127.0.0.1:5000/cutover", Username: "ci", Password: "s3cret-pw"}
	if s := r.String(); strings.Contains(s, "s3cret-pw") || !strings.Contains(s, "ci") {
		t.Errorf("Registry.String() = %q", s)
	}
}

func TestBuild_LocalLabelsAndOutput(t *testing.T) {
	t.Parallel()
	im := newImages(t, Registry{})
	app, sha := uniqueName("local"), fakeSHA()
	cleanupRepo(t, im, app)
	var out testutil.Buffer
	b, err := im.Build(context.Background(), BuildRequest{App: app, SHA: sha, ContextDir: appContext(t, "one", ""),
		Labels: map[string]string{"team": "payments", LabelCommit: "spoofed"}}, &out)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out.String())
	}
	if b.Ref != b.ImageID || b.Digest != b.ImageID || !strings.HasPrefix(b.ImageID, "sha256:") || b.Pushed {
		t.Errorf("without a registry, want Ref = Digest = image ID and not pushed: %+v", b)
	}
	if b.Size <= 0 {
		t.Errorf("size %d", b.Size)
	}
	for _, want := range []string{"Step 1/", "COPY hello /hello", "Successfully built"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("build output lacks %q:\n%s", want, out.String())
		}
	}
	ins, err := im.cli.ImageInspect(context.Background(), LocalRepo+"/"+app+":"+sha)
	if err != nil {
		t.Fatalf("the SHA tag: %v", err)
	}
	if ins.ID != b.ImageID {
		t.Errorf("tag names %s, built %s", ins.ID, b.ImageID)
	}
	labels := ins.Config.Labels
	if labels[LabelApp] != app || labels[LabelCommit] != sha || labels["team"] != "payments" {
		t.Errorf("labels %v", labels)
	}
	if _, err := time.Parse(time.RFC3339, labels[LabelBuilt]); err != nil {
		t.Errorf("%s: %v", LabelBuilt, err)
	}
	for _, tag := range ins.RepoTags {
		if strings.Contains(tag, ":build-") {
			t.Errorf("the build's own tag %s was left behind", tag)
		}
	}
	if where, err := im.Exists(context.Background(), b.Ref); err != nil || where != "local" {
		t.Errorf("Exists = %q, %v; want local", where, err)
	}

	// Without a registry the engine's tag is the record: another image
	// under the same SHA is refused and the tag stays.
	_, err = im.Build(context.Background(), BuildRequest{App: app, SHA: sha, ContextDir: appContext(t, "two", "")}, io.Discard)
	if !errors.Is(err, ErrTagExists) {
		t.Fatalf("second image under one SHA: %v, want ErrTagExists", err)
	}
	if ins, err := im.cli.ImageInspect(context.Background(), LocalRepo+"/"+app+":"+sha); err != nil || ins.ID != b.ImageID {
		t.Errorf("the SHA tag moved: %v %v", ins.ID, err)
	}

	if err := im.Tag(context.Background(), b.Ref, "v1.0.0"); err != nil {
		t.Fatalf("local release tag: %v", err)
	}
	if ins, err := im.cli.ImageInspect(context.Background(), LocalRepo+"/"+app+":v1.0.0"); err != nil || ins.ID != b.ImageID {
		t.Errorf("release tag: %v %v", ins.ID, err)
	}
	if err := im.Remove(context.Background(), b.Ref); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if _, err := im.Exists(context.Background(), b.Ref); !errors.Is(err, ErrImageGone) {
		t.Errorf("after Remove, Exists: %v, want ErrImageGone", err)
	}
	if err := im.Remove(context.Background(), b.Ref); err != nil {
		t.Errorf("removing a gone image: %v", err)
	}
}

func TestBuild_EngineErrors(t *testing.T) {
	t.Parallel()
	im := newImages(t, Registry{})
	cases := []struct {
		name, dockerfile, want string
	}{
		{"missing COPY source", "FROM scratch\nCOPY nope.txt /nope.txt\n", "nope.txt"},
		{"unknown instruction", "FROM scratch\nFROBNICATE now\n", "FROBNICATE"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			app := uniqueName("err")
			cleanupRepo(t, im, app)
			var out testutil.Buffer
			_, err := im.Build(context.Background(), BuildRequest{App: app, SHA: fakeSHA(), ContextDir: appContext(t, "x", tc.dockerfile)}, &out)
			if !errors.Is(err, core.ErrBuildFailed) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrBuildFailed naming %q", err, tc.want)
			}
			if !strings.Contains(out.String(), "ERROR:") {
				t.Errorf("output lacks the error:\n%s", out.String())
			}
		})
	}
}

func TestBuild_RefusedBeforeTheEngine(t *testing.T) {
	t.Parallel()
	im := newImages(t, Registry{})
	dir := appContext(t, "x", "")
	outside := t.TempDir()
	cases := []struct {
		name string
		req  BuildRequest
		want string
	}{
		{"bad app", BuildRequest{App: "Bad/App", SHA: fakeSHA(), ContextDir: dir}, "app"},
		{"short sha", BuildRequest{App: "app", SHA: "abc", ContextDir: dir}, "sha"},
		{"no dockerfile", BuildRequest{App: "app", SHA: fakeSHA(), ContextDir: dir, Dockerfile: "deploy/Dockerfile"}, "deploy/Dockerfile"},
		{"dockerfile outside", BuildRequest{App: "app", SHA: fakeSHA(), ContextDir: dir, Dockerfile: "../" + filepath.Base(outside) + "/Dockerfile"}, "inside the build context"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := im.Build(context.Background(), tc.req, io.Discard)
			if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrInvalid naming %q", err, tc.want)
			}
		})
	}
}

// TestRegistry_ImmutableTags walks one app through the registry: push,
// a refused second image under the same SHA, a no-op re-push, release
// tags, then Exists through Remove and Delete.
func TestRegistry_ImmutableTags(t *testing.T) {
	t.Parallel()
	host := serveRegistry(t)
	reg := Registry{Repo: host + "/" + uniqueName("team")}
	im := newImages(t, reg)
	ctx := context.Background()
	app, sha := "hello", fakeSHA()
	cleanupRepo(t, im, app)
	repo := reg.Repo + "/" + app
	opts := reg.remoteOpts(ctx)

	var out testutil.Buffer
	b, err := im.Build(ctx, BuildRequest{App: app, SHA: sha, ContextDir: appContext(t, "one", "")}, &out)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out.String())
	}
	if !b.Pushed || b.Ref != repo+"@"+b.Digest || !strings.HasPrefix(b.Digest, "sha256:") || b.Digest == b.ImageID {
		t.Fatalf("built %+v", b)
	}
	if !strings.Contains(out.String(), "pushed "+repo+":"+sha) {
		t.Errorf("output does not tell of the push:\n%s", out.String())
	}
	shaTag := mustRef(t, repo+":"+sha)
	if d := head(t, shaTag); d != b.Digest {
		t.Fatalf("registry %s = %s, want %s", shaTag, d, b.Digest)
	}
	if d := head(t, mustRef(t, repo+":"+CacheTag)); d != b.Digest {
		t.Errorf("cache tag = %s, want %s", d, b.Digest)
	}
	if cfg, err := configOf(mustRef(t, b.Ref), opts); err != nil || cfg != b.ImageID {
		t.Errorf("registry config %s (%v), want the image ID %s", cfg, err, b.ImageID)
	}

	// Another image under the same SHA: refused, nothing changes.
	_, err = im.Build(ctx, BuildRequest{App: app, SHA: sha, ContextDir: appContext(t, "two", "")}, io.Discard)
	var te *TagExistsError
	if !errors.Is(err, ErrTagExists) || !errors.As(err, &te) {
		t.Fatalf("second image under %s: %v, want ErrTagExists", core.ShortSHA(sha), err)
	}
	if te.Tag != repo+":"+sha || te.Existing != b.Digest || !strings.Contains(err.Error(), te.New) || strings.HasPrefix(te.New, b.Digest) {
		t.Errorf("TagExistsError %+v", te)
	}
	if d := head(t, shaTag); d != b.Digest {
		t.Errorf("refused push moved %s to %s", shaTag, d)
	}
	if ins, err := im.cli.ImageInspect(ctx, repo+":"+sha); err != nil || ins.ID != b.ImageID {
		t.Errorf("refused build moved the local tag: %s %v", ins.ID, err)
	}

	// The same image again: a no-op.
	digest, pushed, err := im.push(ctx, repo+":"+sha, b.ImageID, io.Discard)
	if err != nil || pushed || digest != b.Digest {
		t.Errorf("re-push = %s, %v, %v; want %s, not pushed", digest, pushed, err, b.Digest)
	}

	// Release tags go on the digest and never move.
	if err := im.Tag(ctx, b.Ref, "v1.2.3"); err != nil {
		t.Fatalf("tag v1.2.3: %v", err)
	}
	if d := head(t, mustRef(t, repo+":v1.2.3")); d != b.Digest {
		t.Errorf("v1.2.3 = %s, want %s", d, b.Digest)
	}
	if err := im.Tag(ctx, b.Ref, "v1.2.3"); err != nil {
		t.Errorf("tagging again: %v", err)
	}
	b2, err := im.Build(ctx, BuildRequest{App: app, SHA: fakeSHA(), ContextDir: appContext(t, "three", "")}, io.Discard)
	if err != nil {
		t.Fatalf("second commit: %v", err)
	}
	if err := im.Tag(ctx, b2.Ref, "v1.2.3"); !errors.Is(err, ErrTagExists) || !strings.Contains(err.Error(), b.Digest) {
		t.Errorf("moving v1.2.3: %v, want ErrTagExists naming %s", err, b.Digest)
	}
	if d := head(t, mustRef(t, repo+":v1.2.3")); d != b.Digest {
		t.Errorf("refused tag moved v1.2.3 to %s", d)
	}

	// Exists: local, then (without the local copy) the registry, then gone.
	for _, step := range []struct {
		do   func() error
		want string
	}{
		{nil, "local"},
		{func() error { return im.Remove(ctx, b.Ref) }, "registry"},
		{func() error { return im.Delete(ctx, b.Ref) }, ""},
	} {
		if step.do != nil {
			if err := step.do(); err != nil {
				t.Fatal(err)
			}
		}
		where, err := im.Exists(ctx, b.Ref)
		if step.want == "" {
			if !errors.Is(err, ErrImageGone) {
				t.Errorf("Exists after Delete = %q, %v; want ErrImageGone", where, err)
			}
			continue
		}
		if err != nil || where != step.want {
			t.Errorf("Exists = %q, %v; want %q", where, err, step.want)
		}
	}
	if err := im.Delete(ctx, b.Ref); err != nil {
		t.Errorf("deleting a deleted image: %v", err)
	}
}

// TestRegistry_PullAndRunByDigest checks that what deploys get, the
// reference by digest, is something the engine pulls and runs.
func TestRegistry_PullAndRunByDigest(t *testing.T) {
	t.Parallel()
	host := serveRegistry(t)
	reg := Registry{Repo: host + "/" + uniqueName("run"), Username: "ci", Password: "not-checked"}
	im := newImages(t, reg)
	ctx := context.Background()
	cleanupRepo(t, im, "hello")
	b, err := im.Build(ctx, BuildRequest{App: "hello", SHA: fakeSHA(), ContextDir: appContext(t, "run", "")}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := im.Remove(ctx, b.Ref); err != nil {
		t.Fatal(err)
	}
	pull, err := im.cli.ImagePull(ctx, b.Ref, client.ImagePullOptions{})
	if err != nil {
		t.Fatalf("pull %s: %v", b.Ref, err)
	}
	if err := pull.Wait(ctx); err != nil {
		t.Fatalf("pull %s: %v", b.Ref, err)
	}
	if where, err := im.Exists(ctx, b.Ref); err != nil || where != "local" {
		t.Errorf("after the pull Exists = %q, %v", where, err)
	}
	c, err := im.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: &container.Config{Image: b.Ref, Cmd: []string{"by", "digest"}},
		Name:   uniqueName("cutover-image-test"),
	})
	if err != nil {
		t.Fatalf("create a container of %s: %v", b.Ref, err)
	}
	t.Cleanup(func() {
		_, _ = im.cli.ContainerRemove(context.Background(), c.ID, client.ContainerRemoveOptions{Force: true})
	})
	wait := im.cli.ContainerWait(ctx, c.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	if _, err := im.cli.ContainerStart(ctx, c.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-wait.Result:
		if r.StatusCode != 0 {
			t.Errorf("exit status %d", r.StatusCode)
		}
	case err := <-wait.Error:
		t.Fatal(err)
	case <-time.After(time.Minute):
		t.Fatal("the container did not exit within a minute")
	}
	logs, err := im.cli.ContainerLogs(ctx, c.ID, client.ContainerLogsOptions{ShowStdout: true})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(logs)
	logs.Close()
	if !strings.Contains(string(raw), "hello from cutover by digest") {
		t.Errorf("container said %q", raw)
	}
}

func head(t *testing.T, ref name.Reference) string {
	t.Helper()
	desc, err := remote.Head(ref)
	if err != nil {
		t.Fatalf("HEAD %s: %v", ref, err)
	}
	return desc.Digest.String()
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
