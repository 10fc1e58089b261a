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

	"github.com/spf13/cobra"
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
	addControlCommands(root)
	return root
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
