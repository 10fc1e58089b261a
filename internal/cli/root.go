// Package cli holds cutover's cobra commands, one file per verb. Commands
// parse flags and call one method: of the API client for control-plane
// verbs, of the proxy package for `cutover proxy run`.
package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/cutover/cutover/internal/core"
)

// Exit codes: 0 success, 1 failure, 2 bad usage.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
	// exitInterrupted is what a shell reports for a command ended by Ctrl-C.
	exitInterrupted = 130
)

// usageError marks errors caused by bad flags or arguments (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usagef returns a usage error (exit code 2).
func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// NewRoot builds the root command with every verb attached.
func NewRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "cutover",
		Short:         "Build once per commit, deploy blue/green with zero downtime, roll back in milliseconds",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newProxyCmd(),
		newServerCmd(),
		newDemoCmd(),
		newValidateCmd(),
	)
	root.AddCommand(newVersionCmd())
	addControlCommands(root)
	refuseUnknownSubcommands(root)
	return root
}

// refuseUnknownSubcommands makes a command that only groups others (cutover
// config, cutover proxy) answer a misspelt subcommand with a usage error,
// exit 2, instead of printing its help and succeeding.
func refuseUnknownSubcommands(cmd *cobra.Command) {
	for _, sub := range cmd.Commands() {
		refuseUnknownSubcommands(sub)
	}
	if !cmd.HasSubCommands() || cmd.Run != nil || cmd.RunE != nil || !cmd.HasParent() {
		return
	}
	cmd.Args = func(c *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usagef("unknown command %q for %q (see %s --help)", args[0], c.CommandPath(), c.CommandPath())
		}
		return nil
	}
	cmd.RunE = func(c *cobra.Command, args []string) error { return c.Help() }
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print cutover's version and the commit it was built from",
		Example: "  cutover version",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			version, rev := "(devel)", ""
			if bi, ok := debug.ReadBuildInfo(); ok {
				if bi.Main.Version != "" {
					version = bi.Main.Version
				}
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" {
						rev = s.Value
					}
				}
				fmt.Fprintf(cmd.OutOrStdout(), "cutover %s", version)
				if rev != "" {
					fmt.Fprintf(cmd.OutOrStdout(), " (%s)", core.ShortSHA(rev))
				}
				fmt.Fprintf(cmd.OutOrStdout(), " %s\n", bi.GoVersion)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "cutover %s\n", version)
			return nil
		},
	}
}

// Main runs the CLI with args and returns the process exit code.
func Main(args []string) int {
	root := NewRoot()
	root.SetArgs(args)
	// Ctrl-C cancels the command's context: a command that follows work on
	// the server says what goes on there before it exits.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := root.ExecuteContext(ctx); err != nil {
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			return exitInterrupted
		}
		fmt.Fprintln(os.Stderr, "error:", err)
		var ue usageError
		if errors.As(err, &ue) {
			return exitUsage
		}
		return exitFail
	}
	return exitOK
}
