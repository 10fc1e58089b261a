package deploy

import (
	"context"
	"time"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/manifest"
)

// Store is the persistence the deploy machine needs. Implementations live in
// internal/store/... and must return errors wrapping core.ErrNotFound,
// core.ErrConflict and core.ErrLocked where those apply.
type Store interface {
	// Apps.
	CreateApp(ctx context.Context, app core.App) error // ErrConflict if the name exists
	GetApp(ctx context.Context, name string) (core.App, error)
	ListApps(ctx context.Context) ([]core.App, error)

	// Artifacts are immutable. PutArtifact with an existing SHA and the same
	// digest is a no-op returning the stored record; a different digest
	// returns an error wrapping ErrConflict and changes nothing.
	PutArtifact(ctx context.Context, a core.Artifact) (core.Artifact, error)
	GetArtifact(ctx context.Context, app, sha string) (core.Artifact, error)
	ListArtifacts(ctx context.Context, app string, limit int) ([]core.Artifact, error)

	// Config versions. secrets holds plain values; the store encrypts them at
	// rest and only GetConfigSecrets returns them decrypted.
	PutConfig(ctx context.Context, app, env string, vars, secrets map[string]string) (core.ConfigVersion, error)
	GetConfig(ctx context.Context, app, env string, version int) (core.ConfigVersion, error) // version 0 = latest; a missing config is version 0 with no vars, not an error
	GetConfigSecrets(ctx context.Context, app, env string, version int) (map[string]string, error)

	// Releases are numbered per app by the store (1, 2, ...).
	CreateRelease(ctx context.Context, r core.Release) (core.Release, error)
	GetRelease(ctx context.Context, app string, number int) (core.Release, error)
	ListReleases(ctx context.Context, app string, limit int) ([]core.Release, error)

	// Deployments and the timeline.
	CreateDeployment(ctx context.Context, d core.Deployment) (core.Deployment, error) // assigns ID
	UpdateDeployment(ctx context.Context, d core.Deployment) error
	GetDeployment(ctx context.Context, id int64) (core.Deployment, error)
	// ListDeployments returns newest first; beforeID > 0 pages backwards; env "" means all.
	ListDeployments(ctx context.Context, app, env string, beforeID int64, limit int) ([]core.Deployment, error)
	// UnfinishedDeployments returns deployments in pending or running state, oldest first.
	UnfinishedDeployments(ctx context.Context) ([]core.Deployment, error)
	AppendEvent(ctx context.Context, e core.Event) (core.Event, error) // assigns ID
	// ListEvents returns events with ID > afterID, oldest first; app "" means all apps.
	ListEvents(ctx context.Context, app string, afterID int64, limit int) ([]core.Event, error)

	// Environment state.
	GetEnvState(ctx context.Context, app, env string) (core.EnvState, error) // a never-deployed env returns an empty state, not an error
	PutEnvState(ctx context.Context, s core.EnvState) error
	// ListEnvStates returns the recorded state of every environment of app, by name.
	ListEnvStates(ctx context.Context, app string) ([]core.EnvState, error)

	// Release candidates. CreateCandidate numbers it: a full release (Patch
	// 0 asked) gets the next Number; a patch (Patch > 0 asked) gets the
	// latest Number and the next Patch. It fails with ErrInvalid for a patch
	// when there is no full release yet.
	CreateCandidate(ctx context.Context, c core.Candidate) (core.Candidate, error)
	UpdateCandidate(ctx context.Context, c core.Candidate) error
	GetCandidate(ctx context.Context, app string, number, patch int) (core.Candidate, error)
	// ListCandidates returns newest first.
	ListCandidates(ctx context.Context, app string, limit int) ([]core.Candidate, error)

	// Checks record gate results; PutCheck replaces an earlier result.
	PutCheck(ctx context.Context, c core.Check) error
	GetCheck(ctx context.Context, app, sha, env, name string) (core.Check, error)

	// Locks: one deploy per environment. TryLock fails with an error wrapping
	// ErrLocked that names the holder when another holder has it.
	TryLock(ctx context.Context, app, env, holder string, ttl time.Duration) error
	Unlock(ctx context.Context, app, env, holder string) error
	LockHolder(ctx context.Context, app, env string) (holder string, err error) // "" when free

	Close() error
}

// Driver starts and stops the instances of a colour. Implementations live in
// internal/driver/... (process, docker, kubernetes).
type Driver interface {
	// Start starts spec.Count instances and returns them with their
	// addresses. If any instance fails to start, it stops the ones it
	// started and returns the error.
	Start(ctx context.Context, spec core.GroupSpec) ([]core.Instance, error)
	// Stop asks each instance to stop (SIGTERM or equivalent) and forces it
	// after grace. Stopping an instance that is already gone is not an error.
	Stop(ctx context.Context, instances []core.Instance, grace time.Duration) error
	// List returns every instance this driver has running, including ones
	// started before a server restart.
	List(ctx context.Context) ([]core.Instance, error)
}

// Router is the traffic switch the deploy machine drives (internal/proxy
// behind an adapter).
type Router interface {
	// Route makes spec.Targets the active set for spec.Service. It returns
	// once new requests go to the targets; the old set drains in the
	// background. The deploy machine has already health-checked them.
	Route(ctx context.Context, spec RouteSpec) error
	// Stats returns cumulative counters for the service's active set.
	Stats(service string) (RouteStats, error)
}

// RouteSpec is where an environment's traffic goes.
type RouteSpec struct {
	Service    string   // one per app and environment
	Listen     string   // the environment's public address (manifest listen)
	Host       string   // Host header to match; "" matches every host
	HealthPath string   // the proxy's own active checks use it
	Targets    []string // host:port of the live colour's instances
}

// RouteStats are cumulative counters the verification window compares.
type RouteStats struct {
	Requests   uint64
	Errors5xx  uint64
	ConnErrors uint64
}

// Gate checks a commit before it is promoted from one environment to the
// next (internal/release's backwards-compatibility gate is one). An error
// refuses the promotion and says why.
type Gate interface {
	BeforePromotion(ctx context.Context, app core.App, sha string, m *manifest.Manifest, from manifest.Environment) error
}
