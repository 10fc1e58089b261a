package docker

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/moby/moby/api/pkg/authconfig"
	dockerregistry "github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"
)

// TestStart_PullsByDigest pushes the test image to a registry in this
// process (the engine treats 127.0.0.0/8 registries as insecure, so plain
// HTTP works), forgets it locally, and starts it by digest: the driver
// pulls it.
func TestStart_PullsByDigest(t *testing.T) {
	requireEngine(t)
	t.Parallel()
	ctx := context.Background()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	repo := strings.TrimPrefix(srv.URL, "http://") + "/cutover-test/hello-" + runID
	if _, err := api.ImageTag(ctx, client.ImageTagOptions{Source: helloID, Target: repo + ":v1"}); err != nil {
		t.Fatal(err)
	}
	auth, err := authconfig.Encode(dockerregistry.AuthConfig{})
	if err != nil {
		t.Fatal(err)
	}
	push, err := api.ImagePush(ctx, repo+":v1", client.ImagePushOptions{RegistryAuth: auth})
	if err != nil {
		t.Fatal(err)
	}
	err = push.Wait(ctx)
	push.Close()
	if err != nil {
		t.Fatalf("push %s: %v", repo, err)
	}
	img, err := api.ImageInspect(ctx, helloID)
	if err != nil {
		t.Fatal(err)
	}
	ref := ""
	for _, d := range img.RepoDigests {
		if strings.HasPrefix(d, repo+"@sha256:") {
			ref = d
		}
	}
	if ref == "" {
		t.Fatalf("no digest of %s among %q", repo, img.RepoDigests)
	}
	for _, r := range []string{repo + ":v1", ref} {
		// Untagging the repository's last tag drops its digest too.
		if _, err := api.ImageRemove(ctx, r, client.ImageRemoveOptions{}); err != nil && !errNotFound(err) {
			t.Fatalf("untag %s: %v", r, err)
		}
	}
	t.Cleanup(func() { _, _ = api.ImageRemove(context.Background(), ref, client.ImageRemoveOptions{}) })

	hosts := testHosts(t, "pull")
	d, err := New(ctx, Config{Hosts: hosts, Registry: Registry{Username: "ci", Password: "unused", ServerAddress: srv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	if has, err := d.HasImage(ctx, ref); err != nil || has {
		t.Fatalf("before the pull: has %s = %v, %v", ref, has, err)
	}
	spec := helloSpec("pull", 1)
	spec.Artifact = ref
	insts, err := d.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if res := waitAnswer(t, d, insts[0]); !strings.Contains(string(res.Body), greeting) {
		t.Errorf("GET / = %q", res.Body)
	}
	if has, err := d.HasImage(ctx, ref); err != nil || !has {
		t.Errorf("after the pull: has %s = %v, %v", ref, has, err)
	}
	missing := strings.TrimPrefix(srv.URL, "http://") + "/cutover-test/absent@sha256:" + strings.Repeat("2", 64)
	err = d.EnsureImage(ctx, "", missing)
	if err == nil || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), hosts[0].Name) {
		t.Errorf("pull of a missing image: err = %v, want one naming the host and the reference", err)
	}
}
