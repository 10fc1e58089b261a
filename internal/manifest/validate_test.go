package manifest

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// edit returns the good manifest with old replaced by new (which must exist).
func edit(t *testing.T, old, new string) string {
	t.Helper()
	if !strings.Contains(good, old) {
		t.Fatalf("good manifest has no %q", old)
	}
	return strings.Replace(good, old, new, 1)
}

// Each case is a wrong value that used to be accepted silently, or whose
// error named a Go type instead of the field.
func TestParseRefusesWrongValues(t *testing.T) {
	const verify = "verify: {for: 2s}"
	const staging = "staging: {listen: 127.0.0.1:8081}"
	const prod = "production: {listen: 127.0.0.1:8080, instances: 2, from: staging}"
	for _, tc := range []struct {
		name, old, new, want string
	}{
		// Floats: NaN would switch the error-rate check off.
		{"rate nan", verify, "verify: {max_error_rate: .nan}", "cutover.yml:10: verify.max_error_rate: .nan is not a finite number (want a share from 0 to 1"},
		{"rate inf", verify, "verify: {max_error_rate: .inf}", "verify.max_error_rate: .inf is not a finite number"},
		{"rate -inf", verify, "verify: {max_error_rate: -.Inf}", "verify.max_error_rate: -.Inf is not a finite number"},
		{"rate negative", verify, "verify: {max_error_rate: -0.1}", "verify.max_error_rate: -0.1 is out of range"},
		{"rate as percent number", verify, "verify: {max_error_rate: 5}", "for 5% write 0.05"},
		{"rate as percent string", verify, "verify: {max_error_rate: 1%}", `verify.max_error_rate: "1%" is not a number: write a percentage as a share (0.01)`},
		{"rate word", verify, "verify: {max_error_rate: high}", `verify.max_error_rate: "high" is not a number`},
		// Durations that make no sense.
		{"interval zero", "interval: 200ms", "interval: 0s", "cutover.yml:6: health.interval: 0s: want more than 0 (leave it out for the default 1s)"},
		{"interval negative", "interval: 200ms", "interval: -1s", "health.interval: -1s is negative"},
		{"health timeout zero", "interval: 200ms", "interval: 200ms, timeout: 0", "health.timeout: 0: want more than 0"},
		{"deadline negative", "deadline: 5s", "deadline: -5s", "health.deadline: -5s is negative"},
		{"deadline shorter than interval", "deadline: 5s", "deadline: 100ms", "health.deadline: 100ms is shorter than the interval 200ms"},
		{"verify for negative", verify, "verify: {for: -2s}", "verify.for: -2s is negative"},
		{"stop_grace negative", "scale_in_delay: 5m", "scale_in_delay: 5m\nstop_grace: -1s", "cutover.yml:12: stop_grace: -1s is negative"},
		{"build timeout zero", "command: go build -o bin/hello .", "command: go build -o bin/hello .\n  timeout: 0s", "cutover.yml:4: build.timeout: 0s: want more than 0"},
		{"migrate timeout negative", "migrate: {command: bin/hello migrate}", "migrate: {command: bin/hello migrate, timeout: -1m}", "migrate.timeout: -1m is negative"},
		{"smoke timeout zero", "body_contains: hello}", "timeout: 0ms}", "smoke[0].timeout: 0ms: want more than 0"},
		{"standby zero", "scale_in_delay: 5m", "standby_for: 0s", "standby_for: 0s: want more than 0"},
		{"standby and alias", "scale_in_delay: 5m", "scale_in_delay: 5m\nstandby_for: 1m", "scale_in_delay: is another name for standby_for"},
		// Whole numbers.
		{"instances zero", "instances: 2", "instances: 0", "cutover.yml:14: environments.production.instances: 0 is out of range (1-64)"},
		{"instances negative", "instances: 2", "instances: -1", "instances: -1 is out of range (1-64)"},
		{"instances huge", "instances: 2", "instances: 100000", "instances: 100000 is out of range (1-64)"},
		{"min_requests zero", verify, "verify: {min_requests: 0}", "verify.min_requests: 0 is out of range (1-1000000)"},
		{"status low", "body_contains: hello}", "status: 99}", "smoke[0].status: 99 is out of range (100-599)"},
		// Words from a set.
		{"method lower case", "body_contains: hello}", "method: get}", `smoke[0].method: "get" is not an HTTP method (GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, or another upper-case token); methods are case-sensitive: did you mean GET?`},
		{"method with space", "body_contains: hello}", "method: GE T}", `smoke[0].method: "GE T" is not an HTTP method`},
		{"smoke path missing", "{path: /, body_contains: hello}", "{body_contains: hello}", "cutover.yml:8: smoke[0].path: is required"},
		{"smoke path space", "{path: /, body_contains: hello}", "{path: /a b}", `smoke[0].path: "/a b" must start with / and contain no spaces`},
		{"on_confirm near", "app: hello", "app: hello\non_confirm: scalein", `cutover.yml:2: on_confirm: "scalein": want one of sync, scale_in (did you mean scale_in?)`},
		// Addresses.
		{"listen named port", "127.0.0.1:8081", "127.0.0.1:http", `environments.staging.listen: "127.0.0.1:http": port "http" is out of range (1-65535)`},
		{"listen port zero", "127.0.0.1:8081", "127.0.0.1:0", `port "0" is out of range`},
		{"listen port big", "127.0.0.1:8081", "127.0.0.1:70000", `port "70000" is out of range`},
		{"listen signed port", "127.0.0.1:8081", "\"127.0.0.1:+80\"", `port "+80" is out of range`},
		{"listen bad host", "127.0.0.1:8081", "\"bad host:80\"", `"bad host" is not a host name or IP address`},
		{"listen same", "127.0.0.1:8081", "127.0.0.1:8080", `cutover.yml:14: environments.production.listen: "127.0.0.1:8080" is already used by environment staging`},
		{"listen wildcard clash", "127.0.0.1:8081", "\":8080\"", `environments.production.listen: "127.0.0.1:8080" and environment staging's ":8080" cannot both be bound`},
		{"host with space", staging, "staging: {listen: 127.0.0.1:8081, host: my host}", `environments.staging.host: "my host" is not a host name`},
		{"host with port", staging, "staging: {listen: 127.0.0.1:8081, host: \"example.com:8081\"}", `environments.staging.host: "example.com:8081": give the name without a port`},
		// Environments and the promotion chain.
		{"duplicate env", prod, prod + "\n  " + staging, "cutover.yml:15: environments.staging: is given twice (first on line 13)"},
		{"duplicate key", "app: hello", "app: hello\napp: other", "cutover.yml:2: app: is given twice (first on line 1)"},
		{"from unknown near", "from: staging", "from: stagin", `environments.production.from: "stagin" is not an environment (environments: staging, production); did you mean staging?`},
		{"from itself", "from: staging", "from: production", `environments.production.from: "production" is this environment`},
		{"from cycle", staging, "staging: {listen: 127.0.0.1:8081, from: production}", `cutover.yml:13: environments.staging.from: "production" forms a cycle (staging <- production <- staging)`},
		{"from later", staging, "staging: {listen: 127.0.0.1:8081, from: qa}\n  qa: {listen: 127.0.0.1:8082}", `environments.staging.from: "qa" is listed after staging: environments are listed in promotion order, so move qa above staging`},
		// Environment variables.
		{"env name dash", "command: [bin/hello, --flag]", "command: [bin/hello, --flag]\n  env: {MY-VAR: x}", `cutover.yml:6: run.env.MY-VAR: "MY-VAR" is not a valid variable name`},
		{"env name digit", "command: [bin/hello, --flag]", "command: [bin/hello, --flag]\n  env: {1X: x}", `run.env.1X: "1X" is not a valid variable name`},
		{"env PORT", "command: [bin/hello, --flag]", "command: [bin/hello, --flag]\n  env: {PORT: \"9000\"}", "run.env.PORT: PORT is set by cutover and cannot be overridden (reserved: PORT, CUTOVER_*)"},
		{"env CUTOVER_", staging, "staging: {listen: 127.0.0.1:8081, env: {CUTOVER_ENV: x}}", "environments.staging.env.CUTOVER_ENV: CUTOVER_ENV is set by cutover"},
		{"env value list", staging, "staging: {listen: 127.0.0.1:8081, env: {A: [1]}}", "environments.staging.env.A: want a string, not a list"},
		// Commands.
		{"run empty list", "command: [bin/hello, --flag]", "command: []", "cutover.yml:5: run.command: is required"},
		{"run empty string", "command: [bin/hello, --flag]", "command: \"\"", "run.command: is required"},
		{"command empty element", "command: [bin/hello, --flag]", "command: [bin/hello, \"\"]", "run.command[1]: is empty"},
		{"command nested list", "command: [bin/hello, --flag]", "command: [bin/hello, [a]]", "run.command[1]: want a string, not a list"},
		{"migrate without command", "migrate: {command: bin/hello migrate}", "migrate: {timeout: 1m}", "cutover.yml:9: migrate.command: is required when migrate is given"},
		// Decoding errors name the field path, never a Go type.
		{"duration words", "interval: 200ms", "interval: 200ms, timeout: 5 seconds", `cutover.yml:6: health.timeout: "5 seconds" is not a duration (examples: 500ms, 5s, 1m)`},
		{"duration no unit", "interval: 200ms", "interval: 5", "health.interval: 5 has no unit (examples: 500ms, 5s, 1m)"},
		{"duration list", "interval: 200ms", "interval: [1s]", "health.interval: want a duration (examples: 500ms, 5s, 1m), not a list"},
		{"health not a mapping", "health: {path: /up, interval: 200ms, deadline: 5s}", "health: 5s", `cutover.yml:6: health: want a mapping, not "5s"`},
		{"build a string", "build:\n  command: go build -o bin/hello .", "build: go build", `cutover.yml:2: build: want a mapping, not "go build" (for example: {command: go build -o bin/app .})`},
		{"instances word", "instances: 2", "instances: two", `environments.production.instances: "two" is not a whole number (want 1 to 64)`},
		{"instances list", "instances: 2", "instances: [2]", "environments.production.instances: want a whole number from 1 to 64, not a list"},
		{"status text", "body_contains: hello}", "status: 200 OK}", `smoke[0].status: "200 OK" is not a whole number (want 100 to 599)`},
		{"min_requests float", verify, "verify: {min_requests: 1.5}", `verify.min_requests: "1.5" is not a whole number`},
		{"verify list", verify, "verify: [2s]", "cutover.yml:10: verify: want a mapping, not a list"},
		{"smoke mapping", "smoke:\n  - {path: /, body_contains: hello}", "smoke: {path: /}", "cutover.yml:7: smoke: want a list, not a mapping"},
		{"env string", staging, "staging: 127.0.0.1:8081", `cutover.yml:13: environments.staging: want a mapping, not "127.0.0.1:8081"`},
		{"run env list", "command: [bin/hello, --flag]", "command: [bin/hello, --flag]\n  env: [A=1]", "run.env: want a mapping, not a list"},
		{"release main list", "app: hello", "app: hello\nrelease: {main: [a]}", "cutover.yml:2: release.main: want a string, not a list"},
		{"app list", "app: hello", "app: [hello]", "cutover.yml:1: app: want a string, not a list"},
		{"second document", "app: hello", "app: hello\n---\napp: other\n", "cutover.yml:2: a second YAML document"},
		{"syntax", "app: hello", "app: [hello", "cutover.yml:1: not valid YAML:"},
		// Unknown keys suggest the nearest known one, at every level.
		{"root misspelt", "health:", "helth:", "cutover.yml:6: helth: unknown field; did you mean health?"},
		{"environments misspelt", "environments:", "enviroments:", "cutover.yml:12: enviroments: unknown field; did you mean environments?"},
		{"health key misspelt", "interval: 200ms", "intervall: 200ms", "cutover.yml:6: health.intervall: unknown field; did you mean interval?"},
		{"smoke key misspelt", "body_contains", "bdy_contains", "smoke[0].bdy_contains: unknown field; did you mean body_contains?"},
		{"env key alias", "instances: 2", "replicas: 2", "environments.production.replicas: unknown field; did you mean instances?"},
		{"verify key swapped", verify, "verify: {fro: 2s}", "verify.fro: unknown field; did you mean for?"},
		{"release key misspelt", "app: hello", "app: hello\nrelease: {tag_prefx: v}", "release.tag_prefx: unknown field; did you mean tag_prefix?"},
		{"migrate key misspelt", "migrate: {command: bin/hello migrate}", "migrate: {comand: bin/hello migrate}", "migrate.comand: unknown field; did you mean command?"},
		{"unknown far", "app: hello", "app: hello\nxyzzy: 1", "xyzzy: unknown field (known: app, runtime, docker, build, run"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(edit(t, tc.old, tc.new)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant it to contain %q", err, tc.want)
			}
			for _, goName := range []string{"!!", "unmarshal", "time.Duration", "manifest.", " in type", "in Health"} {
				if strings.Contains(err.Error(), goName) {
					t.Errorf("err = %v: names Go or YAML internals (%q)", err, goName)
				}
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("err = %v: not a *FieldError", err)
			}
		})
	}
}

func TestParseReportsEveryErrorInFileOrder(t *testing.T) {
	y := edit(t, "instances: 2", "instances: 0")
	y = strings.Replace(y, "interval: 200ms", "intervall: 200ms", 1)
	y = strings.Replace(y, "for: 2s", "max_error_rate: .nan", 1)
	_, err := Parse([]byte(y))
	if err == nil {
		t.Fatal("no error")
	}
	got := err.(interface{ Unwrap() []error }).Unwrap()
	var lines []int
	for _, e := range got {
		lines = append(lines, e.(*FieldError).Line)
	}
	if want := []int{6, 10, 14}; len(lines) != 3 || lines[0] != want[0] || lines[1] != want[1] || lines[2] != want[2] {
		t.Errorf("lines = %v, want %v; err:\n%v", lines, want, err)
	}
}

func TestParseAcceptsEdgeValues(t *testing.T) {
	y := strings.NewReplacer(
		"verify: {for: 2s}", "verify: {for: 2s, max_error_rate: 0, min_requests: 1}",
		"deadline: 5s", "deadline: 500ms, timeout: 2s",
		"127.0.0.1:8081", "\":8081\"",
		"body_contains: hello}", "method: PROPFIND, status: 207}",
		"production: {", "production: {host: example.com, ",
	).Replace(good)
	y += "  canary: {listen: 127.0.0.1:8080, host: canary.example.com, from: production, env: *shared}\n"
	y = strings.Replace(y, "run:\n", "run:\n  env: &shared {GREETING: hi, NUM: 1, EMPTY: ~}\n", 1)
	m, err := Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if m.Verify.MaxErrorRate != 0 || m.Verify.MinRequests != 1 {
		t.Errorf("verify = %+v, want an explicit 0 rate kept", m.Verify)
	}
	if m.Health.Timeout != 500*time.Millisecond {
		t.Errorf("health.timeout = %s, want it capped at the deadline", m.Health.Timeout)
	}
	if m.Smoke[0].Method != "PROPFIND" || m.Smoke[0].Status != 207 {
		t.Errorf("smoke = %+v", m.Smoke[0])
	}
	c, ok := m.Env("canary")
	if !ok || c.Env["GREETING"] != "hi" || c.Env["NUM"] != "1" || c.Env["EMPTY"] != "" {
		t.Errorf("canary = %+v", c)
	}
	if p, _ := m.Env("production"); p.Host != "example.com" || p.Instances != 2 {
		t.Errorf("production = %+v", p)
	}
}

func TestParseFollowsMergeKeys(t *testing.T) {
	// Top-level x- keys hold anchors and are otherwise ignored.
	y := edit(t, "environments:\n", "x-common: &base {listen: 127.0.0.1:9000, instances: 3}\nenvironments:\n")
	y = strings.Replace(y, "staging: {listen: 127.0.0.1:8081}", "staging: {<<: *base, listen: 127.0.0.1:8081}", 1)
	m, err := Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Environments) != 2 {
		t.Errorf("environments = %+v", m.Environments)
	}
	if s, _ := m.Env("staging"); s.Listen != "127.0.0.1:8081" || s.Instances != 3 {
		t.Errorf("staging = %+v, want listen given, instances merged", s)
	}
}

func TestSuggest(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"helth", "health"}, {"enviroments", "environments"}, {"Health", "health"}, {"smoek", "smoke"},
		{"verfy", "verify"}, {"zzz", ""}, {"a", ""},
	} {
		if got := suggest(tc.in, rootKeys); got != tc.want {
			t.Errorf("suggest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
