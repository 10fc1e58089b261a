// Package core holds cutover's domain types: apps, commits, artifacts,
// config versions, releases, environments, deployments and events.
// It is pure Go with no I/O and imports no other internal package.
package core

import (
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Sentinel errors that callers branch on. Storage and transport layers wrap
// these so that the API can map them to status codes.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	ErrLocked   = errors.New("environment locked")
	ErrInvalid  = errors.New("invalid input")
	// ErrBuildFailed means the app's own build did not succeed (its
	// command failed or timed out, or the artifact is too large): a
	// failure of the commit, not of cutover.
	ErrBuildFailed = errors.New("build failed")
	// ErrFenced means a write came from a server that no longer holds the
	// server lease: another server took over, and this one must stop.
	ErrFenced = errors.New("server lease lost")
	// ErrStandby means this server does not hold the lease: another server
	// runs the environments, and mutations go there.
	ErrStandby = errors.New("not the active server")
)

// namePattern bounds app and environment names: they end up in file paths,
// process environments and URLs, so only a safe alphabet is accepted.
var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// shaPattern matches a full hexadecimal git object name (SHA-1 or SHA-256).
var shaPattern = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)

// ValidateName checks an app or environment name and returns an error that
// names the field and the offending value.
func ValidateName(field, value string) error {
	if !namePattern.MatchString(value) {
		return fmt.Errorf("%w: %s %q: use 1-63 lower-case letters, digits, '-' or '_', starting with a letter or digit", ErrInvalid, field, value)
	}
	return nil
}

// ValidateSHA checks a full commit SHA.
func ValidateSHA(field, value string) error {
	if !shaPattern.MatchString(value) {
		return fmt.Errorf("%w: %s %q: want a full lower-case hex commit SHA", ErrInvalid, field, value)
	}
	return nil
}

// ShortSHA returns the first 12 characters of a SHA for display.
func ShortSHA(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// App is a deployable service backed by a git repository holding a cutover.yml.
type App struct {
	Name      string    `json:"name"`
	Repo      string    `json:"repo"`
	CreatedAt time.Time `json:"created_at"`
}

// Commit is one git commit as cutover records it.
type Commit struct {
	SHA     string    `json:"sha"`
	Author  string    `json:"author"`
	Email   string    `json:"email"`
	Subject string    `json:"subject"`
	Body    string    `json:"body,omitempty"`
	Time    time.Time `json:"time"`
	Parents []string  `json:"parents,omitempty"`
}

// Artifact is the output of building one commit. It is built once per SHA and
// is immutable: a second build of the same SHA is a no-op, and a different
// digest under an existing SHA is refused.
type Artifact struct {
	App    string `json:"app"`
	SHA    string `json:"sha"`
	Digest string `json:"digest"` // "sha256:<hex>" over the artifact's files
	// Ref is where the runtime finds the built artifact: a directory for
	// the process driver, an image reference (name@digest) for containers.
	Ref       string    `json:"ref"`
	Size      int64     `json:"size"`
	BuildLog  string    `json:"build_log,omitempty"` // path of the captured build log
	CreatedAt time.Time `json:"created_at"`
}

// ConfigVersion is one numbered set of settings for an app in an environment.
// Secret values are never part of this struct: only their names are, and the
// store keeps the values encrypted.
type ConfigVersion struct {
	App        string            `json:"app"`
	Env        string            `json:"env"`
	Version    int               `json:"version"`
	Vars       map[string]string `json:"vars"`
	SecretKeys []string          `json:"secret_keys,omitempty"`
	CreatedAt  time.Time         `json:"created_at"`
}

// Release is an artifact combined with a config version, numbered per app
// (v1, v2, ...). Releases are never deleted while any deployment refers to
// them, so every rollback target stays available.
type Release struct {
	App           string    `json:"app"`
	Number        int       `json:"number"`
	Env           string    `json:"env"`
	SHA           string    `json:"sha"`
	Digest        string    `json:"digest"`
	ConfigVersion int       `json:"config_version"`
	CreatedAt     time.Time `json:"created_at"`
}

// Label renders a release for people: "v12 (3dffdc17a1b2)".
func (r Release) Label() string {
	return fmt.Sprintf("#%d (%s)", r.Number, ShortSHA(r.SHA))
}

// Colour names one of an environment's two slots.
type Colour string

// The two colours of a blue/green environment.
const (
	Blue  Colour = "blue"
	Green Colour = "green"
)

// Other returns the opposite colour.
func (c Colour) Other() Colour {
	if c == Blue {
		return Green
	}
	return Blue
}

// Valid reports whether c is blue or green.
func (c Colour) Valid() bool { return c == Blue || c == Green }

// Lease says which server is active: the one that recovers, ticks and runs
// environment queues when several servers share one database. Generation
// grows at every takeover; the store refuses writes that carry an older one.
type Lease struct {
	Name       string    `json:"name"`
	Owner      string    `json:"owner"`
	Generation int64     `json:"generation"`
	ExpiresAt  time.Time `json:"expires_at"` // by the database's clock
}

// LeaseHeldError says another server holds the lease.
type LeaseHeldError struct {
	Owner     string
	ExpiresAt time.Time
}

func (e *LeaseHeldError) Error() string {
	return fmt.Sprintf("the active server is %s (lease until %s)", e.Owner, e.ExpiresAt.Format(time.RFC3339))
}

// Unwrap makes errors.Is(err, ErrStandby) true.
func (e *LeaseHeldError) Unwrap() error { return ErrStandby }
