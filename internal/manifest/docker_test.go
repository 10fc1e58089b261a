package manifest

import (
	"reflect"
	"strings"
	"testing"

	"github.com/cutover/cutover/internal/core"
)

const dockerManifest = `runtime: docker
docker:
  file: deploy/Dockerfile
  context: out
  port: 9000
  memory: 256m
  cpus: 0.5
  restart: on-failure
  keep: 7
build:
  command: go build -o out/app .
migrate:
  command: [/app, migrate]
environments:
  staging:
    listen: 127.0.0.1:8081
  production:
    listen: 127.0.0.1:8080
    from: staging
    docker:
      hosts: [web-1, web-2]
`

func TestParseDocker(t *testing.T) {
	m, err := Parse([]byte(dockerManifest))
	if err != nil {
		t.Fatal(err)
	}
	want := Docker{File: "deploy/Dockerfile", Context: "out", Port: 9000, Memory: 256 << 20, CPUs: 0.5, Restart: "on-failure", Keep: 7}
	if m.Runtime != RuntimeDocker || m.Docker != want {
		t.Errorf("runtime %q docker %+v, want %+v", m.Runtime, m.Docker, want)
	}
	if len(m.Run.Command) != 0 {
		t.Errorf("run.command = %q: a container runs its image's entrypoint", m.Run.Command)
	}
	prod, _ := m.Env("production")
	got := m.RuntimeOptions(prod)
	wantOpts := core.RuntimeOptions{Kind: core.RuntimeDocker, Hosts: []string{"web-1", "web-2"}, Port: 9000, Memory: 256 << 20, CPUs: 0.5, Restart: "on-failure"}
	if !reflect.DeepEqual(got, wantOpts) {
		t.Errorf("production runtime = %+v, want %+v", got, wantOpts)
	}
	staging, _ := m.Env("staging")
	if o := m.RuntimeOptions(staging); len(o.Hosts) != 0 || o.Kind != core.RuntimeDocker {
		t.Errorf("staging runtime = %+v, want the default host", o)
	}

	// Defaults, and build.command optional: the Dockerfile may do it all.
	m, err = Parse([]byte("runtime: docker\nenvironments:\n  staging: {listen: 127.0.0.1:8081}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if def := (Docker{File: "Dockerfile", Context: ".", Port: 8080, Restart: "unless-stopped", Keep: 5}); m.Docker != def {
		t.Errorf("defaults = %+v, want %+v", m.Docker, def)
	}
	// A process app is unchanged.
	if o := (&Manifest{}).RuntimeOptions(staging); o.Kind != core.RuntimeProcess {
		t.Errorf("process runtime = %+v", o)
	}
}

func TestParseDockerRefusesWrongValues(t *testing.T) {
	for _, tc := range []struct{ name, old, new, want string }{
		{"runtime typo", "runtime: docker", "runtime: dokcer", `runtime: "dokcer": want one of process, docker (did you mean docker?)`},
		{"docker for process", "runtime: docker", "runtime: process", "cutover.yml:2: docker: is for runtime docker"},
		{"unknown key", "keep: 7", "kep: 7", "docker.kep: unknown field; did you mean keep?"},
		{"memory unit", "memory: 256m", "memory: 256x", `docker.memory: "256x" is not a size such as 256m or 1g`},
		{"memory tiny", "memory: 256m", "memory: 1m", `docker.memory: "1m" is less than the 6m`},
		{"cpus zero", "cpus: 0.5", "cpus: 0", "docker.cpus: 0 is out of range"},
		{"cpus nan", "cpus: 0.5", "cpus: .nan", `docker.cpus: ".nan" is not a number of CPUs`},
		{"restart", "restart: on-failure", "restart: allways", `docker.restart: "allways": want one of no, on-failure, unless-stopped, always (did you mean always?)`},
		{"port", "port: 9000", "port: 70000", "docker.port: 70000 is out of range (1-65535)"},
		{"keep zero", "keep: 7", "keep: 0", "docker.keep: 0 is out of range (1-100)"},
		{"file escapes", "file: deploy/Dockerfile", "file: ../Dockerfile", `docker.file: "../Dockerfile": want a path inside the repository`},
		{"context absolute", "context: out", "context: /etc", `docker.context: "/etc": want a path inside the repository`},
		{"host name", "[web-1, web-2]", "[web-1, Web 2]", `environments.production.docker.hosts[1]: "Web 2" is not a host name`},
		{"host twice", "[web-1, web-2]", "[web-1, web-1]", "environments.production.docker.hosts[1]: web-1 is listed twice"},
		{"hosts not list", "[web-1, web-2]", "web-1", "environments.production.docker.hosts: want a list of host names"},
		{"env docker key", "hosts: [web-1, web-2]", "host: [web-1]", "environments.production.docker.host: unknown field; did you mean hosts?"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(dockerManifest, tc.old) {
				t.Fatalf("manifest has no %q", tc.old)
			}
			_, err := Parse([]byte(strings.Replace(dockerManifest, tc.old, tc.new, 1)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
	// Hosts on a process app are refused, not ignored.
	proc := "build: {command: make}\nrun: {command: bin/app}\nenvironments:\n  staging: {listen: 127.0.0.1:8081, docker: {hosts: [a]}}\n"
	if _, err := Parse([]byte(proc)); err == nil || !strings.Contains(err.Error(), "environments.staging.docker.hosts: is for runtime docker") {
		t.Errorf("hosts on a process app: %v", err)
	}
}
