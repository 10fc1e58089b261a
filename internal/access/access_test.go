package access

import (
	"testing"

	"github.com/cutover/cutover/internal/core"
)

func bind(role core.Role, apps, envs string) []core.RoleBinding {
	return []core.RoleBinding{{Role: role, Apps: apps, Envs: envs}}
}

func TestCan(t *testing.T) {
	tests := []struct {
		name     string
		bindings []core.RoleBinding
		action   Action
		app, env string
		want     bool
	}{
		{"no binding denies", nil, Read, "hello", "production", false},
		{"viewer reads", bind(core.RoleViewer, "*", "*"), Read, "hello", "production", true},
		{"viewer cannot deploy", bind(core.RoleViewer, "*", "*"), Deploy, "hello", "production", false},
		{"viewer cannot approve", bind(core.RoleViewer, "*", "*"), Approve, "hello", "production", false},
		{"deployer deploys", bind(core.RoleDeployer, "*", "*"), Deploy, "hello", "production", true},
		{"deployer reads", bind(core.RoleDeployer, "*", "*"), Read, "hello", "production", true},
		{"deployer rolls back, confirms, holds, cancels, stops", bind(core.RoleDeployer, "*", "*"), Stop, "hello", "production", true},
		{"deployer cannot approve", bind(core.RoleDeployer, "*", "*"), Approve, "hello", "production", false},
		{"deployer cannot set config", bind(core.RoleDeployer, "*", "*"), Config, "hello", "production", false},
		{"approver approves", bind(core.RoleApprover, "*", "*"), Approve, "hello", "production", true},
		{"approver reads", bind(core.RoleApprover, "*", "*"), Read, "hello", "production", true},
		{"approver cannot deploy", bind(core.RoleApprover, "*", "*"), Deploy, "hello", "production", false},
		{"admin does everything", bind(core.RoleAdmin, "*", "*"), Users, "*", "*", true},
		{"app glob matches", bind(core.RoleDeployer, "hel*", "*"), Deploy, "hello", "production", true},
		{"app glob does not match", bind(core.RoleDeployer, "hel*", "*"), Deploy, "api", "production", false},
		{"env glob matches", bind(core.RoleDeployer, "*", "staging"), Deploy, "hello", "staging", true},
		{"env glob does not match", bind(core.RoleDeployer, "*", "staging"), Deploy, "hello", "production", false},
		{"env glob with a class", bind(core.RoleDeployer, "*", "prod-[ab]"), Deploy, "hello", "prod-b", true},
		{"scoped admin is not a global admin", bind(core.RoleAdmin, "hello", "*"), Users, "*", "*", false},
		{"scoped admin sets config of its app", bind(core.RoleAdmin, "hello", "*"), Config, "hello", "production", true},
		{"a request for every app needs *", bind(core.RoleViewer, "hello", "*"), Read, "*", "*", false},
		{"a request for every env needs *", bind(core.RoleViewer, "*", "staging"), Read, "hello", "*", false},
		{"empty globs mean *", bind(core.RoleViewer, "", ""), Read, "hello", "production", true},
		{"any binding may allow", []core.RoleBinding{{Role: core.RoleViewer, Apps: "*", Envs: "*"}, {Role: core.RoleDeployer, Apps: "hello", Envs: "staging"}}, Deploy, "hello", "staging", true},
		{"an app-wide read needs some env of the app", bind(core.RoleDeployer, "hello", "staging"), Read, "hello", AnyEnv, true},
		{"an app-wide read of another app", bind(core.RoleDeployer, "hello", "staging"), Read, "api", AnyEnv, false},
		{"an app-wide read of every app needs *", bind(core.RoleViewer, "hello", "*"), Read, "*", AnyEnv, false},
		{"unknown role denies", bind("root", "*", "*"), Read, "hello", "production", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Can(tt.bindings, tt.action, tt.app, tt.env); got != tt.want {
				t.Errorf("Can(%v, %s, %s, %s) = %v, want %v", tt.bindings, tt.action, tt.app, tt.env, got, tt.want)
			}
		})
	}
}

func TestNeeds(t *testing.T) {
	want := map[Action]core.Role{
		Read: core.RoleViewer, Build: core.RoleDeployer, Deploy: core.RoleDeployer, Promote: core.RoleDeployer,
		Rollback: core.RoleDeployer, Confirm: core.RoleDeployer, Hold: core.RoleDeployer, Lock: core.RoleDeployer,
		Cancel: core.RoleDeployer, Stop: core.RoleDeployer, Release: core.RoleDeployer,
		Review: core.RoleApprover, Approve: core.RoleApprover,
		Config: core.RoleAdmin, Apps: core.RoleAdmin, Users: core.RoleAdmin, Tokens: core.RoleAdmin,
		Policy: core.RoleAdmin, Override: core.RoleAdmin, Notify: core.RoleAdmin,
	}
	if len(want) != len(Actions) {
		t.Fatalf("%d actions tested, %d declared", len(want), len(Actions))
	}
	for _, a := range Actions {
		if got := Needs(a); got != want[a] {
			t.Errorf("Needs(%s) = %s, want %s", a, got, want[a])
		}
	}
}

func TestForbiddenMessage(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{Check("ann", bind(core.RoleViewer, "*", "*"), Deploy, "hello", "production"),
			"forbidden: deploying to hello/production needs the deployer role on app hello, env production; ann has viewer"},
		{Check("bob", bind(core.RoleDeployer, "api", "staging"), Read, "hello", core.AnyScope),
			"forbidden: reading hello needs the viewer role on app hello, every env; bob has deployer on app api, env staging"},
		{Check("dee", bind(core.RoleViewer, "api", "*"), Read, "hello", AnyEnv),
			"forbidden: reading hello needs the viewer role on app hello (any env); dee has viewer on app api, env *"},
		{Check("cy", nil, Users, core.AnyScope, core.AnyScope),
			"forbidden: managing users needs the admin role on every app and env; cy has no role"},
	}
	for _, tt := range tests {
		if tt.err == nil || tt.err.Error() != tt.want {
			t.Errorf("got  %v\nwant %s", tt.err, tt.want)
		}
	}
	if err := Check("ann", bind(core.RoleAdmin, "*", "*"), Override, "hello", "production"); err != nil {
		t.Errorf("admin: %v", err)
	}
}
