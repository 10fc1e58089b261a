package deploy

import (
	"context"
	"io"
	"time"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/manifest"
)

// The store is split into the small interfaces each part of the machine
// needs; Store is their sum, which internal/store/... implement. Every
// method returns errors wrapping core.ErrNotFound, core.ErrConflict and
// core.ErrLocked where those apply, and core.ErrFenced when the writer no
// longer holds the server lease.

// AppStore records apps.
type AppStore interface {
	CreateApp(ctx context.Context, app core.App) error // ErrConflict if the name exists
	GetApp(ctx context.Context, name string) (core.App, error)
	ListApps(ctx context.Context) ([]core.App, error)
	// DeleteApp forgets an app and everything recorded for it but its
	// events (the timeline keeps its history); a missing app is ErrNotFound.
	DeleteApp(ctx context.Context, name string) error
}

// ArtifactStore records artifacts. They are immutable: PutArtifact with an
// existing SHA and the same digest is a no-op returning the stored record;
// a different digest returns an error wrapping ErrConflict and changes
// nothing.
type ArtifactStore interface {
	PutArtifact(ctx context.Context, a core.Artifact) (core.Artifact, error)
	GetArtifact(ctx context.Context, app, sha string) (core.Artifact, error)
	ListArtifacts(ctx context.Context, app string, limit int) ([]core.Artifact, error)
	// DeleteArtifact forgets an artifact the retention collected (its
	// files are gone); deleting a missing one is not an error.
	DeleteArtifact(ctx context.Context, app, sha string) error
}

// ConfigStore records config versions. secrets holds plain values; the
// store encrypts them at rest and only GetConfigSecrets returns them.
type ConfigStore interface {
	PutConfig(ctx context.Context, app, env string, vars, secrets map[string]string) (core.ConfigVersion, error)
	GetConfig(ctx context.Context, app, env string, version int) (core.ConfigVersion, error) // version 0 = latest; a missing config is version 0 with no vars, not an error
	GetConfigSecrets(ctx context.Context, app, env string, version int) (map[string]string, error)
}

// ReleaseStore records releases, numbered per app by the store (1, 2, ...).
type ReleaseStore interface {
	CreateRelease(ctx context.Context, r core.Release) (core.Release, error)
	GetRelease(ctx context.Context, app string, number int) (core.Release, error)
	ListReleases(ctx context.Context, app string, limit int) ([]core.Release, error)
}

// DeploymentStore records deployments.
type DeploymentStore interface {
	CreateDeployment(ctx context.Context, d core.Deployment) (core.Deployment, error) // assigns ID
	UpdateDeployment(ctx context.Context, d core.Deployment) error
	GetDeployment(ctx context.Context, id int64) (core.Deployment, error)
	// ListDeployments returns newest first; beforeID > 0 pages backwards; env "" means all.
	ListDeployments(ctx context.Context, app, env string, beforeID int64, limit int) ([]core.Deployment, error)
	// UnfinishedDeployments returns deployments in waiting, pending or running state, oldest first.
	UnfinishedDeployments(ctx context.Context) ([]core.Deployment, error)
}

// EventStore is the timeline, read as an outbox: events are numbered in
// the order they were appended, and a consumer keeps its position in a
// named cursor.
type EventStore interface {
	AppendEvent(ctx context.Context, e core.Event) (core.Event, error) // assigns ID
	// ListEvents returns events with ID > afterID, oldest first; app "" means all apps.
	ListEvents(ctx context.Context, app string, afterID int64, limit int) ([]core.Event, error)
	// LastEvent returns app's newest event of one of types (ok false when
	// there is none).
	LastEvent(ctx context.Context, app string, types ...core.EventType) (e core.Event, ok bool, err error)
	// GetCursor returns a consumer's position (0 for a new consumer).
	GetCursor(ctx context.Context, name string) (int64, error)
	// PutCursor records a consumer's position.
	PutCursor(ctx context.Context, name string, position int64) error
}

// EnvStateStore records environment state. PutEnvState is a
// compare-and-swap: it succeeds only when st.Version is the stored version
// (0 for a new environment) and stores st with Version+1; otherwise it
// fails with an error wrapping ErrConflict and changes nothing.
type EnvStateStore interface {
	GetEnvState(ctx context.Context, app, env string) (core.EnvState, error) // a never-deployed env returns an empty state, not an error
	PutEnvState(ctx context.Context, st core.EnvState) (core.EnvState, error)
	// ListEnvStates returns the recorded state of every environment of app, by name.
	ListEnvStates(ctx context.Context, app string) ([]core.EnvState, error)
}

// LockStore holds environment locks: one deploy per environment. TryLock
// fails with an error wrapping ErrLocked that names the holder when
// another holder has it; the holder renews it by calling TryLock again.
type LockStore interface {
	TryLock(ctx context.Context, app, env, holder string, ttl time.Duration) error
	Unlock(ctx context.Context, app, env, holder string) error
	LockHolder(ctx context.Context, app, env string) (holder string, err error) // "" when free
}

// GovernanceStore holds what people and CI say about commits and
// environments: CI results, reviews, approvals, locks, and the server-side
// policy (versioned). The policy and lock gates read it.
type GovernanceStore interface {
	PutCommitStatus(ctx context.Context, c core.CommitStatus) error
	CommitStatuses(ctx context.Context, app, sha string) ([]core.CommitStatus, error)
	PutReview(ctx context.Context, r core.Review) error
	Reviews(ctx context.Context, app, sha string) ([]core.Review, error)
	PutApproval(ctx context.Context, a core.Approval) error
	Approvals(ctx context.Context, app, env string) ([]core.Approval, error)
	PutEnvLock(ctx context.Context, l core.EnvLock) error
	EnvLock(ctx context.Context, app, env string) (core.EnvLock, error) // ErrNotFound when unlocked
	DeleteEnvLock(ctx context.Context, app, env string) error           // ErrNotFound when unlocked
	PutPolicy(ctx context.Context, p core.PolicyVersion) (core.PolicyVersion, error)
	Policy(ctx context.Context, app string) (core.PolicyVersion, error) // the latest; ErrNotFound when none
}

// Store is everything the deploy machine persists.
type Store interface {
	AppStore
	ArtifactStore
	ConfigStore
	ReleaseStore
	DeploymentStore
	EventStore
	EnvStateStore
	LockStore
}

// Driver runs the instances of a colour and the one-off tasks of a
// release. Implementations live in internal/driver/... (process today,
// docker and kubernetes next); internal/driver/drivertest is the suite
// each passes.
type Driver interface {
	// Start starts spec.Count instances and returns them. If any instance
	// fails to start, it stops the ones it started and returns the error.
	Start(ctx context.Context, spec core.GroupSpec) ([]core.Instance, error)
	// Stop asks each instance to stop (SIGTERM or equivalent) and forces it
	// after grace. Stopping an instance that is already gone is not an error.
	Stop(ctx context.Context, instances []core.Instance, grace time.Duration) error
	// List returns every instance this driver has running, including ones
	// started before a server restart.
	List(ctx context.Context) ([]core.Instance, error)
	// RunTask runs a one-off command of a release to completion (the
	// migration: a child process, a `docker run --rm`, a Kubernetes Job),
	// writing its combined output to out. A non-zero exit is an error
	// that says the exit status.
	RunTask(ctx context.Context, spec core.TaskSpec, out io.Writer) error
	// Logs writes the end of an instance's output (at most maxBytes; 0 =
	// all the driver keeps) to w.
	Logs(ctx context.Context, in core.Instance, maxBytes int64, w io.Writer) error
	// Probe makes one HTTP request to an instance, from wherever the
	// driver can reach it (pod addresses are not reachable from the
	// control plane), and reads at most maxBody bytes of the answer.
	Probe(ctx context.Context, in core.Instance, req core.ProbeRequest) (core.ProbeResult, error)
	// Exited reports whether an instance is known to have exited, and how.
	Exited(ctx context.Context, in core.Instance) (status string, exited bool)
}

// Pruner is implemented by drivers whose stopped instances leave things
// behind (containers and images on Docker hosts). The retention calls it
// for each app with the artifacts that must stay: what belongs to any
// other artifact of the app may go.
type Pruner interface {
	Prune(ctx context.Context, app string, keep func(artifactRef string) bool) (removed int, err error)
}

// PlacementChecker is implemented by drivers that place instances on
// named hosts: a deployment whose environment names one the server does
// not know is refused in the request, before anything is built.
type PlacementChecker interface {
	CheckPlacement(ctx context.Context, opts core.RuntimeOptions) error
}

// Router is the traffic switch the deploy machine drives (internal/proxy
// behind an adapter).
type Router interface {
	// Route makes spec's targets the active set for spec.Service. It
	// returns once new requests go to them; the old set drains in the
	// background. The deploy machine has already health-checked them.
	Route(ctx context.Context, spec RouteSpec) error
	// Stats returns cumulative counters for the service's active set.
	Stats(ctx context.Context, service string) (RouteStats, error)
	// Remove stops routing the service (an environment taken out of
	// service). Removing a service that is not routed is not an error.
	Remove(ctx context.Context, service string) error
}

// RouteSpec is where an environment's traffic goes: a colour running a
// release, reached at Targets (host:port) when the runtime gives
// addresses, or by the colour's name when it routes itself (Kubernetes).
type RouteSpec struct {
	Service    string // one per app and environment
	Listen     string // the environment's public address (manifest listen)
	Host       string // Host header to match; "" matches every host
	HealthPath string // the proxy's own active checks use it
	Colour     core.Colour
	Release    int
	Targets    []string // host:port of the colour's instances; may be empty
}

// RouteStats are cumulative counters the verification window compares.
type RouteStats struct {
	Requests   uint64
	Errors5xx  uint64
	ConnErrors uint64
}

// Builder turns a commit into an artifact (internal/build) and reads back
// what an artifact holds.
type Builder interface {
	// Build builds sha once; a second call returns the stored artifact.
	// Concurrent calls for one SHA share one build, which a cancelled
	// caller does not cancel.
	Build(ctx context.Context, app core.App, sha string, logw io.Writer) (core.Artifact, *manifest.Manifest, error)
	// Manifest returns the manifest an artifact was built with.
	Manifest(ctx context.Context, a core.Artifact) (*manifest.Manifest, error)
	// Remove deletes an artifact's files (the retention collects
	// artifacts no rollback can target any more).
	Remove(ctx context.Context, a core.Artifact) error
}

// ArtifactChecker is implemented by builders whose artifacts can vanish
// outside cutover (an image pruned from every host and deleted from the
// registry). A deployment of an earlier release (a rollback) asks first,
// so one whose artifact is gone is refused before traffic moves.
type ArtifactChecker interface {
	Available(ctx context.Context, a core.Artifact) error
}

// Source answers questions about an app's repository (internal/gitx).
type Source interface {
	ResolveCommit(ctx context.Context, repo, ref string) (string, error)
	// ReadFile returns a file of a commit without checking it out (the
	// manifest, read before anything is built).
	ReadFile(ctx context.Context, repo, sha, path string) ([]byte, error)
	// Log lists the commits reachable from to but not from from ("" = all),
	// newest first (the authors a review may not come from).
	Log(ctx context.Context, repo, from, to string) ([]core.Commit, error)
}

// Publisher records events in the timeline. Every part that has something
// to say (deploy, release, later policy) publishes through one.
type Publisher interface {
	Publish(ctx context.Context, e core.Event)
}

// Verdict is a gate's answer.
type Verdict string

// Verdicts.
const (
	Allow Verdict = "allow"
	Deny  Verdict = "deny"
	Wait  Verdict = "wait"
)

// Decision is what a gate decides for one deployment: allow it, deny it
// with a reason, or make it wait (for a named condition, or until a time).
type Decision struct {
	Verdict Verdict
	Reason  string    // why it is denied, or what it waits for
	Until   time.Time // for Wait: when to ask again at the latest; zero = at every tick
	// Asks is, for Wait, what people are asked for (an approval or a
	// review, with the command to give it): the deployment records an
	// approval.requested event when it starts waiting.
	Asks string
}

// Allowed is the decision that lets a deployment through.
func Allowed() Decision { return Decision{Verdict: Allow} }

// Denied refuses a deployment.
func Denied(reason string) Decision { return Decision{Verdict: Deny, Reason: reason} }

// Waiting makes a deployment wait on a condition.
func Waiting(on string, until time.Time) Decision {
	return Decision{Verdict: Wait, Reason: on, Until: until}
}

// GateInput is what a gate decides on.
type GateInput struct {
	App        core.App
	Deployment core.Deployment // Kind, Env, SHA, Release, RequestedBy
	Manifest   *manifest.Manifest
	Env        manifest.Environment // the target environment
	// From is the environment Env promotes from, when it has one.
	From *manifest.Environment
}

// Gate decides whether a deployment may enter its environment's queue.
// Gates run before the deployment is queued and again at every tick while
// it waits; a rollback is exempt (it must always be possible). The
// promotion chain is one gate; internal/release's backwards-compatibility
// check is another; policy (approvals, windows) comes next.
type Gate interface {
	Name() string
	Decide(ctx context.Context, in GateInput) (Decision, error)
}
