package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
)

// The engine and the test image, set up once for the package by TestMain.
var (
	engineErr error          // why there is no engine; tests skip with it
	api       *client.Client // the default engine, for the tests' own checks
	helloID   string         // sha256:... of the scratch image with examples/hello
	helloDir  string         // the build context holding the hello binary
	runID     = "t" + randomHex(3)
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx := context.Background()
	if engineErr = Available(ctx); engineErr != nil {
		return m.Run() // every engine test skips with the reason
	}
	var err error
	if api, err = client.New(client.FromEnv); err != nil {
		engineErr = err
		return m.Run()
	}
	defer api.Close()
	if helloDir, err = os.MkdirTemp("", "cutover-docker-test"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(helloDir)
	build := exec.Command("go", "build", "-o", filepath.Join(helloDir, "hello"), "github.com/cutover/cutover/examples/hello")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build examples/hello: %v\n%s", err, out)
		return 1
	}
	tag := "cutover-test/hello:" + runID
	if helloID, err = buildImage(ctx, tag, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	cleanupRun(ctx)
	return code
}

// requireEngine skips a test when no engine is reachable.
func requireEngine(t *testing.T) {
	t.Helper()
	if engineErr != nil {
		t.Skipf("docker: no engine reachable at %s: %v", LocalAddress(), engineErr)
	}
}

// buildImage builds the hello binary into a scratch image with the legacy
// builder (no BuildKit on the test machine) and returns its ID.
func buildImage(ctx context.Context, tag string, labels map[string]string) (string, error) {
	bin, err := os.ReadFile(filepath.Join(helloDir, "hello"))
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{
		{"Dockerfile", 0o644, []byte("FROM scratch\nCOPY hello /hello\nENTRYPOINT [\"/hello\"]\n")},
		{"hello", 0o755, bin},
	} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data))}); err != nil {
			return "", err
		}
		if _, err := tw.Write(f.data); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	labels = mergeLabels(map[string]string{"cutover.test": runID}, labels)
	res, err := api.ImageBuild(ctx, &buf, client.ImageBuildOptions{
		Tags: []string{tag}, Remove: true, ForceRemove: true, Labels: labels, Version: build.BuilderV1,
	})
	if err != nil {
		return "", fmt.Errorf("build %s: %w", tag, err)
	}
	defer res.Body.Close()
	if err := readStream(res.Body); err != nil {
		return "", fmt.Errorf("build %s: %w", tag, err)
	}
	img, err := api.ImageInspect(ctx, tag)
	if err != nil {
		return "", err
	}
	return img.ID, nil
}

// readStream drains a build or push progress stream, returning its error.
func readStream(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var m jsonstream.Message
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if m.Error != nil {
			return errors.New(m.Error.Message)
		}
	}
}

func mergeLabels(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// removeHostContainers removes every container a test's host name
// labelled, running or not.
func removeHostContainers(hosts ...string) {
	ctx := context.Background()
	for _, h := range hosts {
		res, err := api.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", LabelHost+"="+h)})
		if err != nil {
			continue
		}
		for _, c := range res.Items {
			_, _ = api.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true})
		}
	}
}

// cleanupRun removes what this run left: containers on its hosts, then
// its images.
func cleanupRun(ctx context.Context) {
	res, err := api.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", LabelManaged+"=true")})
	if err == nil {
		for _, c := range res.Items {
			if strings.HasPrefix(c.Labels[LabelHost], runID) {
				_, _ = api.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true})
			}
		}
	}
	imgs, err := api.ImageList(ctx, client.ImageListOptions{Filters: make(client.Filters).Add("label", "cutover.test="+runID)})
	if err == nil {
		for _, img := range imgs.Items {
			_, _ = api.ImageRemove(ctx, img.ID, client.ImageRemoveOptions{Force: true, PruneChildren: true})
		}
	}
}
