// Package examples ships the example apps used by `cutover demo` and the
// end-to-end tests, so a fresh clone can show the whole flow without
// anything but Go and git.
package examples

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

//go:embed hello/*.go hello/compat/*.go
var hello embed.FS

// HelloOptions shape the cutover.yml written with the hello app. Zero
// values take the defaults shown in examples/hello/cutover.yml.
type HelloOptions struct {
	StagingListen       string
	ProductionListen    string
	ProductionInstances int
	Verify              time.Duration
	StandbyFor          time.Duration
	InvestigateFor      time.Duration
	HealthDeadline      time.Duration
	// CompatOldest, when set, adds the backwards-compatibility gate:
	// compat/ of the tag v<CompatOldest> runs before each promotion.
	CompatOldest string
	// Docker makes it a runtime docker app: a static binary built on the
	// host, copied into a FROM scratch image (nothing is pulled), with
	// production on DockerHosts (empty: the default host) and DockerKeep
	// releases' images kept per environment (0: the default).
	Docker      bool
	DockerHosts []string
	DockerKeep  int
}

// HelloDockerfile is the hello app's image: its static binary alone.
const HelloDockerfile = `# The hello app's image: the static binary built by build.command, alone.
FROM scratch
COPY bin/hello /hello
ENTRYPOINT ["/hello"]
`

// WriteHello writes the hello app (sources, go.mod and a cutover.yml built
// from opt) into dir, creating it. It does not touch git.
func WriteHello(dir string, opt HelloOptions) error {
	if opt.StagingListen == "" {
		opt.StagingListen = "127.0.0.1:8081"
	}
	if opt.ProductionListen == "" {
		opt.ProductionListen = "127.0.0.1:8080"
	}
	if opt.ProductionInstances == 0 {
		opt.ProductionInstances = 2
	}
	if opt.Verify == 0 {
		opt.Verify = 3 * time.Second
	}
	if opt.StandbyFor == 0 {
		opt.StandbyFor = 15 * time.Minute
	}
	if opt.InvestigateFor == 0 {
		opt.InvestigateFor = 30 * time.Minute
	}
	if opt.HealthDeadline == 0 {
		opt.HealthDeadline = 20 * time.Second
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	err := fs.WalkDir(hello, "hello", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := hello.ReadFile(path)
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, strings.TrimPrefix(path, "hello/"))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		return fmt.Errorf("write hello app: %w", err)
	}
	files := map[string]string{
		"go.mod":      "module hello\n\ngo 1.26\n",
		".gitignore":  "/bin/\n",
		"cutover.yml": helloManifest(opt),
	}
	if opt.Docker {
		files["Dockerfile"] = HelloDockerfile
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return fmt.Errorf("write hello app: %w", err)
		}
	}
	return nil
}

func helloManifest(o HelloOptions) string {
	compat := ""
	if o.CompatOldest != "" {
		compat = fmt.Sprintf("compat:\n  test: go run ./compat\n  oldest: %s\n  timeout: 2m\n", o.CompatOldest)
	}
	head := `# cutover.yml for the hello example app (written by examples.WriteHello).
app: hello
build:
  command: go build -o bin/hello .
  timeout: 2m
run:
  command: bin/hello
  env:
    GREETING: hello
`
	migrate := "bin/hello migrate"
	prodDocker := ""
	if o.Docker {
		keep := ""
		if o.DockerKeep > 0 {
			keep = fmt.Sprintf("\n  keep: %d", o.DockerKeep)
		}
		// netgo and osusergo: a static binary for a FROM scratch image.
		head = `# cutover.yml for the hello example app on Docker (written by examples.WriteHello).
app: hello
runtime: docker
docker:
  file: Dockerfile
  port: 8080` + keep + `
build:
  command: go build -tags netgo,osusergo -trimpath -o bin/hello .
  timeout: 2m
run:
  env:
    GREETING: hello
`
		migrate = "[/hello, migrate]"
		if len(o.DockerHosts) > 0 {
			prodDocker = "\n    docker:\n      hosts: [" + strings.Join(o.DockerHosts, ", ") + "]"
		}
	}
	return compat + head + fmt.Sprintf(`health:
  path: /up
  interval: 100ms
  timeout: 1s
  deadline: %s
smoke:
  - name: home page
    path: /
    status: 200
    body_contains: " from v"
migrate:
  command: %s
  timeout: 30s
verify:
  for: %s
  max_error_rate: 0.01
standby_for: %s
investigate_for: %s
stop_grace: 5s
environments:
  staging:
    listen: %s
    instances: 1
  production:
    listen: %s
    instances: %d
    from: staging%s
`, o.HealthDeadline, migrate, o.Verify, o.StandbyFor, o.InvestigateFor, o.StagingListen, o.ProductionListen, o.ProductionInstances, prodDocker)
}
