package core

import "time"

// DeploymentKind says why a deployment exists.
type DeploymentKind string

// Deployment kinds. A rollback and an automatic revert are deployments too,
// so the timeline records every change of what serves traffic.
const (
	KindDeploy   DeploymentKind = "deploy"   // a release requested by a person or CI
	KindRollback DeploymentKind = "rollback" // back to an earlier release, on request
	KindRevert   DeploymentKind = "revert"   // the failed standby colour reverted to the last good release
	KindConfirm  DeploymentKind = "confirm"  // the standby colour brought to the confirmed release
	KindStop     DeploymentKind = "stop"     // the environment taken out of service: route removed, instances stopped
	KindPromote  DeploymentKind = "promote"  // the artifact live in the previous environment, with this one's config
	KindRecycle  DeploymentKind = "recycle"  // the live artifact with the environment's latest config; no migration
	KindHotfix   DeploymentKind = "hotfix"   // a commit that skips cd on another person's approval
)

// DeploymentState is where a deployment stands.
type DeploymentState string

// Deployment states. Waiting, Pending and Running are the only non-terminal states.
const (
	StateWaiting    DeploymentState = "waiting" // recorded, waiting on a condition before it may enter the queue
	StatePending    DeploymentState = "pending"
	StateRunning    DeploymentState = "running"
	StateSucceeded  DeploymentState = "succeeded"
	StateFailed     DeploymentState = "failed"      // failed before the switch; the old release kept serving
	StateRolledBack DeploymentState = "rolled_back" // switched, then switched back automatically
	StateNoop       DeploymentState = "noop"        // the release was already live
	StateCancelled  DeploymentState = "cancelled"
)

// Terminal reports whether the state is final.
func (s DeploymentState) Terminal() bool {
	return s != StateWaiting && s != StatePending && s != StateRunning
}

// Step names one step of the deploy state machine, in order.
type Step string

// Deploy steps. Each is persisted before it runs so a restarted server knows
// whether traffic had already moved.
const (
	StepBuild      Step = "build" // the commit is being built (once per SHA, shared)
	StepGates      Step = "gates" // gates decide: allow, deny, or wait
	StepQueued     Step = "queued"
	StepLock       Step = "lock"
	StepMigrate    Step = "migrate"
	StepStart      Step = "start"
	StepHealth     Step = "health"
	StepSmoke      Step = "smoke"
	StepSwitch     Step = "switch"
	StepVerify     Step = "verify"
	StepLive       Step = "live"
	StepSwitchBack Step = "switch_back"
	StepDone       Step = "done"
)

// Switched reports whether traffic may already have moved at this step.
func (s Step) Switched() bool {
	switch s {
	case StepSwitch, StepVerify, StepLive, StepSwitchBack, StepDone:
		return true
	}
	return false
}

// Deployment is one persisted run of the deploy state machine.
type Deployment struct {
	ID              int64           `json:"id"`
	App             string          `json:"app"`
	Env             string          `json:"env"`
	Kind            DeploymentKind  `json:"kind"`
	Release         int             `json:"release"`          // the release being deployed
	PreviousRelease int             `json:"previous_release"` // the release live when it started (0 if none)
	SHA             string          `json:"sha"`
	Colour          Colour          `json:"colour,omitempty"` // the colour the release is started in
	State           DeploymentState `json:"state"`
	Step            Step            `json:"step"`
	Reason          string          `json:"reason,omitempty"` // why it failed or was rolled back
	RequestedBy     string          `json:"requested_by,omitempty"`
	// WaitingOn names what a waiting deployment waits for (an approval, a
	// check, a window); WaitUntil is when it is admitted at the latest
	// re-evaluation, if the condition is a time.
	WaitingOn string     `json:"waiting_on,omitempty"`
	WaitUntil *time.Time `json:"wait_until,omitempty"`
	// ReplaceHeld lets the deployment replace a failed colour that is held
	// for investigation; without it, such a deployment is refused.
	ReplaceHeld bool `json:"replace_held,omitempty"`
	// Options say how the deployment asked to be judged by the policy.
	Options DeployOptions `json:"options,omitzero"`
	// Instances are the IDs of the instances this deployment started:
	// their logs stay readable after they stop (cutover logs --deployment).
	Instances  []string   `json:"instances,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	SwitchedAt *time.Time `json:"switched_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

// SlotState is what a colour is doing in an environment.
type SlotState string

// Slot states.
const (
	SlotEmpty    SlotState = "empty"
	SlotStarting SlotState = "starting"
	SlotLive     SlotState = "live"
	SlotStandby  SlotState = "standby" // previous release, warm, no traffic
	SlotFailed   SlotState = "failed"  // failed release kept for investigation, no traffic
)

// Slot is one colour of an environment and the instances running in it.
type Slot struct {
	Colour    Colour     `json:"colour"`
	State     SlotState  `json:"state"`
	Release   int        `json:"release,omitempty"`
	Instances []Instance `json:"instances,omitempty"`
	// Until is when a standby slot is scaled in, or a failed slot is
	// reverted to the last good release; zero means never.
	Until time.Time `json:"until,omitempty"`
	// HeldUntil postpones the automatic revert of a failed slot.
	HeldUntil time.Time `json:"held_until,omitempty"`
}

// EnvState is the persisted picture of an environment: which colour is live,
// what each colour runs, and which release was last confirmed good.
type EnvState struct {
	App       string           `json:"app"`
	Env       string           `json:"env"`
	Live      Colour           `json:"live,omitempty"`
	Slots     map[Colour]*Slot `json:"slots"`
	Verified  int              `json:"verified,omitempty"` // last release confirmed by a person
	UpdatedAt time.Time        `json:"updated_at"`
	// Version counts writes; the store refuses a write based on an older
	// version (compare-and-swap), so two writers never overwrite each other.
	Version int64 `json:"version"`
}

// LiveRelease returns the release number serving traffic, or 0.
func (s *EnvState) LiveRelease() int {
	if s == nil || s.Live == "" {
		return 0
	}
	if sl := s.Slots[s.Live]; sl != nil && sl.State == SlotLive {
		return sl.Release
	}
	return 0
}

// Slot returns the slot for c, creating an empty one if needed.
func (s *EnvState) Slot(c Colour) *Slot {
	if s.Slots == nil {
		s.Slots = map[Colour]*Slot{}
	}
	sl := s.Slots[c]
	if sl == nil {
		sl = &Slot{Colour: c, State: SlotEmpty}
		s.Slots[c] = sl
	}
	return sl
}

// GroupSpec asks a runtime driver to start the instances of one colour.
type GroupSpec struct {
	App      string            `json:"app"`
	Env      string            `json:"env"`
	Colour   Colour            `json:"colour"`
	Release  int               `json:"release"`
	Count    int               `json:"count"`
	Artifact string            `json:"artifact"` // core.Artifact.Ref: what to run
	Command  []string          `json:"command"`  // argv, run without a shell
	Environ  map[string]string `json:"environ"`  // extra environment; the driver adds PORT
	// Secrets are added to the environment like Environ but never logged or persisted by drivers.
	Secrets map[string]string `json:"-"`
	// Runtime says which runtime runs the group and, for containers,
	// where and with what limits (the manifest's runtime and docker keys).
	Runtime RuntimeOptions `json:"runtime"`
}

// Runtimes an app may run on (the manifest's runtime key).
const (
	RuntimeProcess = "process" // local child processes, the default
	RuntimeDocker  = "docker"  // containers on one or several Docker hosts
)

// RuntimeOptions is what a container runtime needs beyond argv and
// environment. The process driver ignores it.
type RuntimeOptions struct {
	Kind  string   `json:"kind,omitempty"`  // RuntimeProcess ("" too) or RuntimeDocker
	Hosts []string `json:"hosts,omitempty"` // named Docker hosts (server config); empty = the default host
	// Port is the port the app listens on inside its container; the
	// driver sets PORT to it and publishes it on the host's loopback.
	Port    int     `json:"port,omitempty"`
	Memory  int64   `json:"memory,omitempty"`  // bytes; 0 = no limit
	CPUs    float64 `json:"cpus,omitempty"`    // 0 = no limit
	Restart string  `json:"restart,omitempty"` // no | on-failure | unless-stopped | always
}

// Instance is one running copy of a release, as a driver reports it.
type Instance struct {
	ID        string    `json:"id"`
	App       string    `json:"app"`
	Env       string    `json:"env"`
	Colour    Colour    `json:"colour"`
	Release   int       `json:"release"`
	Addr      string    `json:"addr"` // host:port the proxy reaches; "" when the runtime routes by name
	StartedAt time.Time `json:"started_at"`
	// Data is the driver's own record of the instance (a PID, a container
	// or pod name); only the driver that started it reads it.
	Data map[string]string `json:"data,omitempty"`
}

// TaskSpec asks a runtime driver to run a one-off command of a release to
// completion (a migration) with the release's environment.
type TaskSpec struct {
	App      string            `json:"app"`
	Env      string            `json:"env"`
	Release  int               `json:"release"`
	Name     string            `json:"name"` // "migrate"
	Artifact string            `json:"artifact"`
	Command  []string          `json:"command"` // argv, run without a shell
	Environ  map[string]string `json:"environ"`
	Secrets  map[string]string `json:"-"`
	Timeout  time.Duration     `json:"timeout"`
	Runtime  RuntimeOptions    `json:"runtime"` // the first of Runtime.Hosts runs it
}

// ProbeRequest is one HTTP request the deploy machine makes to an
// instance (a health or smoke check), through the driver.
type ProbeRequest struct {
	Method  string
	Path    string
	Timeout time.Duration
	MaxBody int64
}

// ProbeResult is an instance's answer to a probe.
type ProbeResult struct {
	Status int
	Body   []byte
}

// DeployOptions are what a deployment asked of the policy: an override of
// the rules (with a reason, for those allowed to), a hotfix (approval by
// another person instead of cd), or to wait for a deploy window or for
// missing approvals and checks instead of being refused.
type DeployOptions struct {
	Override        bool   `json:"override,omitempty"`
	Hotfix          bool   `json:"hotfix,omitempty"`
	Reason          string `json:"reason,omitempty"` // why the override or the hotfix
	WhenAllowed     bool   `json:"when_allowed,omitempty"`
	WaitForApproval bool   `json:"wait_for_approval,omitempty"`
}
