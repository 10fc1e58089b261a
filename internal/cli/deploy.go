package cli

import (
	"context"
	"errors"
	"fmt"
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
	var noWait, detach bool
	cmd := &cobra.Command{
		Use:   "deploy APP ENV",
		Short: "Deploy a commit to an environment, blue/green, and follow its steps",
		Long: `Builds the commit if it has no artifact yet, records a release (the artifact with
the environment's current config) and runs the deployment: lock, migrate, start
the idle colour, health gate, smoke checks, switch, verify. The steps are shown
as they happen. Exits 0 when the release is live (or already was), 1 when the
deployment failed or was rolled back. A second deploy to the same environment
waits its turn unless --no-wait.`,
		Example: `  cutover deploy hello staging
  cutover deploy hello production --commit 3dffdc17
  cutover deploy hello production --no-wait --output json`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.forApp(args...)
			if err != nil {
				return err
			}
			return follow(cmd, c, cl, args[0], detach, func(ctx context.Context) (core.Deployment, error) {
				return cl.Deploy(ctx, args[0], args[1], commit, noWait)
			})
		},
	}
	cmd.Flags().StringVar(&commit, "commit", "", "commit SHA, branch or tag (default HEAD of the app's repository)")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "refuse, naming the holder, when another deployment holds the environment")
	cmd.Flags().BoolVar(&detach, "detach", false, "return once queued instead of following the steps")
	return cmd
}

func newRollbackCmd(c *control) *cobra.Command {
	var to, steps int
	var noWait, detach bool
	cmd := &cobra.Command{
		Use:   "rollback APP ENV",
		Short: "Return an environment to an earlier release (a recorded deployment)",
		Long: `Goes back to the release live before the current one, or further with --steps N,
or to a given release with --to N. When that release still runs warm in the
standby colour the switch is instant; otherwise it is started cold.`,
		Example: `  cutover rollback hello production
  cutover rollback hello production --steps 2
  cutover rollback hello production --to 7`,
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
				return cl.Rollback(ctx, args[0], args[1], to, steps, noWait)
			})
		},
	}
	cmd.Flags().IntVar(&to, "to", 0, "release number to return to")
	cmd.Flags().IntVar(&steps, "steps", 0, "how many earlier live releases to go back (default 1)")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "refuse when another deployment holds the environment")
	cmd.Flags().BoolVar(&detach, "detach", false, "return once queued")
	return cmd
}

// follow subscribes to the event stream, starts the deployment, prints its
// steps until it ends and returns errDeployFailed unless it went live.
func follow(cmd *cobra.Command, c *control, cl *client.Client, app string, detach bool, start func(context.Context) (core.Deployment, error)) error {
	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	events := make(chan core.Event, 1024)
	opened := make(chan struct{})
	streamErr := make(chan error, 1)
	if !detach {
		go func() {
			streamErr <- cl.Stream(ctx, app, -1, func() { close(opened) }, func(e core.Event) bool {
				select {
				case events <- e:
				default:
				}
				return true
			})
		}()
		select {
		case <-opened:
		case err := <-streamErr:
			return err
		case <-time.After(10 * time.Second):
			return errors.New("the event stream did not open")
		}
	}
	begin := time.Now()
	// The request builds the commit first when it has no artifact yet: show
	// the build's events while it runs.
	var d core.Deployment
	var err error
	started := make(chan struct{})
	go func() {
		defer close(started)
		d, err = start(ctx)
	}()
	var early []core.Event
build:
	for {
		select {
		case <-started:
			break build
		case e := <-events:
			if e.DeploymentID == 0 && strings.HasPrefix(e.Type, "build.") {
				if !c.json() {
					printf(cmd, "  %6.2fs  %s\n", time.Since(begin).Seconds(), e.Message)
				}
				continue
			}
			early = append(early, e)
		}
	}
	if err != nil {
		return err
	}
	// show prints one of this deployment's events; it reports the last one.
	show := func(e core.Event) (last bool) {
		if e.DeploymentID == 0 && strings.HasPrefix(e.Type, "build.") && !c.json() {
			printf(cmd, "  %6.2fs  %s\n", time.Since(begin).Seconds(), e.Message)
		}
		if e.DeploymentID != d.ID {
			return false
		}
		if !c.json() && e.Type != "deploy.queued" {
			printf(cmd, "  %6.2fs  %s\n", time.Since(begin).Seconds(), e.Message)
		}
		return e.Step == core.StepDone
	}
	if !detach && !d.State.Terminal() {
		if !c.json() {
			printf(cmd, "deployment %d: %s of v%d to %s\n", d.ID, d.Kind, d.Release, d.Env)
		}
		finished := false
		for _, e := range early {
			finished = finished || show(e)
		}
	wait:
		for !finished {
			select {
			case e := <-events:
				if show(e) {
					break wait
				}
			case err := <-streamErr:
				// The stream ended: fall back to long-polling.
				if err != nil && ctx.Err() == nil {
					for !d.State.Terminal() {
						if d, err = cl.Wait(ctx, d.ID, time.Minute); err != nil {
							return err
						}
					}
				}
				break wait
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if d, err = cl.Deployment(ctx, d.ID); err != nil {
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
			printf(cmd, "deployment %d queued (%s of v%d to %s)\n", d.ID, d.Kind, d.Release, d.Env)
		case d.State == core.StateNoop:
			printf(cmd, "%s: nothing to do\n", d.Reason)
		default:
			printf(cmd, "deployment %d %s", d.ID, d.State)
			if d.Reason != "" {
				printf(cmd, ": %s", d.Reason)
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
