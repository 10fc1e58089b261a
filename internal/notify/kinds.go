package notify

import (
	"fmt"
	"slices"
	"strings"

	"github.com/cutover/cutover/internal/core"
)

// Notification kinds a subscription names. They map from core event types
// in one table (kinds); the values are part of the API.
const (
	KindDeployStarted    = "deploy.started"     // a deployment's first step (lock)
	KindDeploySucceeded  = "deploy.succeeded"   // a deployment, not a rollback, went live
	KindDeployFailed     = "deploy.failed"      // a deployment, not a rollback, failed
	KindDeployRolledBack = "deploy.rolled_back" // verification failed and traffic switched back
	KindRollback         = "rollback"           // a rollback deployment ended (succeeded, failed or switched back)
	KindBuildFailed      = "build.failed"
	KindBuildFixed       = "build.fixed" // the first successful build after a failure on the same line of history
	KindOverride         = "override"    // a policy refusal was overridden
	KindEnvLocked        = "env.locked"
	KindEnvUnlocked      = "env.unlocked"
	KindApproval         = "approval"           // a release was approved for an environment
	KindApprovalAsked    = "approval.requested" // a deployment waits for someone's approval or review
	KindTest             = "test"               // `cutover notify test`; never matched by the event log
)

// kinds is the one table from events to notification kinds. match gets the
// event and the kind of its deployment ("" when the event has none or it
// was not needed).
var kinds = []struct {
	kind  string
	types []core.EventType
	match func(e core.Event, dk core.DeploymentKind) bool
}{
	{KindDeployStarted, []core.EventType{core.EventDeployStep}, func(e core.Event, _ core.DeploymentKind) bool { return e.Step == core.StepLock }},
	{KindDeploySucceeded, []core.EventType{core.EventDeploySucceeded}, notRollback},
	{KindDeployFailed, []core.EventType{core.EventDeployFailed}, notRollback},
	{KindDeployRolledBack, []core.EventType{core.EventDeployRolledBack}, nil},
	{KindRollback, rollbackOutcomes, func(_ core.Event, dk core.DeploymentKind) bool { return dk == core.KindRollback }},
	{KindBuildFailed, []core.EventType{core.EventBuildFailed}, nil},
	{KindBuildFixed, []core.EventType{core.EventBuildFixed}, nil},
	{KindOverride, []core.EventType{core.EventDeployOverride}, nil},
	{KindEnvLocked, []core.EventType{core.EventEnvLocked}, nil},
	{KindEnvUnlocked, []core.EventType{core.EventEnvUnlocked}, nil},
	{KindApproval, []core.EventType{core.EventApproved}, nil},
	{KindApprovalAsked, []core.EventType{core.EventApprovalAsked}, nil},
}

var rollbackOutcomes = []core.EventType{core.EventDeploySucceeded, core.EventDeployFailed, core.EventDeployRolledBack}

func notRollback(_ core.Event, dk core.DeploymentKind) bool { return dk != core.KindRollback }

// Kinds lists every kind a subscription may name, in table order.
func Kinds() []string {
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = k.kind
	}
	return out
}

// ParseKinds checks a comma-separated list of kinds ("all" for every one).
func ParseKinds(list []string) ([]string, error) {
	var out []string
	for _, item := range list {
		for _, k := range strings.Split(item, ",") {
			k = strings.TrimSpace(k)
			switch {
			case k == "":
				continue
			case k == "all":
				return Kinds(), nil
			case !slices.Contains(Kinds(), k):
				return nil, fmt.Errorf("event kind %q: %w: want one of %s, or all", k, core.ErrInvalid, strings.Join(Kinds(), ", "))
			}
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("events: %w: name at least one of %s, or all", core.ErrInvalid, strings.Join(Kinds(), ", "))
	}
	return out, nil
}

// needsDeploymentKind reports whether classifying e needs its
// deployment's kind (an outcome that may be a rollback's).
func needsDeploymentKind(e core.Event) bool {
	return e.DeploymentID != 0 && slices.Contains(rollbackOutcomes, e.Type)
}

// Classify returns the notification kinds event e is, given its
// deployment's kind.
func Classify(e core.Event, dk core.DeploymentKind) []string {
	var out []string
	for _, k := range kinds {
		if slices.Contains(k.types, e.Type) && (k.match == nil || k.match(e, dk)) {
			out = append(out, k.kind)
		}
	}
	return out
}

// Text is the one-line summary of e as kind, for chat:
// "hello: production rolled back to #5 (error rate 12%)".
func Text(e core.Event, kind string) string {
	rel := ""
	if e.Release > 0 {
		rel = fmt.Sprintf("#%d", e.Release)
	}
	var s string
	switch kind {
	case KindDeployStarted:
		s = fmt.Sprintf("deploying %s to %s", orWhat(rel, core.ShortSHA(e.SHA)), e.Env)
	case KindDeploySucceeded:
		s = fmt.Sprintf("%s is live on %s", e.Env, orWhat(rel, core.ShortSHA(e.SHA)))
	case KindDeployFailed:
		s = fmt.Sprintf("deploy of %s to %s failed", orWhat(rel, core.ShortSHA(e.SHA)), e.Env)
	case KindDeployRolledBack:
		s = fmt.Sprintf("%s switched back from %s", e.Env, orWhat(rel, core.ShortSHA(e.SHA)))
	case KindRollback:
		switch e.Type {
		case core.EventDeploySucceeded:
			s = fmt.Sprintf("%s rolled back to %s", e.Env, orWhat(rel, core.ShortSHA(e.SHA)))
		default:
			s = fmt.Sprintf("rollback of %s to %s %s", e.Env, orWhat(rel, core.ShortSHA(e.SHA)), strings.ReplaceAll(string(e.State), "_", " "))
		}
	case KindBuildFailed:
		s = fmt.Sprintf("build of %s failed", core.ShortSHA(e.SHA))
	case KindBuildFixed:
		s = fmt.Sprintf("build fixed by %s", core.ShortSHA(e.SHA))
	case KindOverride:
		s = fmt.Sprintf("policy overridden for %s by %s", e.Env, e.Actor)
	case KindEnvLocked:
		s = fmt.Sprintf("%s locked by %s", e.Env, e.Actor)
	case KindEnvUnlocked:
		s = fmt.Sprintf("%s unlocked by %s", e.Env, e.Actor)
	case KindApproval:
		s = fmt.Sprintf("%s approved for %s by %s", orWhat(rel, core.ShortSHA(e.SHA)), e.Env, e.Actor)
	case KindApprovalAsked:
		s = fmt.Sprintf("%s for %s waits for approval, asked by %s", orWhat(rel, core.ShortSHA(e.SHA)), e.Env, e.Actor)
	case KindTest:
		s = "test notification from cutover"
	default:
		s = e.Message
	}
	if e.Reason != "" {
		s += " (" + e.Reason + ")"
	}
	return e.App + ": " + s
}

func orWhat(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
