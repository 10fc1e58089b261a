package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cutover/cutover/internal/client"
	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/deploy"
	"github.com/cutover/cutover/internal/gitx"
)

func newAppCmd(c *control) *cobra.Command {
	cmd := &cobra.Command{Use: "app", Short: "Register and list apps"}
	var repo string
	add := &cobra.Command{
		Use:   "add NAME --repo PATH_OR_URL",
		Short: "Register an app whose repository has a cutover.yml at its root",
		Long: `Registers an app. --repo is a git repository: a path on the server's machine (a
relative path is taken from the directory you run the command in and sent as an
absolute path), or a URL git fetches (https://, ssh://, file://, git@host:path),
which the server mirrors in its data dir and fetches before it resolves a
commit. The repository must have a cutover.yml at HEAD.`,
		Example: "  cutover app add hello --repo ./hello\n  cutover app add api --repo https://git.example.com/team/api.git",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := validName("app", args[0]); err != nil {
				return err
			}
			if repo == "" {
				return usagef("--repo is required")
			}
			if !gitx.IsRemote(repo) && !filepath.IsAbs(repo) {
				// The server may run elsewhere: a path means the caller's.
				abs, err := filepath.Abs(repo)
				if err != nil {
					return usagef("--repo %q: %v", repo, err)
				}
				repo = abs
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			a, err := cl.AddApp(cmd.Context(), args[0], repo)
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(cmd.OutOrStdout(), a)
			}
			printf(cmd, "app %s added (%s)\n", a.Name, a.Repo)
			return nil
		},
	}
	add.Flags().StringVar(&repo, "repo", "", "the app's git repository: a path (relative to the current directory) or a URL git fetches")
	list := &cobra.Command{
		Use: "list", Short: "List apps", Example: "  cutover app list --output json", Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			apps, err := cl.Apps(cmd.Context())
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(cmd.OutOrStdout(), apps)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "APP\tREPO\tADDED")
			for _, a := range apps {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", a.Name, a.Repo, a.CreatedAt.Format(time.DateTime))
			}
			return tw.Flush()
		},
	}
	remove := &cobra.Command{
		Use:   "remove NAME",
		Short: "Forget an app: releases, deployments, config and artifacts (its timeline stays)",
		Long: `Removes an app from cutover: its releases, deployments, config versions and
artifacts (files included). Its timeline stays. Refused while one of its
environments runs (stop each with cutover stop APP ENV first) or has a
deployment not yet ended. The repository itself is not touched.`,
		Example: "  cutover stop hello staging && cutover stop hello production && cutover app remove hello",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.forApp(args[0])
			if err != nil {
				return err
			}
			if err := cl.RemoveApp(cmd.Context(), args[0]); err != nil {
				return err
			}
			if c.json() {
				return printJSON(cmd.OutOrStdout(), map[string]string{"removed": args[0]})
			}
			printf(cmd, "app %s removed\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(add, list, remove)
	return cmd
}

func newBuildCmd(c *control) *cobra.Command {
	var commit string
	cmd := &cobra.Command{
		Use:   "build APP",
		Short: "Build a commit once into an immutable artifact (a second build is a no-op)",
		Long: `Builds a commit from a clean export, once: a second build of the same commit
returns the stored artifact. The build's output is shown as it runs; a commit
that does not build exits 1 with the build command's error.`,
		Example: "  cutover build hello\n  cutover build hello --commit v1.2.3",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.forApp(args[0])
			if err != nil {
				return err
			}
			// Show the build's output as it happens (on stderr with
			// --output json, so the answer stays one document).
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			out := cmd.OutOrStdout()
			if c.json() {
				out = cmd.ErrOrStderr()
			}
			begin := time.Now()
			opened := make(chan struct{})
			streamDone := make(chan struct{})
			go func() {
				defer close(streamDone)
				_ = cl.Stream(ctx, args[0], -1, func() { close(opened) }, func(e core.Event) bool {
					if e.DeploymentID == 0 && strings.HasPrefix(string(e.Type), "build.") {
						fmt.Fprintf(out, "  %6.2fs  %s\n", time.Since(begin).Seconds(), e.Message)
					}
					return true
				})
			}()
			select {
			case <-opened:
			case <-streamDone: // no stream: build without showing its output
			case <-time.After(5 * time.Second):
			}
			a, err := cl.Build(cmd.Context(), args[0], commit)
			cancel()
			<-streamDone
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(cmd.OutOrStdout(), a)
			}
			printf(cmd, "%s %s %s (%d bytes)\n", a.App, core.ShortSHA(a.SHA), a.Digest, a.Size)
			return nil
		},
	}
	cmd.Flags().StringVar(&commit, "commit", "", "commit SHA, branch or tag (default HEAD)")
	return cmd
}

func newConfirmCmd(c *control) *cobra.Command {
	return &cobra.Command{
		Use:     "confirm APP ENV",
		Short:   "Mark the live release verified; bring the standby colour to it (or scale it in)",
		Example: "  cutover confirm hello production",
		Args:    exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.forApp(args...)
			if err != nil {
				return err
			}
			d, err := cl.Confirm(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			if d, err = cl.Wait(cmd.Context(), d.ID, 5*time.Minute); err != nil {
				return err
			}
			if c.json() {
				return printJSON(cmd.OutOrStdout(), d)
			}
			printf(cmd, "#%d confirmed in %s: %s\n", d.Release, d.Env, d.State)
			if d.State != core.StateSucceeded {
				return fmt.Errorf("%w: %s", errDeployFailed, d.Reason)
			}
			return nil
		},
	}
}

func newHoldCmd(c *control) *cobra.Command {
	var dur time.Duration
	cmd := &cobra.Command{
		Use:     "hold APP ENV --for DURATION",
		Short:   "Keep a failed colour running for investigation longer",
		Example: "  cutover hold hello production --for 2h",
		Args:    exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := validAppEnv(args); err != nil {
				return err
			}
			if dur <= 0 {
				return usagef("--for is required (for example 2h)")
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			st, err := cl.Hold(cmd.Context(), args[0], args[1], dur)
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(cmd.OutOrStdout(), st)
			}
			for _, sl := range st.Slots {
				if sl.State == core.SlotFailed {
					printf(cmd, "failed %s (#%d) held until %s at %s\n", sl.Colour, sl.Release, sl.HeldUntil.Format(time.RFC3339), addrList(sl.Instances))
				}
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&dur, "for", 0, "how long to hold it")
	return cmd
}

func addrList(insts []core.Instance) string {
	out := make([]string, len(insts))
	for i, in := range insts {
		out[i] = in.Addr
	}
	return strings.Join(out, ",")
}

func newStatusCmd(c *control) *cobra.Command {
	return &cobra.Command{
		Use:     "status APP",
		Short:   "Show each environment: live colour and release, standby, failed colour kept for investigation",
		Example: "  cutover status hello\n  cutover status hello --output json",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.forApp(args[0])
			if err != nil {
				return err
			}
			st, err := cl.Status(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(cmd.OutOrStdout(), st)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ENV\tCOLOUR\tSTATE\tRELEASE\tINSTANCES\tUNTIL")
			for _, e := range st {
				for _, col := range []core.Colour{core.Blue, core.Green} {
					sl := e.State.Slots[col]
					if sl == nil || sl.State == core.SlotEmpty {
						continue
					}
					until := ""
					if !sl.Until.IsZero() {
						until = sl.Until.Local().Format(time.DateTime)
					}
					if !sl.HeldUntil.IsZero() && sl.HeldUntil.After(sl.Until) {
						until = "held until " + sl.HeldUntil.Local().Format(time.DateTime)
					}
					rel := fmt.Sprintf("#%d", sl.Release)
					if e.Live != nil && e.Live.Number == sl.Release {
						rel += " (" + core.ShortSHA(e.Live.SHA) + ")"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Env, col, sl.State, rel, addrList(sl.Instances), until)
				}
				if e.Lock != nil {
					fmt.Fprintf(tw, "%s\t\tlocked by %s since %s: %s\t\t\t\n", e.Env, e.Lock.By, e.Lock.At.Local().Format(time.DateTime), e.Lock.Reason)
				}
				if e.Degraded != "" {
					fmt.Fprintf(tw, "%s\t\tdegraded: %s\t\t\t\n", e.Env, e.Degraded)
				}
				if e.LockedBy != "" {
					fmt.Fprintf(tw, "%s\t\tbusy with %s\t\t\t\n", e.Env, e.LockedBy)
				}
				for _, d := range e.Unfinished {
					note := string(d.Step)
					if d.State == core.StateWaiting {
						note = "waiting on " + d.WaitingOn
					}
					fmt.Fprintf(tw, "%s\t\tdeployment %d %s\t%s\t%s\t%s\n", e.Env, d.ID, d.State, what(d), string(d.Kind)+" by "+orAPI(d.RequestedBy), note)
				}
			}
			return tw.Flush()
		},
	}
}

func newHistoryCmd(c *control) *cobra.Command {
	var limit int
	var before int64
	cmd := &cobra.Command{
		Use:     "history APP [ENV]",
		Short:   "List deployments, newest first (deploys, rollbacks, reverts, confirmations)",
		Example: "  cutover history hello production --limit 20",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usagef("history takes APP and optionally ENV")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := validAppEnv(args); err != nil {
				return err
			}
			env := ""
			if len(args) == 2 {
				env = args[1]
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			ds, err := cl.History(cmd.Context(), args[0], env, before, limit)
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(cmd.OutOrStdout(), ds)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tWHEN\tENV\tKIND\tRELEASE\tCOMMIT\tSTATE\tREASON")
			for _, d := range ds {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.CreatedAt.Local().Format(time.DateTime), d.Env, d.Kind, releaseLabel(d.Release), core.ShortSHA(d.SHA), d.State, firstLine(d.Reason))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 50, "rows (at most 1000)")
	cmd.Flags().Int64Var(&before, "before", 0, "show deployments older than this id (paging)")
	return cmd
}

func newReleasesCmd(c *control) *cobra.Command {
	return &cobra.Command{
		Use: "releases APP", Short: "List releases: artifact (commit, digest) + config version", Example: "  cutover releases hello", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.forApp(args[0])
			if err != nil {
				return err
			}
			rs, err := cl.Releases(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(cmd.OutOrStdout(), rs)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RELEASE\tENV\tCOMMIT\tCONFIG\tDIGEST\tCREATED")
			for _, r := range rs {
				fmt.Fprintf(tw, "#%d\t%s\t%s\tv%d\t%s\t%s\n", r.Number, r.Env, core.ShortSHA(r.SHA), r.ConfigVersion, r.Digest, r.CreatedAt.Local().Format(time.DateTime))
			}
			return tw.Flush()
		},
	}
}

func newLogsCmd(c *control) *cobra.Command {
	var colour string
	var deployment int64
	var lines int
	var followLogs bool
	cmd := &cobra.Command{
		Use:   "logs APP ENV",
		Short: "Show the end of the instance logs (live colour by default)",
		Long: `Shows the end of each instance's log, secrets redacted: the live colour's
instances, another colour's (--colour), or the instances a deployment started
(--deployment ID), which stay readable after they stopped or failed. --follow
keeps printing new output (every second) until Ctrl-C; with --output json it
prints one JSON object per new chunk (JSON Lines).`,
		Example: "  cutover logs hello production\n  cutover logs hello production --colour green --lines 50\n  cutover logs hello staging --deployment 42 --output json",
		Args:    exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if lines < 0 || deployment < 0 {
				return usagef("--lines and --deployment take positive numbers")
			}
			if colour != "" && deployment > 0 {
				return usagef("give --colour or --deployment, not both")
			}
			cl, err := c.forApp(args...)
			if err != nil {
				return err
			}
			opts := client.LogsOptions{Colour: colour, Deployment: deployment, Lines: lines}
			if followLogs {
				return tailLogs(cmd, c, cl, args[0], args[1], opts)
			}
			if c.json() {
				logs, err := cl.LogsJSON(cmd.Context(), args[0], args[1], opts)
				if err != nil {
					return err
				}
				return printJSON(cmd.OutOrStdout(), logs)
			}
			return cl.Logs(cmd.Context(), args[0], args[1], opts, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&colour, "colour", "", "blue or green (default: the live colour)")
	cmd.Flags().Int64Var(&deployment, "deployment", 0, "the instances this deployment started, running or not")
	cmd.Flags().IntVar(&lines, "lines", 0, "only the last N lines of each instance (default: the last 64 KiB)")
	cmd.Flags().BoolVarP(&followLogs, "follow", "f", false, "keep printing new output until Ctrl-C")
	return cmd
}

// logsPoll is how often logs --follow asks for new output.
const logsPoll = time.Second

// tailLogs prints each instance's log, then what is new in it every
// logsPoll: the new part is what follows the end of what was printed
// before (a log rotated in between is printed again from its end).
func tailLogs(cmd *cobra.Command, c *control, cl *client.Client, app, env string, opts client.LogsOptions) error {
	printed := map[string]string{} // instance -> the last bytes printed
	enc := json.NewEncoder(cmd.OutOrStdout())
	for first := true; ; first = false {
		logs, err := cl.LogsJSON(cmd.Context(), app, env, opts)
		if err != nil {
			if cmd.Context().Err() != nil {
				return nil
			}
			return err
		}
		opts.Lines = 0 // after the first round, everything new
		for _, l := range logs {
			fresh := l.Log
			if tail, ok := printed[l.Instance]; ok {
				if i := strings.LastIndex(l.Log, tail); i >= 0 {
					fresh = l.Log[i+len(tail):]
				}
			}
			if fresh == "" {
				continue
			}
			if c.json() {
				_ = enc.Encode(deploy.InstanceLog{Instance: l.Instance, Addr: l.Addr, Colour: l.Colour, Release: l.Release, Log: fresh})
			} else {
				if first || len(logs) > 1 {
					printf(cmd, "==> %s (#%d) <==\n", l.Instance, l.Release)
				}
				printf(cmd, "%s", fresh)
			}
			whole := printed[l.Instance] + fresh
			printed[l.Instance] = whole[max(0, len(whole)-512):]
		}
		if pause(cmd.Context(), logsPoll) != nil {
			return nil
		}
	}
}

func newEventsCmd(c *control) *cobra.Command {
	var followFlag bool
	var after int64
	cmd := &cobra.Command{
		Use:   "events [APP]",
		Short: "Show the timeline; --follow streams new events",
		Long: `Shows the timeline, oldest first (up to 1000 events after --after). With --follow
it streams events as they happen, from now on unless --after is given, and
resumes where it stopped when the server restarts. --output json prints one
JSON array, or with --follow one JSON object per line (JSON Lines).`,
		Example: "  cutover events hello\n  cutover events --follow\n  cutover events hello --after 1200 --follow --output json",
		Args:    maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			app := ""
			if len(args) == 1 {
				if err := validName("app", args[0]); err != nil {
					return err
				}
				app = args[0]
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			show := func(e core.Event) bool {
				if c.json() {
					_ = enc.Encode(e) // one object per line
					return true
				}
				where := e.App
				if e.Env != "" {
					where += "/" + e.Env
				}
				printf(cmd, "%s  %-20s %s\n", e.Time.Local().Format(time.DateTime), where, e.Message)
				return true
			}
			if !followFlag {
				es, err := cl.Events(cmd.Context(), app, after)
				if err != nil {
					return err
				}
				if c.json() {
					return printJSON(cmd.OutOrStdout(), es)
				}
				for _, e := range es {
					show(e)
				}
				return nil
			}
			pos := int64(-1) // from now on
			if cmd.Flags().Changed("after") {
				pos = after
			}
			retry := followRetry
			for {
				err := cl.Stream(cmd.Context(), app, pos, func() { retry = followRetry }, func(e core.Event) bool {
					pos = e.ID
					return show(e)
				})
				if cmd.Context().Err() != nil {
					return nil // Ctrl-C ends a follow: nothing goes on that needs saying
				}
				var ce *client.Error
				if errors.As(err, &ce) && ce.Status < 500 {
					return err
				}
				// The server went away or closed the stream: resume where it stopped.
				if pause(cmd.Context(), retry) != nil {
					return nil
				}
				retry = min(retry*2, followRetryMax)
			}
		},
	}
	cmd.Flags().BoolVarP(&followFlag, "follow", "f", false, "keep streaming new events (from now on, or from --after)")
	cmd.Flags().Int64Var(&after, "after", 0, "only events after this id")
	return cmd
}

// releaseLabel shows a release number, or "-" for a deployment that never
// got one (refused or cancelled before its build).
func releaseLabel(n int) string {
	if n == 0 {
		return "-"
	}
	return "#" + strconv.Itoa(n)
}

func orAPI(by string) string {
	if by == "" {
		return "an operator"
	}
	return by
}

// firstLine is the first line of a reason (a policy verdict has a tree
// under it; cutover follow ID shows it whole).
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}
