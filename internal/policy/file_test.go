package policy

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const goodPolicy = `environments:
  staging:    {checks: [test]}
  production:
    from: staging
    checks: [test]
    require: ci && (cd || review) && approval
    approvals: 1
    windows:
      timezone: America/New_York
      deny: ["Fri 12:00 - Mon 06:00", "2026-12-20 - 2027-01-03"]
`

func TestParseFile_Good(t *testing.T) {
	t.Parallel()
	p, err := ParseFile([]byte(goodPolicy))
	if err != nil {
		t.Fatal(err)
	}
	st, ok := p.Env("staging")
	if !ok || st.Require.String() != "ci" || strings.Join(st.Checks, ",") != "test" || st.Windows != nil {
		t.Errorf("staging = %+v", st)
	}
	pr, ok := p.Env("production")
	if !ok || pr.From != "staging" || pr.Require.String() != "ci && (cd || review) && approval" || pr.Approvals != 1 {
		t.Errorf("production = %+v", pr)
	}
	if ok, w, next := pr.Windows.Check(time.Date(2026, 12, 24, 12, 0, 0, 0, time.UTC)); ok || w != "2026-12-20 - 2027-01-03" || next.Format(time.RFC3339) != "2027-01-04T06:00:00-05:00" {
		t.Errorf("production windows: %v %q %v", ok, w, next)
	}
	if _, ok := p.Env("qa"); ok {
		t.Error("an environment the file does not name was found")
	}
}

func TestParseFile_Defaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, src, env, require string
		approvals               int
	}{
		{"from gets cd", "environments: {production: {from: staging}}", "production", "cd", 1},
		{"from and checks get cd", "environments: {production: {from: staging, checks: [test]}}", "production", "cd", 1},
		{"checks get ci", "environments: {staging: {checks: [test, lint]}}", "staging", "ci", 1},
		{"nothing", "environments: {dev: {}}", "dev", "", 1},
		{"null", "environments: {dev: }", "dev", "", 1},
		{"given rule wins", "environments: {production: {from: staging, require: approval, approvals: 3}}", "production", "approval", 3},
		{"from may be any valid name", "environments: {production: {from: canary}}", "production", "cd", 1},
		{"anchors", "x-base: &base {checks: [test]}\nenvironments:\n  production:\n    <<: *base\n    require: ci && approval\n", "production", "ci && approval", 1},
	} {
		p, err := ParseFile([]byte(tc.src))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		e, ok := p.Env(tc.env)
		if !ok || e.Require.String() != tc.require || e.Approvals != tc.approvals {
			t.Errorf("%s: %s = %+v, want require %q approvals %d", tc.name, tc.env, e, tc.require, tc.approvals)
		}
		if e.Require == nil && !e.Require.Evaluate(nil).Holds {
			t.Errorf("%s: nothing required, yet refused", tc.name)
		}
	}
	for _, src := range []string{"", "# nothing yet\n", "environments:\n", "environments: {}\n"} {
		if p, err := ParseFile([]byte(src)); err != nil || len(p.Environments) != 0 {
			t.Errorf("ParseFile(%q) = %+v, %v; want an empty policy", src, p, err)
		}
	}
}

func TestParseFile_Errors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, old, new, want string }{
		{"unknown root key", "environments:", "enviroments:", "policy.yml:1: enviroments: unknown field; did you mean environments?"},
		{"unknown env key", "approvals: 1", "approval: 1", "policy.yml:7: environments.production.approval: unknown field; did you mean approvals?"},
		{"alias", "approvals: 1", "reviewers: 1", "environments.production.reviewers: unknown field; did you mean approvals?"},
		{"unknown windows key", "timezone:", "tz:", "policy.yml:9: environments.production.windows.tz: unknown field; did you mean timezone?"},
		{"bad rule", "(cd || review)", "(cd || reviw)", `policy.yml:6: environments.production.require: col 14: unknown condition "reviw" (did you mean review?); want one of ci, cd, review, approval`},
		{"rule syntax", "ci && (cd", "ci && && (cd", `policy.yml:6: environments.production.require: col 7: want a condition or "(", got "&&"`},
		{"rule unbalanced", "&& approval", "&& approval)", `policy.yml:6: environments.production.require: col 33: ")" has no matching "("`},
		{"rule empty string", "require: ci && (cd || review) && approval", `require: ""`, `policy.yml:6: environments.production.require: col 1: empty rule`},
		{"rule a list", "require: ci && (cd || review) && approval", "require: [ci]", `environments.production.require: want a rule such as ci && approval, not a list`},
		{"ci without checks", "    checks: [test]\n    require", "    require", "policy.yml:5: environments.production.require: uses ci, but no checks are listed"},
		{"approvals zero", "approvals: 1", "approvals: 0", "policy.yml:7: environments.production.approvals: 0 is out of range (1-10)"},
		{"approvals eleven", "approvals: 1", "approvals: 11", "environments.production.approvals: 11 is out of range (1-10)"},
		{"approvals word", "approvals: 1", "approvals: two", `environments.production.approvals: "two" is not a whole number (want 1 to 10)`},
		{"approvals unused", "&& approval\n", "\n", "policy.yml:7: environments.production.approvals: has no effect: require (ci && (cd || review)) does not use approval"},
		{"check name", "checks: [test]\n    require", "checks: [test, \"bad\\tname\"]\n    require", `policy.yml:5: environments.production.checks[1]: "bad\tname" is not a check name`},
		{"check twice", "checks: [test]\n    require", "checks: [test, test]\n    require", `environments.production.checks[1]: "test" is listed twice (first on line 5)`},
		{"checks scalar", "checks: [test]\n    require", "checks: test\n    require", `environments.production.checks: want a list of check names, not "test"`},
		{"env name", "  staging:", "  Staging:", `policy.yml:2: environments.Staging: "Staging" is not a valid environment name`},
		{"from name", "from: staging", "from: Staging!", `policy.yml:4: environments.production.from: "Staging!" is not a valid environment name`},
		{"from itself", "from: staging", "from: production", `environments.production.from: "production" is this environment`},
		{"timezone", "America/New_York", "America/New_Yrok", `policy.yml:9: environments.production.windows.timezone: "America/New_Yrok" is not an IANA time zone name`},
		{"range", `"Fri 12:00 - Mon 06:00"`, `"Fri 12 - Mon 06:00"`, `policy.yml:10: environments.production.windows.deny[0]: "Fri 12 - Mon 06:00" is not a range: want "DAY HH:MM - DAY HH:MM"`},
		{"range date", `"2026-12-20 - 2027-01-03"`, `"2026-12-32"`, `environments.production.windows.deny[1]: "2026-12-32": 2026-12-32 is not a date`},
		{"ranges mapping", `deny: [`, `deny: {a: 1}
      allow: [`, `environments.production.windows.deny: want a list of ranges, not a mapping`},
		{"env a list", "staging:    {checks: [test]}", "staging: [test]", "policy.yml:2: environments.staging: want a mapping, not a list"},
		{"twice", "    approvals: 1", "    approvals: 1\n    approvals: 2", "policy.yml:8: environments.production.approvals: is given twice (first on line 7)"},
		{"second document", "      deny:", "---\n      deny:", "a second YAML document (---): the policy is one document"},
		{"bad yaml", "staging:    {checks: [test]}", "staging: {checks: [test]", "policy.yml:1: not valid YAML: did not find expected ',' or '}'"},
	} {
		if !strings.Contains(goodPolicy, tc.old) {
			t.Fatalf("%s: the good policy has no %q", tc.name, tc.old)
		}
		src := strings.Replace(goodPolicy, tc.old, tc.new, 1)
		_, err := ParseFile([]byte(src))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error\n  %v\nwant\n  %s", tc.name, err, tc.want)
			continue
		}
		var fe *FieldError
		if !errors.As(err, &fe) {
			t.Errorf("%s: %T is not a *FieldError", tc.name, err)
		}
	}
}

func TestParseFile_EveryErrorInFileOrder(t *testing.T) {
	t.Parallel()
	src := `environments:
  production:
    approvals: 0
    require: ci &&
    windows: {timezone: Nowhere/City, deny: [soon]}
  Bad: {}
`
	_, err := ParseFile([]byte(src))
	if err == nil {
		t.Fatal("accepted")
	}
	got := err.Error()
	lines := strings.Split(got, "\n")
	prefixes := []string{"policy.yml:3: environments.production.approvals", "policy.yml:4: environments.production.require", "policy.yml:5: environments.production.windows.timezone", "policy.yml:5: environments.production.windows.deny[0]", "policy.yml:6: environments.Bad"}
	if len(lines) != len(prefixes) {
		t.Fatalf("got %d errors, want %d:\n%s", len(lines), len(prefixes), got)
	}
	for i, p := range prefixes {
		if !strings.HasPrefix(lines[i], p) {
			t.Errorf("error %d = %q, want it to start with %q", i, lines[i], p)
		}
	}
	if fe := (&FieldError{Line: 4, Field: "x", Msg: "y"}); fe.In("/etc/cutover/policy.yml") != "/etc/cutover/policy.yml:4: x: y" {
		t.Errorf("In = %q", fe.In("/etc/cutover/policy.yml"))
	}
}

func TestPolicy_Marshal(t *testing.T) {
	t.Parallel()
	src := `environments:
  dev:
  staging: {checks: [test, "lint (1.26)"]}
  production:
    from: staging
    require: "ci&&(cd||review)&&approval"
    checks: [test]
    approvals: 2
    windows: {timezone: America/New_York, deny: ["friday 12:00-Mon 6:00", "2026-12-20 - 2027-01-03"], allow: "Mon 00:00 - Fri 24:00"}
`
	want := `environments:
  dev: {}
  staging:
    checks: [test, lint (1.26)]
    require: ci
  production:
    from: staging
    checks: [test]
    require: ci && (cd || review) && approval
    approvals: 2
    windows:
      timezone: America/New_York
      deny: ["Fri 12:00 - Mon 06:00", "2026-12-20 - 2027-01-03"]
      allow: ["Mon 00:00 - Fri 24:00"]
`
	p, err := ParseFile([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	got := string(p.Marshal())
	if got != want {
		t.Errorf("Marshal:\n%s\nwant:\n%s", got, want)
	}
	p2, err := ParseFile([]byte(got))
	if err != nil {
		t.Fatalf("the canonical form does not parse: %v", err)
	}
	if again := string(p2.Marshal()); again != got {
		t.Errorf("not stable:\n%s", again)
	}
	if got := string((&Policy{}).Marshal()); got != "environments: {}\n" {
		t.Errorf("empty policy = %q", got)
	}
}

func TestAutoDeploy(t *testing.T) {
	t.Parallel()
	p, err := ParseFile([]byte("environments:\n  staging:\n    checks: [test]\n    auto_deploy: {branch: main, poll: 30s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	e, _ := p.Env("staging")
	if e.AutoDeploy == nil || e.AutoDeploy.Branch != "main" || e.AutoDeploy.Poll != 30*time.Second {
		t.Fatalf("auto_deploy = %+v", e.AutoDeploy)
	}
	if again, err := ParseFile(p.Marshal()); err != nil || again.Environments[0].AutoDeploy.Poll != 30*time.Second {
		t.Errorf("round trip: %v\n%s", err, p.Marshal())
	}
	for src, want := range map[string]string{
		"environments:\n  s:\n    auto_deploy: {poll: 30s}\n":              "auto_deploy.branch: is required",
		"environments:\n  s:\n    auto_deploy: {branch: 'a b'}\n":          "is not a valid branch name",
		"environments:\n  s:\n    auto_deploy: {branch: main, poll: 1s}\n": "want 5s to 24h",
		"environments:\n  s:\n    auto_deploy: {branch: main, pol: 1m}\n":  "did you mean poll",
	} {
		if _, err := ParseFile([]byte(src)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", src, err, want)
		}
	}
}
