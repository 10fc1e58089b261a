package cli

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cutover/cutover/internal/client"
	"github.com/cutover/cutover/internal/core"
)

// errDeployFailed makes the command exit 1 after the outcome was printed.
var errDeployFailed = errors.New("deployment did not go live")

func newDeployCmd(c *control) *cobra.Command {
	var commit string
	var noWait, detach, replaceHeld, override, hotfix, whenAllowed, waitForApproval bool
	var reason string
	cmd := &cobra.Command{
		Use:   "deploy APP ENV",
		Short: "Deploy a commit to an environment, blue/green, and follow its steps",
		Long: `Records the deployment, asks the gates (the promotion chain, the compatibility
check), builds the commit if it has no artifact yet, records a release (the
artifact with the environment's current config) and runs the deployment: lock,
migrate, start the idle colour, health gate, smoke checks, switch, verify. The
steps are shown as they happen. Exits 0 when the release is live (or already
was), 1 when the deployment was refused, failed or was rolled back. A second
deploy to the same environment waits its turn unless --no-wait. Ctrl-C stops
following, not the deployment: it goes on on the server (cutover follow ID,
cutover cancel ID). A failed colour held with cutover hold is not replaced
unless --replace-held.`,
		Example: `  cutover deploy hello staging
  cutover deploy hello production --commit 3dffdc17
  cutover deploy hello production --no-wait --output json`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (override || hotfix) && reason == "" {
				return usagef("--override and --hotfix need --reason TEXT (it goes into the timeline)")
			}
			cl, err := c.forApp(args...)
			if err != nil {
				return err
			}
			return follow(cmd, c, cl, args[0], detach, func(ctx context.Context) (core.Deployment, error) {
				return cl.Deploy(ctx, args[0], args[1], client.DeployOptions{Ref: commit, NoWait: noWait, ReplaceHeld: replaceHeld,
					Override: override, Hotfix: hotfix, Reason: reason, WhenAllowed: whenAllowed, WaitForApproval: waitForApproval})
			})
		},
	}
	cmd.Flags().StringVar(&commit, "commit", "", "commit SHA, branch or tag (default HEAD of the app's repository)")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "refuse, naming the holder, when another deployment holds the environment")
	cmd.Flags().BoolVar(&detach, "detach", false, "return once recorded instead of following the steps")
	cmd.Flags().BoolVar(&replaceHeld, "replace-held", false, "replace a failed colour held for investigation (cutover hold) instead of refusing")
	cmd.Flags().BoolVar(&override, "override", false, "deploy although the policy or a window refuses (admin; needs --reason; recorded)")
	cmd.Flags().BoolVar(&hotfix, "hotfix", false, "a hotfix: an approval by another person replaces cd (needs --reason; recorded)")
	cmd.Flags().StringVar(&reason, "reason", "", "why the override or the hotfix (goes into the timeline)")
	cmd.Flags().BoolVar(&whenAllowed, "when-allowed", false, "when a deploy window refuses, wait until it opens instead")
	cmd.Flags().BoolVar(&waitForApproval, "wait-for-approval", false, "when approvals, reviews or checks are missing, wait for them instead of refusing")
	return cmd
}

func newRollbackCmd(c *control) *cobra.Command {
	var to, steps int
	var noWait, detach, keepConfig bool
	cmd := &cobra.Command{
		Use:   "rollback APP ENV",
		Short: "Return an environment to an earlier release (a recorded deployment)",
		Long: `Goes back to the release live before the current one, or further with --steps N,
or to a given release with --to N. A rollback never goes forward: a release an
earlier rollback left behind is skipped (reach it with --to). When the target
still runs warm in the standby colour the switch is instant; otherwise it is
started cold. A release is an artifact with a config: going back to it goes
back to its config too, and the first step says which keys change (secrets by
name only); --keep-config rolls back the code only.`,
		Example: `  cutover rollback hello production
  cutover rollback hello production --steps 2
  cutover rollback hello production --to 7
  cutover rollback hello production --keep-config`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := validAppEnv(args); err != nil {
				return err
			}
			if to < 0 || steps < 0 || (to > 0 && steps > 0) {
				return usagef("give --to N or --steps N (positive), not both")
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			return follow(cmd, c, cl, args[0], detach, func(ctx context.Context) (core.Deployment, error) {
				return cl.Rollback(ctx, args[0], args[1], client.RollbackOptions{To: to, Steps: steps, NoWait: noWait, KeepConfig: keepConfig})
			})
		},
	}
	cmd.Flags().IntVar(&to, "to", 0, "release number to return to")
	cmd.Flags().IntVar(&steps, "steps", 0, "how many earlier live releases to go back (default 1)")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "refuse when another deployment holds the environment")
	cmd.Flags().BoolVar(&detach, "detach", false, "return once recorded")
	cmd.Flags().BoolVar(&keepConfig, "keep-config", false, "roll back the code only: the earlier release's artifact with today's config")
	return cmd
}

// followRetry is how long follow waits before reconnecting to a server
// that went away (a restart), doubling up to followRetryMax.
const (
	followRetry    = 200 * time.Millisecond
	followRetryMax = 5 * time.Second
)

// follow subscribes to the event stream, starts the deployment (or looks
// up an existing one), prints its steps until it ends and returns
// errDeployFailed unless it went live. It never reports success for a
// deployment that has not ended: when the stream breaks (a server
// restart), it reconnects where it stopped, and it always reads the
// deployment's final state from the server.
func follow(cmd *cobra.Command, c *control, cl *client.Client, app string, detach bool, start func(context.Context) (core.Deployment, error)) error {
	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	events := make(chan core.Event, 4096)
	var streamErr chan error
	stream := func(after int64) error {
		opened := make(chan struct{})
		errc := make(chan error, 1)
		go func() {
			errc <- cl.Stream(ctx, app, after, func() { close(opened) }, func(e core.Event) bool {
				select {
				case events <- e:
				default: // the final state is read from the server anyway
				}
				return true
			})
		}()
		t := time.NewTimer(10 * time.Second)
		defer t.Stop()
		select {
		case <-opened:
			streamErr = errc
			return nil
		case err := <-errc:
			if err == nil {
				err = errors.New("the event stream closed at once")
			}
			return err
		case <-t.C:
			return errors.New("the event stream did not open")
		}
	}
	if !detach {
		if err := stream(-1); err != nil {
			return err
		}
	}
	begin := time.Now()
	sawEnd := false // the deployment's last event was printed
	d, err := start(ctx)
	if err != nil {
		return err
	}
	if !detach && !d.State.Terminal() {
		if !c.json() {
			printf(cmd, "deployment %d: %s of %s to %s\n", d.ID, d.Kind, what(d), d.Env)
		}
		var last int64 = -1 // the last event seen, where a reconnect resumes
		retry := followRetry
		warned := false
	wait:
		for {
			select {
			case e := <-events:
				last = e.ID
				if e.DeploymentID != d.ID {
					continue
				}
				if !c.json() && e.Type != core.EventDeployQueued {
					printf(cmd, "  %6.2fs  %s\n", time.Since(begin).Seconds(), e.Message)
				}
				if e.Step == core.StepDone {
					sawEnd = true
					break wait
				}
			case <-streamErr:
				// The stream ended (the server restarted or the network
				// broke): has the deployment ended meanwhile?
				if cur, err := cl.Deployment(ctx, d.ID); err == nil && cur.State.Terminal() {
					break wait
				}
				if !warned && !c.json() {
					eprintf(cmd, "lost the connection to the server; reconnecting (deployment %d goes on there)\n", d.ID)
					warned = true
				}
				for {
					if pause(ctx, retry) != nil {
						return interrupted(cmd, d)
					}
					retry = min(retry*2, followRetryMax)
					if err := stream(last); err == nil {
						break
					}
				}
			case <-ctx.Done():
				return interrupted(cmd, d)
			}
		}
	}
	if !d.State.Terminal() || !detach {
		if d, err = finalState(ctx, cl, d, detach); err != nil {
			return err
		}
	}
	if c.json() {
		if err := printJSON(cmd.OutOrStdout(), d); err != nil {
			return err
		}
	} else {
		switch {
		case detach && !d.State.Terminal():
			printf(cmd, "deployment %d %s (%s of %s to %s); follow it with: cutover follow %d\n", d.ID, d.State, d.Kind, what(d), d.Env, d.ID)
		case d.State == core.StateNoop:
			printf(cmd, "%s: nothing to do\n", d.Reason)
		default:
			printf(cmd, "deployment %d %s", d.ID, d.State)
			if d.Reason != "" {
				reason := d.Reason
				if sawEnd {
					reason = firstLine(reason) // the whole of it was just printed with its step
				}
				printf(cmd, ": %s", reason)
			}
			printf(cmd, "\n")
		}
	}
	switch d.State {
	case core.StateFailed, core.StateRolledBack, core.StateCancelled:
		return fmt.Errorf("%w: deployment %d %s", errDeployFailed, d.ID, d.State)
	}
	return nil
}

// finalState reads the deployment as the server has it; when following,
// it waits (long-polling, through restarts) until it has ended.
func finalState(ctx context.Context, cl *client.Client, d core.Deployment, detach bool) (core.Deployment, error) {
	if detach {
		return cl.Deployment(ctx, d.ID)
	}
	retry := followRetry
	for {
		cur, err := cl.Wait(ctx, d.ID, time.Minute)
		if err == nil && cur.State.Terminal() {
			return cur, nil
		}
		if ctx.Err() != nil {
			return d, ctx.Err()
		}
		if err != nil {
			var ce *client.Error
			if errors.As(err, &ce) && ce.Status < 500 {
				return d, err
			}
			if err := pause(ctx, retry); err != nil {
				return d, err
			}
			retry = min(retry*2, followRetryMax)
		}
	}
}

// interrupted says what Ctrl-C did and did not do.
func interrupted(cmd *cobra.Command, d core.Deployment) error {
	eprintf(cmd, "\nstopped following; deployment %d goes on on the server.\n  follow it: cutover follow %d\n  cancel it (before it runs): cutover cancel %d\n", d.ID, d.ID, d.ID)
	return context.Canceled
}

// what names what a deployment ships: its release, or its commit before
// it has one.
func what(d core.Deployment) string {
	if d.Release > 0 {
		return fmt.Sprintf("#%d (%s)", d.Release, core.ShortSHA(d.SHA))
	}
	return core.ShortSHA(d.SHA)
}

func newPromoteCmd(c *control) *cobra.Command {
	var from, to, reason string
	var detach, override, whenAllowed, waitForApproval bool
	cmd := &cobra.Command{
		Use:   "promote APP --from ENV --to ENV",
		Short: "Deploy to an environment exactly the artifact live in the one before it",
		Long: `Deploys to --to the very artifact (same commit, same digest) that is live in
--from, with --to's own config, as a deployment of kind promote judged by the
policy like any deploy.`,
		Example: "  cutover promote hello --from staging --to production",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if from == "" || to == "" {
				return usagef("--from and --to are required")
			}
			if override && reason == "" {
				return usagef("--override needs --reason TEXT")
			}
			if err := validAppEnv([]string{args[0], to}); err != nil {
				return err
			}
			cl, err := c.forApp(args[0])
			if err != nil {
				return err
			}
			return follow(cmd, c, cl, args[0], detach, func(ctx context.Context) (core.Deployment, error) {
				return cl.Promote(ctx, args[0], from, to, client.DeployOptions{Override: override, Reason: reason, WhenAllowed: whenAllowed, WaitForApproval: waitForApproval})
			})
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "the environment whose live artifact is promoted")
	cmd.Flags().StringVar(&to, "to", "", "the environment it goes to")
	cmd.Flags().BoolVar(&detach, "detach", false, "return once recorded")
	cmd.Flags().BoolVar(&override, "override", false, "deploy although the policy or a window refuses (admin; needs --reason)")
	cmd.Flags().StringVar(&reason, "reason", "", "why the override")
	cmd.Flags().BoolVar(&whenAllowed, "when-allowed", false, "when a deploy window refuses, wait until it opens")
	cmd.Flags().BoolVar(&waitForApproval, "wait-for-approval", false, "when approvals or checks are missing, wait for them")
	return cmd
}

func newRecycleCmd(c *control) *cobra.Command {
	var detach bool
	cmd := &cobra.Command{
		Use:   "recycle APP ENV",
		Short: "Ship the live artifact again with the environment's latest config (no migration)",
		Long: `A config-only release: the artifact live in ENV with ENV's latest config version,
as a deployment of kind recycle. The migration does not run. Nothing to do when
the live release already has the latest config.`,
		Example: "  cutover config set hello production LOG_LEVEL=debug && cutover recycle hello production",
		Args:    exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.forApp(args...)
			if err != nil {
				return err
			}
			return follow(cmd, c, cl, args[0], detach, func(ctx context.Context) (core.Deployment, error) {
				return cl.Recycle(ctx, args[0], args[1])
			})
		},
	}
	cmd.Flags().BoolVar(&detach, "detach", false, "return once recorded")
	return cmd
}

func newStopCmd(c *control) *cobra.Command {
	var detach bool
	cmd := &cobra.Command{
		Use:   "stop APP ENV",
		Short: "Take an environment out of service: remove its route, stop its instances",
		Long: `Records a deployment of kind stop: the proxy stops routing the environment (its
listener answers 503), then every instance of both colours is stopped. Nothing
is deleted: a deploy, or a rollback with --to N, brings it back.`,
		Example: `  cutover stop hello staging
  cutover deploy hello staging    # back in service`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.forApp(args...)
			if err != nil {
				return err
			}
			return follow(cmd, c, cl, args[0], detach, func(ctx context.Context) (core.Deployment, error) {
				return cl.Stop(ctx, args[0], args[1])
			})
		},
	}
	cmd.Flags().BoolVar(&detach, "detach", false, "return once recorded")
	return cmd
}

func newFollowCmd(c *control) *cobra.Command {
	return &cobra.Command{
		Use:   "follow ID",
		Short: "Follow a deployment's steps until it ends",
		Long: `Prints the steps of a deployment as they happen, as deploy does, and exits 0 when
it went live (or was a no-op), 1 when it failed, was rolled back or was cancelled.`,
		Example: `  cutover follow 42`,
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, cl, err := deploymentAndClient(c, args[0])
			if err != nil {
				return err
			}
			d, err := cl.Deployment(cmd.Context(), id)
			if err != nil {
				return err
			}
			return follow(cmd, c, cl, d.App, false, func(ctx context.Context) (core.Deployment, error) {
				return cl.Deployment(ctx, id)
			})
		},
	}
}

func newCancelCmd(c *control) *cobra.Command {
	return &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a deployment that is waiting, building or queued",
		Long: `Ends a deployment that has not started running: one waiting on a gate, being built,
or queued behind another. A running deployment cannot be stopped half-way; roll
back once it ends.`,
		Example: `  cutover cancel 42`,
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, cl, err := deploymentAndClient(c, args[0])
			if err != nil {
				return err
			}
			d, err := cl.Cancel(cmd.Context(), id)
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(cmd.OutOrStdout(), d)
			}
			printf(cmd, "deployment %d cancelled\n", d.ID)
			return nil
		},
	}
}

// deploymentAndClient checks a deployment ID argument, then opens the client.
func deploymentAndClient(c *control, arg string) (int64, *client.Client, error) {
	id, err := strconv.ParseInt(strings.TrimPrefix(arg, "#"), 10, 64)
	if err != nil || id <= 0 {
		return 0, nil, usagef("deployment ID %q: want a positive number (see cutover history)", arg)
	}
	cl, err := c.client()
	return id, cl, err
}

// pause waits d, or less if ctx ends first (then it returns ctx's error).
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
