package examples

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cutover/cutover/internal/manifest"
)

// The manifests WriteHello writes are valid, for processes and for Docker.
func TestWriteHelloManifests(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  HelloOptions
	}{
		{"process", HelloOptions{}},
		{"docker", HelloOptions{Docker: true, DockerHosts: []string{"a", "b"}, DockerKeep: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := WriteHello(dir, tc.opt); err != nil {
				t.Fatal(err)
			}
			m, err := manifest.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			_, statErr := os.Stat(filepath.Join(dir, "Dockerfile"))
			prod, _ := m.Env("production")
			if tc.opt.Docker {
				if m.Runtime != manifest.RuntimeDocker || m.Docker.Keep != 3 || len(prod.DockerHosts) != 2 || statErr != nil {
					t.Errorf("docker manifest: runtime %q keep %d hosts %v, Dockerfile: %v", m.Runtime, m.Docker.Keep, prod.DockerHosts, statErr)
				}
				if m.Migrate == nil || m.Migrate.Command[0] != "/hello" {
					t.Errorf("migrate = %+v, want the image's /hello", m.Migrate)
				}
			} else if m.Runtime != manifest.RuntimeProcess || statErr == nil {
				t.Errorf("process manifest: runtime %q, Dockerfile written: %v", m.Runtime, statErr == nil)
			}
		})
	}
}
