package core

import (
	"fmt"
	"path"
	"strings"
	"time"
)

// Role is what a user may do within a binding's scope.
type Role string

// The roles, from least to most.
const (
	RoleViewer   Role = "viewer"   // reads status, history, logs, config keys, events
	RoleDeployer Role = "deployer" // a viewer who builds, deploys, rolls back, confirms, holds, stops, cancels
	RoleApprover Role = "approver" // a viewer who reviews and approves
	RoleAdmin    Role = "admin"    // everything: users, tokens, policy, overrides, apps, config
)

// Roles lists every role, for validation and help texts.
var Roles = []Role{RoleViewer, RoleDeployer, RoleApprover, RoleAdmin}

// AdminUser is the built-in user that owns the server's own token
// (DATA_DIR/api-token or CUTOVER_TOKEN).
const AdminUser = "admin"

// AnyScope is the glob a binding gets for an app or environment left out.
const AnyScope = "*"

// RoleBinding grants Role on the apps and environments whose names match
// the path.Match globs Apps and Envs.
type RoleBinding struct {
	Role Role   `json:"role"`
	Apps string `json:"apps"`
	Envs string `json:"envs"`
}

// String reads "deployer on app hello, env prod*" ("deployer" when global).
func (b RoleBinding) String() string {
	if b.Apps == AnyScope && b.Envs == AnyScope {
		return string(b.Role)
	}
	return fmt.Sprintf("%s on app %s, env %s", b.Role, b.Apps, b.Envs)
}

// User is a person (or a robot) who calls the API with a token.
type User struct {
	Name      string        `json:"name"`
	Email     string        `json:"email,omitempty"`
	Bindings  []RoleBinding `json:"bindings"`
	CreatedAt time.Time     `json:"created_at"`
}

// Token is an API token's metadata; the secret itself is shown once when
// created and stored only as a hash.
type Token struct {
	ID        string     `json:"id"`
	User      string     `json:"user"`
	CreatedAt time.Time  `json:"created_at"`
	LastUsed  *time.Time `json:"last_used,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// ValidateRole checks a role name.
func ValidateRole(r Role) error {
	for _, x := range Roles {
		if r == x {
			return nil
		}
	}
	return fmt.Errorf("%w: role %q: want one of viewer, deployer, approver, admin", ErrInvalid, r)
}

// ValidateGlob checks an app or environment glob (path.Match syntax).
func ValidateGlob(field, glob string) error {
	if glob == "" || len(glob) > 128 || strings.ContainsAny(glob, "/ \t\n") {
		return fmt.Errorf("%w: %s %q: want a name or a glob such as * or prod-* (no '/' or spaces)", ErrInvalid, field, glob)
	}
	if _, err := path.Match(glob, ""); err != nil {
		return fmt.Errorf("%w: %s %q: %v (globs use *, ? and [...])", ErrInvalid, field, glob, err)
	}
	return nil
}

// Validate checks a binding, filling empty globs with AnyScope.
func (b *RoleBinding) Validate() error {
	if b.Apps == "" {
		b.Apps = AnyScope
	}
	if b.Envs == "" {
		b.Envs = AnyScope
	}
	if err := ValidateRole(b.Role); err != nil {
		return err
	}
	if err := ValidateGlob("apps", b.Apps); err != nil {
		return err
	}
	return ValidateGlob("envs", b.Envs)
}

// ValidateEmail checks an email address loosely: one @, no spaces.
func ValidateEmail(email string) error {
	at := strings.IndexByte(email, '@')
	if len(email) > 254 || at <= 0 || at != strings.LastIndexByte(email, '@') || at == len(email)-1 || strings.ContainsAny(email, " \t\r\n<>,;") {
		return fmt.Errorf("%w: email %q: want an address such as ann@example.com", ErrInvalid, email)
	}
	return nil
}
