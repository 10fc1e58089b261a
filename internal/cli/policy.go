package cli

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// errRefused makes a command exit 1 after it printed why the policy refuses.
var errRefused = errors.New("refused by the policy")

func newPolicyCmd(c *control) *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "The server-side policy: what each environment requires (see docs/policy.md)"}
	var file string
	set := &cobra.Command{
		Use:   "set APP --file FILE",
		Short: "Set an app's policy from a file (admin); every change is versioned and recorded",
		Long: `Sets the rules that judge every deploy of the app: per environment, the rule over
ci, cd, review and approval, the checks ci requires, how many approvals, and the
deploy windows. The rules never come from the commit they judge: once set, a
commit's cutover.yml cannot weaken them.`,
		Example: "  cutover policy set hello --file policy.yml",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return usagef("--file is required (a policy file: see docs/policy.md)")
			}
			body, err := os.ReadFile(file)
			if err != nil {
				return usagef("--file %s: %v", file, err)
			}
			cl, err := c.forApp(args[0])
			if err != nil {
				return err
			}
			pv, err := cl.SetPolicy(cmd.Context(), args[0], body)
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(cmd.OutOrStdout(), pv)
			}
			printf(cmd, "policy v%d of %s set\n", pv.Version, pv.App)
			return nil
		},
	}
	set.Flags().StringVar(&file, "file", "", "the policy file (YAML)")
	show := &cobra.Command{
		Use: "show APP", Short: "Show an app's policy in force", Example: "  cutover policy show hello", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.forApp(args[0])
			if err != nil {
				return err
			}
			pv, err := cl.Policy(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(cmd.OutOrStdout(), pv)
			}
			printf(cmd, "# policy v%d of %s, set by %s at %s\n%s", pv.Version, pv.App, pv.By, pv.At.Local().Format("2006-01-02 15:04:05"), pv.Body)
			return nil
		},
	}
	var commit string
	check := &cobra.Command{
		Use:   "check APP ENV [--commit SHA]",
		Short: "Judge a commit for an environment as a deploy would be, without deploying",
		Long: `Prints the policy's verdict as a tree: each condition, whether it holds, and what
would satisfy it; then the deploy window. Exits 0 when a deploy would be
allowed, 1 when it would be refused.`,
		Example: "  cutover policy check hello production\n  cutover policy check hello production --commit 3dffdc17 --output json",
		Args:    exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.forApp(args...)
			if err != nil {
				return err
			}
			v, err := cl.CheckPolicy(cmd.Context(), args[0], args[1], commit)
			if err != nil {
				return err
			}
			if c.json() {
				if err := printJSON(cmd.OutOrStdout(), v); err != nil {
					return err
				}
			} else {
				fmt.Fprintln(cmd.OutOrStdout(), v.Text)
			}
			if !v.Allowed {
				return errRefused
			}
			return nil
		},
	}
	check.Flags().StringVar(&commit, "commit", "", "commit SHA, branch or tag (default HEAD)")
	cmd.AddCommand(set, show, check)
	return cmd
}
