package cli

import (
	"strings"

	"github.com/spf13/cobra"
)

// newHookCmd returns `cutover hook`.
func newHookCmd(c *control) *cobra.Command {
	cmd := &cobra.Command{Use: "hook", Short: "Set up inbound webhooks from GitHub and GitLab"}
	secret := &cobra.Command{
		Use:   "secret APP",
		Short: "Make a new webhook secret for APP and print it (shown once)",
		Long: `Replaces APP's webhook secret with a new random one and prints it once.
Deliveries signed with the old secret are refused from now on.

Give GitHub the URL SERVER/api/v1/hooks/github/APP (content type
application/json) and the secret; give GitLab SERVER/api/v1/hooks/gitlab/APP
and the secret as its token. GitHub's status, check_run and approving
pull_request_review events and GitLab's pipeline events are recorded as CI
checks and reviews of the commit. Needs the admin role.`,
		Example: "  cutover hook secret hello\n  cutover hook secret hello --output json",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.forApp(args...)
			if err != nil {
				return err
			}
			s, err := cl.NewHookSecret(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(cmd.OutOrStdout(), s)
			}
			base := strings.TrimSuffix(c.server, "/")
			if !strings.Contains(base, "://") {
				base = "http://" + base
			}
			eprintf(cmd, "hook secret of %s replaced; deliver to\n  GitHub: %s%s\n  GitLab: %s%s\nThe secret is shown once:\n", s.App, base, s.GitHub, base, s.GitLab)
			printf(cmd, "%s\n", s.Secret)
			return nil
		},
	}
	cmd.AddCommand(secret)
	return cmd
}
