// Package manifest reads and validates cutover.yml, the file at the root of an
// app's repository that tells cutover how to build, run, check and promote it.
package manifest

import (
	"time"

	"github.com/cutover/cutover/internal/core"
)

// FileName is the manifest's name at the repository root.
const FileName = "cutover.yml"

// Defaults, one place for every knob. They are documented in docs/manifest.md.
const (
	DefaultBuildTimeout   = 10 * time.Minute
	DefaultInstances      = 1
	DefaultHealthPath     = "/up"
	DefaultHealthInterval = 1 * time.Second
	DefaultHealthTimeout  = 2 * time.Second
	DefaultHealthDeadline = 60 * time.Second
	DefaultMigrateTimeout = 5 * time.Minute
	DefaultSmokeTimeout   = 5 * time.Second
	DefaultVerifyFor      = 10 * time.Second
	DefaultMaxErrorRate   = 0.01 // share of 5xx + connection errors in the verification window
	DefaultMinRequests    = 10   // fewer live requests than this do not judge the error rate
	MaxMinRequests        = 1_000_000
	DefaultStandbyFor     = 15 * time.Minute
	DefaultScaleInDelay   = 15 * time.Minute
	DefaultInvestigateFor = 30 * time.Minute
	DefaultStopGrace      = 10 * time.Second
	DefaultOnConfirm      = OnConfirmSync
	MaxInstances          = 64
	MaxManifestBytes      = 256 << 10
	DefaultMainLine       = "main"
	DefaultProductionLine = "stages/prod"
	DefaultBranchPrefix   = "stages/rc-"
	DefaultTagPrefix      = "v"
	DefaultCompatTimeout  = 5 * time.Minute

	DefaultRuntime       = RuntimeProcess
	DefaultDockerfile    = "Dockerfile"
	DefaultDockerContext = "."
	DefaultDockerPort    = 8080
	DefaultDockerRestart = "unless-stopped"
	DefaultDockerKeep    = 5 // releases per environment whose images and stopped containers stay
	MaxDockerKeep        = 100
	MaxDockerHosts       = 16
)

// Runtimes (the runtime key): core's names.
const (
	RuntimeProcess = core.RuntimeProcess
	RuntimeDocker  = core.RuntimeDocker
)

// What to do with the standby colour when a person confirms a live release.
const (
	OnConfirmSync    = "sync"     // bring the standby colour to the confirmed release, warm
	OnConfirmScaleIn = "scale_in" // stop the standby colour
)

// Manifest is a parsed and validated cutover.yml with defaults applied.
type Manifest struct {
	App string `yaml:"app"` // optional; informational
	// Runtime is where instances run: process (local child processes,
	// the default) or docker (an image built per commit, containers).
	Runtime string `yaml:"runtime"`
	Docker  Docker `yaml:"docker"` // for runtime docker
	Build   Build  `yaml:"build"`
	Run     Run    `yaml:"run"`
	// Health is the gate an instance must pass before it gets traffic.
	Health  Health   `yaml:"health"`
	Smoke   []Smoke  `yaml:"smoke"`
	Migrate *Migrate `yaml:"migrate"`
	Verify  Verify   `yaml:"verify"`
	// StandbyFor is how long the old colour stays warm after a switch
	// before it is scaled in (the seeds' "scale-in delay"). ScaleInDelay is
	// accepted as an alias; giving both is an error.
	StandbyFor     time.Duration `yaml:"standby_for"`
	ScaleInDelay   time.Duration `yaml:"scale_in_delay"`
	InvestigateFor time.Duration `yaml:"investigate_for"` // a failed colour is reverted after this
	OnConfirm      string        `yaml:"on_confirm"`      // sync | scale_in
	StopGrace      time.Duration `yaml:"stop_grace"`
	// Release says how release candidates are cut, merged and tagged.
	Release ReleaseLines `yaml:"release"`
	// Compat is the backwards-compatibility gate (nil: none).
	Compat *Compat `yaml:"compat"`
	// Environments in promotion order; Env(name) finds one.
	Environments []Environment `yaml:"-"`
}

// Docker says how an app with runtime docker is built into an image and
// run as containers. Hosts are per environment (Environment.Docker).
type Docker struct {
	File    string  `yaml:"file"`    // the Dockerfile, relative to Context (default Dockerfile)
	Context string  `yaml:"context"` // the build context, relative to the repository root after build.command ran (default .)
	Port    int     `yaml:"port"`    // the port the app listens on in its container; PORT is set to it (default 8080)
	Memory  int64   `yaml:"memory"`  // bytes (written 256m, 1g); 0 = no limit
	CPUs    float64 `yaml:"cpus"`    // 0 = no limit
	Restart string  `yaml:"restart"` // the engine's restart policy: no, on-failure, unless-stopped (default), always
	Keep    int     `yaml:"keep"`    // releases per environment whose images and stopped containers are kept (default 5)
}

// Build says how to turn a clean checkout of a commit into an artifact.
type Build struct {
	Command []string      `yaml:"command"` // argv, no shell; a string is split on spaces
	Timeout time.Duration `yaml:"timeout"`
}

// Run says how to start one instance. PORT is set by cutover.
type Run struct {
	Command []string          `yaml:"command"`
	Env     map[string]string `yaml:"env"`
}

// Health is the active HTTP health check.
type Health struct {
	Path     string        `yaml:"path"`
	Interval time.Duration `yaml:"interval"`
	Timeout  time.Duration `yaml:"timeout"`  // per request; never more than Deadline
	Deadline time.Duration `yaml:"deadline"` // an instance not healthy by then fails the deploy
}

// Smoke is one request made against the new colour directly before the switch.
type Smoke struct {
	Name         string        `yaml:"name"`
	Method       string        `yaml:"method"` // default GET
	Path         string        `yaml:"path"`
	Status       int           `yaml:"status"`        // default 200
	BodyContains string        `yaml:"body_contains"` // optional
	Timeout      time.Duration `yaml:"timeout"`
}

// Migrate runs once per deploy, before the new colour starts.
type Migrate struct {
	Command []string      `yaml:"command"`
	Timeout time.Duration `yaml:"timeout"`
}

// Verify watches live traffic after the switch.
type Verify struct {
	For          time.Duration `yaml:"for"`
	MaxErrorRate float64       `yaml:"max_error_rate"` // 0..1, finite; 0 means any error fails
	MinRequests  int           `yaml:"min_requests"`   // below this many requests the window passes unless health fails
}

// ReleaseLines names the branches and tags of the release process.
type ReleaseLines struct {
	Main         string `yaml:"main"`          // the main line (default main)
	Production   string `yaml:"production"`    // the production line (default stages/prod)
	BranchPrefix string `yaml:"branch_prefix"` // release branches: PREFIX + date (default stages/rc-)
	TagPrefix    string `yaml:"tag_prefix"`    // semantic version tags (default v)
	SigningKey   string `yaml:"signing_key"`   // GPG key id: tags are signed when set
}

// Compat runs an older compatible version's tests against a new release
// before it is promoted.
type Compat struct {
	Test    []string      `yaml:"test"`    // argv, run in a checkout of the oldest compatible version
	Oldest  string        `yaml:"oldest"`  // the oldest compatible version, e.g. 2.3.20 (tag TagPrefix+Oldest)
	Timeout time.Duration `yaml:"timeout"` // default 5m
}

// Environment is one stage of the promotion chain.
type Environment struct {
	Name      string            `yaml:"-"`
	Listen    string            `yaml:"listen"`    // public address of the environment's proxy, host:port
	Host      string            `yaml:"host"`      // optional Host header to match
	Instances int               `yaml:"instances"` // default 1
	From      string            `yaml:"from"`      // the environment it promotes from
	Env       map[string]string `yaml:"env"`
	// DockerHosts names the Docker hosts (defined on the server with
	// --docker-host) a colour starts on, all of them; empty = the default.
	DockerHosts []string `yaml:"-"`
}

// RuntimeOptions returns the runtime options of environment e for a driver.
func (m *Manifest) RuntimeOptions(e Environment) core.RuntimeOptions {
	if m.Runtime != RuntimeDocker {
		return core.RuntimeOptions{Kind: core.RuntimeProcess}
	}
	return core.RuntimeOptions{Kind: core.RuntimeDocker, Hosts: e.DockerHosts, Port: m.Docker.Port,
		Memory: m.Docker.Memory, CPUs: m.Docker.CPUs, Restart: m.Docker.Restart}
}

// Env returns the named environment.
func (m *Manifest) Env(name string) (Environment, bool) {
	for _, e := range m.Environments {
		if e.Name == name {
			return e, true
		}
	}
	return Environment{}, false
}
