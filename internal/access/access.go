// Package access decides who may do what: which actions each role grants,
// whether a user's role bindings allow an action on an app and environment,
// and the message that says what was missing. It is pure: no I/O.
package access

import (
	"fmt"
	"path"
	"strings"

	"github.com/cutover/cutover/internal/core"
)

// Action is something a request does, checked against role bindings.
type Action string

// The actions. Each is granted by the roles in grants.
const (
	Read     Action = "read"    // status, history, releases, logs, config keys, events
	Build    Action = "build"   // build a commit
	Deploy   Action = "deploy"  // deploy a ref
	Promote  Action = "promote" // deploy what succeeded in the previous environment
	Rollback Action = "rollback"
	Confirm  Action = "confirm"
	Hold     Action = "hold"
	Lock     Action = "lock"
	Cancel   Action = "cancel"  // cancel a deployment
	Stop     Action = "stop"    // stop an environment
	Release  Action = "release" // cut, check, finish or abandon a release candidate
	Review   Action = "review"
	Approve  Action = "approve"
	Config   Action = "config"   // change config vars and secrets
	Apps     Action = "apps"     // add or remove apps
	Users    Action = "users"    // add and list users
	Tokens   Action = "tokens"   // create and revoke other users' tokens
	Policy   Action = "policy"   // change deploy policy
	Override Action = "override" // override a policy refusal
	Notify   Action = "notify"   // manage notification subscriptions and read their delivery log
)

// Actions lists every action, in the order of the table in docs/api.md.
var Actions = []Action{Read, Build, Deploy, Promote, Rollback, Confirm, Hold, Lock, Cancel, Stop, Release,
	Review, Approve, Config, Apps, Users, Tokens, Policy, Override, Notify}

var deployerActions = []Action{Build, Deploy, Promote, Rollback, Confirm, Hold, Lock, Cancel, Stop, Release}

// grants maps a role to the actions it allows. Deployers and approvers are
// viewers too; admin allows everything (see Grants).
var grants = map[core.Role][]Action{
	core.RoleViewer:   {Read},
	core.RoleDeployer: append([]Action{Read}, deployerActions...),
	core.RoleApprover: {Read, Review, Approve},
}

// Grants reports whether role allows action, whatever the scope.
func Grants(role core.Role, action Action) bool {
	if role == core.RoleAdmin {
		return true
	}
	for _, a := range grants[role] {
		if a == action {
			return true
		}
	}
	return false
}

// Needs is the least role that allows action.
func Needs(action Action) core.Role {
	for _, r := range []core.Role{core.RoleViewer, core.RoleDeployer, core.RoleApprover} {
		if Grants(r, action) {
			return r
		}
	}
	return core.RoleAdmin
}

// Can reports whether bindings allow action on app and env. app or env
// "*" asks for all of them, which only a "*" glob grants; env AnyEnv asks
// for some environment of app (what an app-wide read such as status or
// history needs). Deny by default: no binding, no access.
func Can(bindings []core.RoleBinding, action Action, app, env string) bool {
	for _, b := range bindings {
		if Grants(b.Role, action) && match(b.Apps, app) && (env == AnyEnv || match(b.Envs, env)) {
			return true
		}
	}
	return false
}

func match(glob, name string) bool {
	if glob == "" || glob == core.AnyScope {
		return true
	}
	ok, err := path.Match(glob, name)
	return err == nil && ok
}

// AnyEnv as the env of Can asks for some environment of the app.
const AnyEnv = ""

// Forbidden is the error of a refused action: it names what was asked, the
// role that would allow it and what the user has.
type Forbidden struct {
	User     string
	Bindings []core.RoleBinding
	Action   Action
	App, Env string
}

// Check returns a *Forbidden unless bindings allow action on app and env.
func Check(user string, bindings []core.RoleBinding, action Action, app, env string) error {
	if Can(bindings, action, app, env) {
		return nil
	}
	return &Forbidden{User: user, Bindings: bindings, Action: action, App: app, Env: env}
}

// Error reads "forbidden: deploying to hello/production needs the deployer
// role on app hello, env production; ann has viewer".
func (f *Forbidden) Error() string {
	has := "no role"
	if len(f.Bindings) > 0 {
		s := make([]string, len(f.Bindings))
		for i, b := range f.Bindings {
			s[i] = b.String()
		}
		has = strings.Join(s, " and ")
	}
	return fmt.Sprintf("forbidden: %s needs the %s role %s; %s has %s", Describe(f.Action, f.App, f.Env), Needs(f.Action), scope(f.App, f.Env), f.User, has)
}

func scope(app, env string) string {
	switch {
	case app == core.AnyScope && env == core.AnyScope:
		return "on every app and env"
	case env == core.AnyScope:
		return "on app " + app + ", every env"
	case env == AnyEnv:
		return "on app " + app + " (any env)"
	}
	return "on app " + app + ", env " + env
}

var verbs = map[Action]string{
	Read: "reading %s", Build: "building %s", Deploy: "deploying to %s", Promote: "promoting to %s",
	Rollback: "rolling back %s", Confirm: "confirming %s", Hold: "holding %s", Lock: "locking %s",
	Cancel: "cancelling a deployment of %s", Stop: "stopping %s", Release: "managing releases of %s",
	Review: "reviewing %s", Approve: "approving %s", Config: "changing the config of %s",
	Apps: "adding or removing apps", Users: "managing users", Tokens: "managing other users' tokens",
	Policy: "changing the policy of %s", Override: "overriding the policy of %s",
	Notify: "managing notifications of %s",
}

// Describe says what action on app and env is, as the start of a sentence:
// "deploying to hello/production", "reading all apps".
func Describe(action Action, app, env string) string {
	what := app + "/" + env
	switch {
	case app == core.AnyScope && env == core.AnyScope:
		what = "all apps"
	case env == core.AnyScope, env == AnyEnv:
		what = app
	}
	v, ok := verbs[action]
	if !ok {
		return string(action) + " " + what
	}
	if strings.Count(v, "%s") == 0 {
		return v
	}
	return fmt.Sprintf(v, what)
}
