package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cutover/cutover/internal/client"
	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/server"
)

// control holds the flags every control-plane verb shares.
type control struct {
	server  string
	token   string
	dataDir string
	output  string
}

func (c *control) register(cmd *cobra.Command) {
	def := os.Getenv("CUTOVER_SERVER")
	if def == "" {
		def = "http://" + server.DefaultListen
	}
	cmd.PersistentFlags().StringVar(&c.server, "server", def, "API base URL (env CUTOVER_SERVER)")
	cmd.PersistentFlags().StringVar(&c.token, "token", "", "API token (env CUTOVER_TOKEN; default: DATA_DIR/api-token)")
	cmd.PersistentFlags().StringVar(&c.dataDir, "data-dir", server.DefaultDataDir, "server data directory, to read the API token from")
	cmd.PersistentFlags().StringVarP(&c.output, "output", "o", "text", "text or json")
}

// client returns an API client, finding the token in the flag, the
// environment or the local server's token file.
func (c *control) client() (*client.Client, error) {
	if c.output != "text" && c.output != "json" {
		return nil, usagef("--output %q: want text or json", c.output)
	}
	token := c.token
	if token == "" {
		token = os.Getenv("CUTOVER_TOKEN")
	}
	if token == "" {
		b, err := os.ReadFile(filepath.Join(c.dataDir, server.TokenFile))
		if err != nil {
			return nil, usagef("no API token: pass --token, set CUTOVER_TOKEN, or run where %s exists", filepath.Join(c.dataDir, server.TokenFile))
		}
		token = strings.TrimSpace(string(b))
	}
	return client.New(c.server, token), nil
}

func (c *control) json() bool { return c.output == "json" }

// forApp validates the APP [ENV] arguments, then returns a client.
func (c *control) forApp(args ...string) (*client.Client, error) {
	if err := validAppEnv(args); err != nil {
		return nil, err
	}
	return c.client()
}

// validName checks an app or environment argument before any request.
func validName(field, v string) error {
	if err := core.ValidateName(field, v); err != nil {
		return usageError{err}
	}
	return nil
}

func validAppEnv(args []string) error {
	if err := validName("app", args[0]); err != nil {
		return err
	}
	if len(args) > 1 {
		return validName("env", args[1])
	}
	return nil
}

// addControlCommands attaches the control-plane verbs to root.
func addControlCommands(root *cobra.Command) {
	c := &control{}
	cmds := []*cobra.Command{
		newAppCmd(c), newBuildCmd(c), newDeployCmd(c), newRollbackCmd(c), newConfirmCmd(c), newHoldCmd(c),
		newConfigCmd(c), newStatusCmd(c), newHistoryCmd(c), newReleasesCmd(c), newLogsCmd(c), newEventsCmd(c),
		newReleaseCmd(c), newDiffCmd(c), newFollowCmd(c), newCancelCmd(c), newStopCmd(c),
		newCheckCmd(c), newReviewCmd(c), newApproveCmd(c), newLockCmd(c), newUnlockCmd(c), newPolicyCmd(c),
		newPromoteCmd(c), newRecycleCmd(c), newHookCmd(c),
	}
	cmds = append(cmds, newUserCmds(c)...)
	cmds = append(cmds, newNotifyCmd(c))
	for _, cmd := range cmds {
		c.register(cmd)
		root.AddCommand(cmd)
	}
}

func printf(cmd *cobra.Command, format string, args ...any) {
	fmt.Fprintf(cmd.OutOrStdout(), format, args...)
}

// eprintf writes to standard error: what a person needs to know that is
// not the command's output.
func eprintf(cmd *cobra.Command, format string, args ...any) {
	fmt.Fprintf(cmd.ErrOrStderr(), format, args...)
}
