package cli

import (
	"github.com/spf13/cobra"

	"github.com/cutover/cutover/internal/demo"
)

func newDemoCmd() *cobra.Command {
	var keep bool
	var workers int
	var runtime string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Show the whole release path on the embedded default, in a throwaway directory",
		Long: `Creates a git repository from the example app, starts a cutover server
(SQLite, local processes, embedded proxy), builds and deploys v1 to staging and
production, deploys a healthy v2 while a load generator runs against
production, makes a config-only release, deploys a broken v3 that is switched
back automatically, rolls production back two steps, and prints the timeline
and the number of failed requests the load saw (it must be 0).

With --runtime docker the app runs as containers on the local Docker engine
(DOCKER_HOST or unix:///var/run/docker.sock, named as two hosts; production
runs on both): each commit is built once into a FROM scratch image, pushed to
an in-process registry and deployed by digest. The demo removes its
containers and images from the engine at the end.`,
		Example: `  go run ./cmd/cutover demo
  cutover demo --keep              # keep the directory to look at logs and state
  cutover demo --runtime docker    # the same story on the local Docker engine`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := demo.CheckRuntime(runtime); err != nil {
				return usagef("--runtime: %v", err)
			}
			_, err := demo.Run(cmd.Context(), demo.Options{Out: cmd.OutOrStdout(), Keep: keep, Workers: workers, Runtime: runtime})
			return err
		},
	}
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the demo directory (repository, data, logs)")
	cmd.Flags().IntVar(&workers, "workers", 8, "load workers against production")
	cmd.Flags().StringVar(&runtime, "runtime", demo.RuntimeProcess, "where the app runs: process (local processes) or docker (the local Docker engine)")
	return cmd
}
