package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/cutover/cutover/internal/client"
	"github.com/cutover/cutover/internal/core"
)

// newUserCmds returns `cutover user` and `cutover token`.
func newUserCmds(c *control) []*cobra.Command {
	return []*cobra.Command{newUserCmd(c), newTokenCmd(c)}
}

func newUserCmd(c *control) *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Add and list the people (and robots) who use the API"}
	var u client.NewUser
	add := &cobra.Command{
		Use:   "add NAME --email EMAIL --role ROLE [--apps GLOB] [--envs GLOB]",
		Short: "Add a user with one role binding and print their first API token (shown once)",
		Long: `Adds a user who may do what ROLE allows on the apps and environments matching
--apps and --envs (path.Match globs, * by default):

  viewer    read status, history, releases, logs, config keys and events
  deployer  a viewer who also builds, deploys, rolls back, confirms, holds,
            stops, cancels and manages release candidates
  approver  a viewer who also reviews and approves
  admin     everything: users, tokens, config, apps

Needs the admin role. The new token is printed once; give it to the user, who
passes it as --token or CUTOVER_TOKEN.`,
		Example: "  cutover user add ann --email ann@example.com --role deployer --apps hello --envs 'staging'\n" +
			"  cutover user add ci --email ci@example.com --role deployer --output json",
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			u.Name = args[0]
			if err := validName("name", u.Name); err != nil {
				return err
			}
			if u.Email == "" {
				return usagef("--email is required")
			}
			b := core.RoleBinding{Role: u.Role, Apps: u.Apps, Envs: u.Envs}
			if err := b.Validate(); err != nil {
				return usageError{err}
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			added, err := cl.AddUser(cmd.Context(), u)
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(cmd.OutOrStdout(), added)
			}
			eprintf(cmd, "user %s added: %s (token %s); the token is shown once:\n", added.User.Name, bindings(added.User.Bindings), added.TokenID)
			printf(cmd, "%s\n", added.Token)
			return nil
		},
	}
	add.Flags().StringVar(&u.Email, "email", "", "the user's email address")
	add.Flags().Var((*roleFlag)(&u.Role), "role", "viewer, deployer, approver or admin")
	add.Flags().StringVar(&u.Apps, "apps", core.AnyScope, "apps the role applies to (a glob)")
	add.Flags().StringVar(&u.Envs, "envs", core.AnyScope, "environments the role applies to (a glob)")
	list := &cobra.Command{
		Use: "list", Short: "List users and their roles", Example: "  cutover user list\n  cutover user list --output json", Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			us, err := cl.Users(cmd.Context())
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(cmd.OutOrStdout(), us)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tEMAIL\tROLES")
			for _, u := range us {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", u.Name, u.Email, bindings(u.Bindings))
			}
			return tw.Flush()
		},
	}
	cmd.AddCommand(add, list)
	return cmd
}

func newTokenCmd(c *control) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Create and revoke API tokens"}
	create := &cobra.Command{
		Use:     "create NAME",
		Short:   "Create a new API token for user NAME and print it (shown once)",
		Long:    "Creates a token for NAME. You may create your own; an admin may create anyone's.",
		Example: "  cutover token create ann\n  cutover token create ci --output json",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := validName("name", args[0]); err != nil {
				return err
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			t, err := cl.CreateToken(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(cmd.OutOrStdout(), t)
			}
			eprintf(cmd, "token %s created for %s; it is shown once:\n", t.ID, args[0])
			printf(cmd, "%s\n", t.Token)
			return nil
		},
	}
	revoke := &cobra.Command{
		Use:     "revoke ID",
		Short:   "Revoke an API token: requests with it are refused from now on",
		Long:    "Revokes token ID (as printed by token create or user add). You may revoke your own; an admin may revoke anyone's.",
		Example: "  cutover token revoke 3f9a0c1b2d4e",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			if err := cl.RevokeToken(cmd.Context(), args[0]); err != nil {
				return err
			}
			if c.json() {
				return printJSON(cmd.OutOrStdout(), map[string]string{"revoked": args[0]})
			}
			printf(cmd, "token %s revoked\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(create, revoke)
	return cmd
}

// bindings reads "deployer on app hello, env staging; viewer".
func bindings(bs []core.RoleBinding) string {
	if len(bs) == 0 {
		return "no role"
	}
	s := make([]string, len(bs))
	for i, b := range bs {
		s[i] = b.String()
	}
	return strings.Join(s, "; ")
}

// roleFlag is --role, checked when parsed.
type roleFlag core.Role

func (f *roleFlag) String() string { return string(*f) }
func (f *roleFlag) Type() string   { return "role" }
func (f *roleFlag) Set(v string) error {
	if err := core.ValidateRole(core.Role(v)); err != nil {
		return err
	}
	*f = roleFlag(v)
	return nil
}
