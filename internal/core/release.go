package core

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// CandidateState is where a release candidate stands.
type CandidateState string

// Candidate states.
const (
	CandidateCut       CandidateState = "cut"       // branch created, notes written
	CandidateFinished  CandidateState = "finished"  // on the production line, tagged, pushed
	CandidateAbandoned CandidateState = "abandoned" // given up: never finished
)

// Candidate is a release of the app's code to production, numbered like the
// teams we build for do it: RC 112 for a full release from the main line,
// RC 112.1, 112.2 for patches on top of it. It records the commit range it
// contains relative to the previous production release, and its notes.
type Candidate struct {
	App        string         `json:"app"`
	Number     int            `json:"number"`
	Patch      int            `json:"patch"`             // 0 for a full release
	Version    string         `json:"version,omitempty"` // optional semantic version, e.g. 2.4.5
	Branch     string         `json:"branch"`            // e.g. stages/rc-2026-11-24
	Base       string         `json:"base"`              // production line head when cut (range start, excluded)
	Head       string         `json:"head"`              // the commit released (range end, included)
	Merge      string         `json:"merge,omitempty"`   // the commit on the production line after finish (Head)
	Tag        string         `json:"tag,omitempty"`
	Notes      string         `json:"notes"` // Markdown, generated then editable
	State      CandidateState `json:"state"`
	CreatedAt  time.Time      `json:"created_at"`
	FinishedAt *time.Time     `json:"finished_at,omitempty"`
	// Deployments lists the deployments of its commit or merge (filled on read).
	Deployments []int64 `json:"deployments,omitempty"`
}

// Label renders "RC 112" or "RC 112.1".
func (c Candidate) Label() string { return "RC " + c.ID() }

// ID renders "112" or "112.1".
func (c Candidate) ID() string {
	if c.Patch > 0 {
		return fmt.Sprintf("%d.%d", c.Number, c.Patch)
	}
	return strconv.Itoa(c.Number)
}

var rcPattern = regexp.MustCompile(`^(?:(?i:rc)[ -]?)?([1-9][0-9]{0,8})(?:\.([1-9][0-9]{0,8}))?$`)

// ParseCandidateID parses "112", "112.1" or "RC 112.1".
func ParseCandidateID(s string) (number, patch int, err error) {
	m := rcPattern.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, 0, fmt.Errorf("%w: release candidate %q: want a number like 112 or 112.1", ErrInvalid, s)
	}
	number, _ = strconv.Atoi(m[1])
	if m[2] != "" {
		patch, _ = strconv.Atoi(m[2])
	}
	return number, patch, nil
}

// Check is the recorded result of a gate (such as the backwards
// compatibility tests) for a commit in an environment.
type Check struct {
	App       string    `json:"app"`
	SHA       string    `json:"sha"`
	Env       string    `json:"env"`
	Name      string    `json:"name"` // e.g. "compat"
	Passed    bool      `json:"passed"`
	Detail    string    `json:"detail"` // what ran and the end of its output
	CreatedAt time.Time `json:"created_at"`
}
