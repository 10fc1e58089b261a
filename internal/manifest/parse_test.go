package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const good = `app: hello
build:
  command: go build -o bin/hello .
run:
  command: [bin/hello, --flag]
health: {path: /up, interval: 200ms, deadline: 5s}
smoke:
  - {path: /, body_contains: hello}
migrate: {command: bin/hello migrate}
verify: {for: 2s}
scale_in_delay: 5m
environments:
  staging: {listen: 127.0.0.1:8081}
  production: {listen: 127.0.0.1:8080, instances: 2, from: staging}
`

func TestParseGoodAppliesDefaults(t *testing.T) {
	m, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(m.Build.Command, "|"); got != "go|build|-o|bin/hello|." {
		t.Errorf("build argv = %q", got)
	}
	if got := strings.Join(m.Run.Command, "|"); got != "bin/hello|--flag" {
		t.Errorf("run argv = %q", got)
	}
	if m.Health.Interval != 200*time.Millisecond || m.Health.Timeout != DefaultHealthTimeout || m.Health.Deadline != 5*time.Second {
		t.Errorf("health = %+v", m.Health)
	}
	if m.Smoke[0].Status != 200 || m.Smoke[0].Method != "GET" || m.Smoke[0].Timeout != DefaultSmokeTimeout {
		t.Errorf("smoke defaults = %+v", m.Smoke[0])
	}
	if m.StandbyFor != 5*time.Minute {
		t.Errorf("standby_for from scale_in_delay = %s", m.StandbyFor)
	}
	if m.Migrate.Timeout != DefaultMigrateTimeout || m.InvestigateFor != DefaultInvestigateFor || m.OnConfirm != OnConfirmSync {
		t.Errorf("defaults: %+v", m)
	}
	if len(m.Environments) != 2 || m.Environments[0].Name != "staging" || m.Environments[1].From != "staging" || m.Environments[0].Instances != 1 {
		t.Errorf("environments = %+v", m.Environments)
	}
	if m.Release.Main != "main" || m.Release.Production != "stages/prod" || m.Release.TagPrefix != "v" || m.Compat != nil {
		t.Errorf("release defaults = %+v, compat %+v", m.Release, m.Compat)
	}
	if m.Verify.MaxErrorRate != DefaultMaxErrorRate {
		t.Errorf("verify = %+v", m.Verify)
	}
}

func TestParseErrorsNameFieldAndLine(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown key", "bogus: 1\n" + good, "cutover.yml:1: bogus: unknown field (known: app, runtime, docker, build"},
		{"missing build", "run: {command: x}\nenvironments: {s: {listen: 127.0.0.1:1}}\n", "build.command: is required"},
		{"bad listen", strings.Replace(good, "127.0.0.1:8081", "nowhere", 1), "cutover.yml:13: environments.staging.listen: \"nowhere\" is not host:port"},
		{"instances out of range", strings.Replace(good, "instances: 2", "instances: 65", 1), "environments.production.instances: 65 is out of range"},
		{"from unknown env", strings.Replace(good, "from: staging", "from: qa", 1), "environments.production.from: \"qa\""},
		{"bad env name", strings.Replace(good, "staging: {", "Stag../ing: {", 1), "environments.Stag../ing"},
		{"bad duration", strings.Replace(good, "for: 2s", "for: soon", 1), `cutover.yml:10: verify.for: "soon" is not a duration (examples: 500ms, 5s, 1m)`},
		{"health path", strings.Replace(good, "path: /up", "path: up", 1), "cutover.yml:6: health.path: \"up\" must start with /"},
		{"smoke status", strings.Replace(good, "body_contains: hello", "status: 700", 1), "cutover.yml:8: smoke[0].status: 700 is out of range (100-599)"},
		{"error rate", strings.Replace(good, "for: 2s", "max_error_rate: 2", 1), "verify.max_error_rate: 2 is out of range"},
		{"unknown env key", strings.Replace(good, "instances: 2,", "replicas: 2,", 1), "environments.production.replicas: unknown field"},
		{"no environments", "build: {command: x}\nrun: {command: y}\n", "environments: at least one environment is required"},
		{"on_confirm", "on_confirm: maybe\n" + good, "on_confirm: \"maybe\""},
		{"compat oldest", "compat: {test: go test, oldest: 2.3}\n" + good, "compat.oldest: \"2.3\""},
		{"compat oldest injection", "compat: {test: go test, oldest: \"$(id)\"}\n" + good, "compat.oldest"},
		{"compat test missing", "compat: {oldest: 1.0.0}\n" + good, "compat.test: is required"},
		{"release branch", "release: {production: \"--upload-pack=x\"}\n" + good, "release.production"},
		{"release same lines", "release: {production: main}\n" + good, "is also the main line"},
		{"not yaml", "build: [\n", "cutover.yml:"},
		{"empty", "", "empty file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), FileName) {
		t.Errorf("missing file: err = %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("#", MaxManifestBytes+10)
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized: err = %v", err)
	}
}
