package core

import (
	"fmt"
	"time"
)

// CheckState is the state of a commit status reported by CI.
type CheckState string

// Check states.
const (
	CheckSuccess CheckState = "success"
	CheckFailure CheckState = "failure"
	CheckPending CheckState = "pending"
)

// ParseCheckState validates a check state.
func ParseCheckState(s string) (CheckState, error) {
	switch CheckState(s) {
	case CheckSuccess, CheckFailure, CheckPending:
		return CheckState(s), nil
	}
	return "", fmt.Errorf("%w: check state %q: want success, failure or pending", ErrInvalid, s)
}

// CommitStatus is one CI result for a commit; the newest per name wins.
type CommitStatus struct {
	App   string     `json:"app"`
	SHA   string     `json:"sha"`
	Name  string     `json:"name"`
	State CheckState `json:"state"`
	URL   string     `json:"url,omitempty"`
	By    string     `json:"by"`
	At    time.Time  `json:"at"`
}

// Review is a person's approval of a commit (the policy's `review`).
type Review struct {
	App string    `json:"app"`
	SHA string    `json:"sha"`
	By  string    `json:"by"`
	At  time.Time `json:"at"`
}

// Approval is a person's approval of a release (or a commit) for one
// environment (the policy's `approval`).
type Approval struct {
	App     string    `json:"app"`
	Env     string    `json:"env"`
	Release int       `json:"release,omitempty"`
	SHA     string    `json:"sha,omitempty"`
	By      string    `json:"by"`
	At      time.Time `json:"at"`
}

// EnvLock is a person's (or an automatic switch-back's) lock on an
// environment: deploys are refused, rollbacks are not.
type EnvLock struct {
	App       string    `json:"app"`
	Env       string    `json:"env"`
	Reason    string    `json:"reason"`
	By        string    `json:"by"`
	At        time.Time `json:"at"`
	Automatic bool      `json:"automatic,omitempty"`
}

// PolicyVersion is one version of an app's server-side policy file.
type PolicyVersion struct {
	App     string    `json:"app"`
	Version int       `json:"version"`
	Body    string    `json:"body"`
	By      string    `json:"by"`
	At      time.Time `json:"at"`
}
