package core

import "time"

// EventType names what happened. Programs (notifiers, webhooks, the CLI)
// branch on it, so the values are part of the API and never change meaning.
type EventType string

// Event types. Deployment outcomes are "deploy." + the terminal state.
const (
	EventAppAdded   EventType = "app.added"
	EventAppRemoved EventType = "app.removed"

	EventBuildStarted  EventType = "build.started"
	EventBuildOutput   EventType = "build.output"
	EventBuildFinished EventType = "build.finished"
	EventBuildFailed   EventType = "build.failed"
	EventBuildFixed    EventType = "build.fixed" // a build succeeded after a failed build of it or of an ancestor

	EventArtifactsCollected EventType = "artifacts.collected" // the retention removed artifacts no rollback can target

	EventDeployWaiting      EventType = "deploy.waiting"  // recorded; waits on a condition before the queue
	EventDeployAdmitted     EventType = "deploy.admitted" // a waiting deployment's condition was met
	EventDeployQueued       EventType = "deploy.queued"
	EventDeployStep         EventType = "deploy.step"
	EventDeployInfo         EventType = "deploy.info"
	EventDeployOutput       EventType = "deploy.output"
	EventDeploySwitched     EventType = "deploy.switched"
	EventDeploySwitchedBack EventType = "deploy.switched_back"
	EventDeploySucceeded    EventType = "deploy.succeeded"
	EventDeployFailed       EventType = "deploy.failed"
	EventDeployRolledBack   EventType = "deploy.rolled_back"
	EventDeployNoop         EventType = "deploy.noop"
	EventDeployCancelled    EventType = "deploy.cancelled"

	EventInstanceExited        EventType = "instance.exited"         // a live instance died; a restart follows
	EventInstanceRestarted     EventType = "instance.restarted"      // the live colour is whole again
	EventInstanceRestartFailed EventType = "instance.restart_failed" // with the next attempt, or giving up

	EventColourHeld     EventType = "colour.held"
	EventColourScaledIn EventType = "colour.scaled_in"

	EventConfigSet EventType = "config.set"

	EventCheckReported  EventType = "check.reported" // a CI result for a commit
	EventReviewed       EventType = "commit.reviewed"
	EventApproved       EventType = "release.approved"
	EventApprovalAsked  EventType = "approval.requested" // a deployment waits for a person's approval or review
	EventEnvLocked      EventType = "env.locked"
	EventEnvUnlocked    EventType = "env.unlocked"
	EventPolicySet      EventType = "policy.set"
	EventDeployOverride EventType = "deploy.override" // the policy was overridden, with the actor and reason

	EventReleaseCut       EventType = "release.cut"
	EventReleaseFinished  EventType = "release.finished"
	EventReleaseAbandoned EventType = "release.abandoned"
	EventImageTagged      EventType = "image.tagged"     // a release tag was added to the image of its commit
	EventImageTagFailed   EventType = "image.tag_failed" // the release stands; its image lacks the tag
	EventCompatRaised     EventType = "compat.oldest_raised"
	EventCheckRecorded    EventType = "check.recorded"

	EventServerActive EventType = "server.active" // a server took the lease and runs the queues
)

// OutcomeEvent is the event type of a deployment that ended in state.
func OutcomeEvent(state DeploymentState) EventType { return EventType("deploy." + string(state)) }

// Event is one entry of the timeline. Message is for people; the other
// fields are for programs, which must never parse Message.
type Event struct {
	ID           int64           `json:"id"`
	App          string          `json:"app"`
	Env          string          `json:"env,omitempty"`
	DeploymentID int64           `json:"deployment_id,omitempty"`
	Time         time.Time       `json:"time"`
	Type         EventType       `json:"type"`
	Step         Step            `json:"step,omitempty"`
	Release      int             `json:"release,omitempty"`
	SHA          string          `json:"sha,omitempty"`
	State        DeploymentState `json:"state,omitempty"`
	Reason       string          `json:"reason,omitempty"`
	Actor        string          `json:"actor,omitempty"` // who caused it: a user, "cutover" for the machine itself
	Message      string          `json:"message"`
}
