package cli

import (
	"github.com/spf13/cobra"

	"github.com/cutover/cutover/internal/demo"
)

func newDemoCmd() *cobra.Command {
	var keep bool
	var workers int
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Show the whole release path on the embedded default, in a throwaway directory",
		Long: `Creates a git repository from the example app, starts a cutover server
(SQLite, local processes, embedded proxy), builds and deploys v1 to staging and
production, deploys a healthy v2 while a load generator runs against
production, makes a config-only release, deploys a broken v3 that is switched
back automatically, rolls production back two steps, and prints the timeline
and the number of failed requests the load saw (it must be 0).`,
		Example: `  go run ./cmd/cutover demo
  cutover demo --keep     # keep the directory to look at logs and state`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := demo.Run(cmd.Context(), demo.Options{Out: cmd.OutOrStdout(), Keep: keep, Workers: workers})
			return err
		},
	}
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the demo directory (repository, data, logs)")
	cmd.Flags().IntVar(&workers, "workers", 8, "load workers against production")
	return cmd
}
