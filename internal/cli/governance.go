package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/cutover/cutover/internal/core"
)

func newCheckCmd(c *control) *cobra.Command {
	cmd := &cobra.Command{Use: "check", Short: "CI results of commits (the policy's ci)"}
	var url string
	report := &cobra.Command{
		Use:   "report APP SHA NAME success|failure|pending",
		Short: "Record a CI result for a commit; the newest per name wins",
		Example: `  cutover check report hello 3dffdc17 test success --url https://ci.example.com/build/812
  cutover check report hello "$GIT_COMMIT" lint failure`,
		Args: exactArgs(4),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := core.ParseCheckState(args[3]); err != nil {
				return usageError{err}
			}
			cl, err := c.forApp(args[0])
			if err != nil {
				return err
			}
			st, err := cl.ReportCheck(cmd.Context(), args[0], args[1], args[2], args[3], url)
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(cmd.OutOrStdout(), st)
			}
			printf(cmd, "check %s of %s: %s\n", st.Name, core.ShortSHA(st.SHA), st.State)
			return nil
		},
	}
	report.Flags().StringVar(&url, "url", "", "link to the CI run")
	list := &cobra.Command{
		Use: "list APP SHA", Short: "Show the CI results of a commit", Example: "  cutover check list hello 3dffdc17", Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.forApp(args[0])
			if err != nil {
				return err
			}
			cs, err := cl.Checks(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(cmd.OutOrStdout(), cs)
			}
			for _, s := range cs {
				printf(cmd, "%-20s %-8s %s %s\n", s.Name, s.State, s.At.Local().Format(time.DateTime), s.URL)
			}
			return nil
		},
	}
	cmd.AddCommand(report, list)
	return cmd
}

func newReviewCmd(c *control) *cobra.Command {
	cmd := &cobra.Command{Use: "review", Short: "Reviews of commits (the policy's review)"}
	approve := &cobra.Command{
		Use:   "approve APP SHA",
		Short: "Approve a commit as its reviewer",
		Long: `Records your approval of a commit. It counts for the policy's review only when
you are neither the person who requests the deploy nor an author of the commits
the deploy brings.`,
		Example: "  cutover review approve hello 3dffdc17",
		Args:    exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.forApp(args[0])
			if err != nil {
				return err
			}
			r, err := cl.Review(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(cmd.OutOrStdout(), r)
			}
			printf(cmd, "%s approved commit %s\n", r.By, core.ShortSHA(r.SHA))
			return nil
		},
	}
	cmd.AddCommand(approve)
	return cmd
}

func newApproveCmd(c *control) *cobra.Command {
	var release int
	var commit string
	cmd := &cobra.Command{
		Use:   "approve APP ENV --release N|--commit SHA",
		Short: "Approve a release (or a commit) for an environment (the policy's approval)",
		Long: `Records your approval of a release, or of a commit, for one environment. It
counts for the policy's approval only when you are not the person who requests
the deploy.`,
		Example: "  cutover approve hello production --release 12\n  cutover approve hello production --commit 3dffdc17",
		Args:    exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (release > 0) == (commit != "") || release < 0 {
				return usagef("give --release N or --commit SHA, one of them")
			}
			cl, err := c.forApp(args...)
			if err != nil {
				return err
			}
			a, err := cl.Approve(cmd.Context(), args[0], args[1], release, commit)
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(cmd.OutOrStdout(), a)
			}
			printf(cmd, "%s approved %s for %s\n", a.By, releaseOrCommit(a), a.Env)
			return nil
		},
	}
	cmd.Flags().IntVar(&release, "release", 0, "release number (#N)")
	cmd.Flags().StringVar(&commit, "commit", "", "commit SHA, branch or tag")
	return cmd
}

func releaseOrCommit(a core.Approval) string {
	if a.Release > 0 {
		return fmt.Sprintf("#%d (%s)", a.Release, core.ShortSHA(a.SHA))
	}
	return "commit " + core.ShortSHA(a.SHA)
}

func newLockCmd(c *control) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "lock APP ENV --reason TEXT",
		Short: "Refuse deploys to an environment (rollbacks stay allowed) until unlock",
		Long: `Locks an environment: deploys are refused, naming who locked it, when and why;
rollbacks, confirms and holds are not. An automatic switch-back after a failed
verification locks the environment by itself.`,
		Example: "  cutover lock hello production --reason 'incident 4711: investigating'",
		Args:    exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if reason == "" {
				return usagef("--reason is required: say why, for the people it stops")
			}
			cl, err := c.forApp(args...)
			if err != nil {
				return err
			}
			l, err := cl.Lock(cmd.Context(), args[0], args[1], reason)
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(cmd.OutOrStdout(), l)
			}
			printf(cmd, "%s/%s locked: %s\n", l.App, l.Env, l.Reason)
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (shown to whoever is refused)")
	return cmd
}

func newUnlockCmd(c *control) *cobra.Command {
	return &cobra.Command{
		Use: "unlock APP ENV", Short: "Lift an environment's lock (a person's or an automatic one)",
		Example: "  cutover unlock hello production", Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.forApp(args...)
			if err != nil {
				return err
			}
			if err := cl.Unlock(cmd.Context(), args[0], args[1]); err != nil {
				return err
			}
			if c.json() {
				return printJSON(cmd.OutOrStdout(), map[string]string{"unlocked": args[0] + "/" + args[1]})
			}
			printf(cmd, "%s/%s unlocked\n", args[0], args[1])
			return nil
		},
	}
}
