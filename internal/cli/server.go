package cli

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/cutover/cutover/internal/deploy"
	"github.com/cutover/cutover/internal/image"
	"github.com/cutover/cutover/internal/notify"
	"github.com/cutover/cutover/internal/server"
)

func newServerCmd() *cobra.Command {
	var dataDir, listen, logLevel, proxyAdmin, database, driver, name string
	var leaseTTL time.Duration
	var keepReleases int
	var allowPrivateNotify bool
	var smtpAddr, smtpFrom, smtpUser string
	var smtpRequireTLS bool
	var notifyRetryFor time.Duration
	var useDocker, registryInsecure bool
	var dockerHosts []string
	var registryRepo, registryUser string
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane: API, deploy machine and embedded proxies",
		Long: `Run the control plane. State lives in --data-dir (SQLite database, artifacts,
instance logs, proxy routes, the API token and the key that encrypts secrets).
The API listens on loopback by default and requires the bearer token that is
created on first start and printed once (it is also kept, mode 0600, in
DATA_DIR/api-token for the local CLI).

Several servers may share one PostgreSQL database (--database): one of them
holds the server lease and runs the deployments; the others answer queries,
refuse changes with a message naming the active server, and take over within
--lease-ttl when it dies.`,
		Example: `  cutover server --data-dir .cutover --listen 127.0.0.1:7070
  cutover proxy run --listen 127.0.0.1:8080 --admin /run/cutover/proxy.sock --state /var/lib/cutover-proxy &
  cutover server --proxy-admin /run/cutover/proxy.sock
  cutover server --docker-host web-1=ssh://deploy@10.0.0.5 --docker-host web-2=ssh://deploy@10.0.0.6 \
      --registry registry.example.com/team --registry-user ci   # password in CUTOVER_REGISTRY_PASSWORD`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return usagef("--log-level %q: want debug, info, warn or error", logLevel)
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if notifyRetryFor < time.Second {
				return usagef("--notify-retry-for %s: want at least 1s, e.g. 30m or 24h", notifyRetryFor)
			}
			var relay *notify.SMTP
			switch {
			case smtpAddr != "":
				if smtpFrom == "" {
					return usagef("--smtp-addr %q needs --smtp-from ADDR: the From address of notification mail", smtpAddr)
				}
				relay = &notify.SMTP{Addr: smtpAddr, From: smtpFrom, Username: smtpUser, Password: os.Getenv("CUTOVER_SMTP_PASSWORD"), RequireTLS: smtpRequireTLS}
				if err := relay.Check(); err != nil {
					return usagef("%v", err)
				}
			case smtpFrom != "" || smtpUser != "":
				return usagef("--smtp-from and --smtp-user need --smtp-addr HOST:PORT")
			}
			dk := server.Docker{Off: !useDocker}
			for _, h := range dockerHosts {
				host, err := server.ParseDockerHost(h)
				if err != nil {
					return usagef("%v", err)
				}
				dk.Hosts = append(dk.Hosts, host)
			}
			if registryRepo != "" {
				if err := server.CheckRegistryRepo(registryRepo); err != nil {
					return usagef("%v", err)
				}
				dk.Registry = image.Registry{Repo: registryRepo, Username: registryUser, Password: os.Getenv("CUTOVER_REGISTRY_PASSWORD"), Insecure: registryInsecure}
			} else if registryUser != "" || registryInsecure {
				return usagef("--registry-user and --registry-insecure need --registry HOST[:PORT]/PATH")
			}
			srv, err := server.Open(ctx, server.Config{
				DataDir: dataDir, Listen: listen, Logger: log, Token: os.Getenv("CUTOVER_TOKEN"),
				ProxyAdmin: proxyAdmin, ProxyToken: os.Getenv("CUTOVER_PROXY_TOKEN"), DatabaseURL: database,
				Driver: driver, Name: name, LeaseTTL: leaseTTL, KeepReleases: keepReleases,
				AllowPrivateNotify: allowPrivateNotify, SMTP: relay, NotifyRetryFor: notifyRetryFor, Docker: dk,
			})
			if err != nil {
				return err
			}
			defer srv.Close()
			out := cmd.OutOrStdout()
			role := "active"
			if !srv.Deploy.Active() {
				role = "standby: another server holds the lease"
			}
			fmt.Fprintf(out, "cutover server on %s (data in %s; %s)\n", srv.URL(), dataDir, role)
			if srv.NewToken {
				fmt.Fprintf(out, "API token (shown once; kept in %s): %s\n", filepath.Join(dataDir, server.TokenFile), srv.Token)
			}
			<-ctx.Done()
			fmt.Fprintln(out, "shutting down; instances keep running and are adopted on the next start")
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", server.DefaultDataDir, "directory for the database, artifacts, logs and keys")
	cmd.Flags().StringVar(&listen, "listen", server.DefaultListen, "API address (keep it on loopback or behind TLS)")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	cmd.Flags().StringVar(&database, "database", os.Getenv("CUTOVER_DATABASE"), "PostgreSQL URL (postgres://...) instead of SQLite in the data dir, for several servers sharing one database (env CUTOVER_DATABASE)")
	cmd.Flags().StringVar(&driver, "driver", server.DriverProcess, "the default runtime: process (local child processes); an app's manifest chooses its own (runtime: docker)")
	cmd.Flags().BoolVar(&useDocker, "docker", true, "run apps whose manifest says runtime: docker, on the engines of --docker-host (the engine at DOCKER_HOST or the default socket when none is given); --docker=false turns it off")
	cmd.Flags().StringArrayVar(&dockerHosts, "docker-host", nil, "a Docker engine by name, NAME=ADDRESS[,publish=IP] (unix:///PATH, tcp://HOST:PORT, ssh://USER@HOST); repeat for several; environments list names in docker.hosts; the first builds images")
	cmd.Flags().StringVar(&registryRepo, "registry", "", "OCI registry repository images are pushed to and pulled from, HOST[:PORT]/PATH (images are HOST[:PORT]/PATH/APP, tagged with the commit SHA); none keeps images on the engines, which suits one host")
	cmd.Flags().StringVar(&registryUser, "registry-user", "", "registry user; the password is read from env CUTOVER_REGISTRY_PASSWORD")
	cmd.Flags().BoolVar(&registryInsecure, "registry-insecure", false, "speak plain HTTP to the registry (loopback registries always may)")
	cmd.Flags().StringVar(&name, "name", "", "this server's name in the lease and in locks (default HOST:DATA_DIR); a restart with the same name takes over at once")
	cmd.Flags().DurationVar(&leaseTTL, "lease-ttl", server.DefaultLeaseTTL, "how long the server lease lasts unrenewed: how soon a standby takes over from a dead server")
	cmd.Flags().BoolVar(&allowPrivateNotify, "allow-private-notify", false, "let notifications reach loopback, link-local and private addresses (refused by default: a subscription could otherwise probe the server's own network)")
	cmd.Flags().DurationVar(&notifyRetryFor, "notify-retry-for", notify.DefaultRetryFor, "how long a failing notification is retried (backoff 1s doubling to 5m, with jitter), from its first attempt; other subscriptions are never held back")
	cmd.Flags().StringVar(&smtpAddr, "smtp-addr", "", "SMTP relay HOST:PORT for email notifications (STARTTLS is used when offered)")
	cmd.Flags().StringVar(&smtpFrom, "smtp-from", "", "From address of notification mail, e.g. 'Cutover <cutover@example.com>'")
	cmd.Flags().StringVar(&smtpUser, "smtp-user", "", "SMTP user for AUTH PLAIN (over TLS only); the password is read from env CUTOVER_SMTP_PASSWORD")
	cmd.Flags().BoolVar(&smtpRequireTLS, "smtp-require-tls", false, "refuse a relay that does not offer STARTTLS")
	cmd.Flags().IntVar(&keepReleases, "keep-releases", deploy.DefaultKeepReleases, "rollback targets per environment whose artifacts are kept; older artifacts are collected hourly (runtime docker apps follow their manifest's docker.keep, default 5)")
	cmd.Flags().StringVar(&proxyAdmin, "proxy-admin", "", "route traffic through a separate `cutover proxy run` at this admin endpoint (its token in CUTOVER_PROXY_TOKEN) instead of the embedded proxies, so a control-plane restart never interrupts traffic")
	return cmd
}

// noArgs refuses positional arguments with a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("%s takes no arguments, got %q", cmd.CommandPath(), args)
	}
	return nil
}
