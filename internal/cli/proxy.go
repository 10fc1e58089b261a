package cli

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cutover/cutover/internal/proxy"
)

const proxyTokenFile = "admin-token"

func newProxyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "Run and control cutover's blue/green proxy on its own",
		Long: `The proxy switches a service's traffic atomically from one set of targets to
another, drains the old set in the background, health-checks targets and
persists its routes. The control plane embeds it; "cutover proxy run" runs it
as its own process so a control-plane restart never interrupts traffic.

Subcommands find the admin endpoint from --admin or CUTOVER_PROXY_ADMIN. A TCP
admin endpoint needs the token (--token or CUTOVER_PROXY_TOKEN) that
"proxy run" writes to STATE_DIR/admin-token; a unix socket relies on its
file permissions.`,
	}
	var admin, token string
	cmd.PersistentFlags().StringVar(&admin, "admin", os.Getenv("CUTOVER_PROXY_ADMIN"), "admin endpoint: unix socket path or 127.0.0.1:PORT (env CUTOVER_PROXY_ADMIN)")
	cmd.PersistentFlags().StringVar(&token, "token", os.Getenv("CUTOVER_PROXY_TOKEN"), "admin token for a TCP admin endpoint (env CUTOVER_PROXY_TOKEN)")
	client := func() (*proxy.AdminClient, error) {
		c, err := proxy.NewAdminClient(admin, token)
		if err != nil {
			return nil, usageError{err}
		}
		return c, nil
	}
	cmd.AddCommand(newProxyRunCmd(&admin), newProxySetCmd(client), newProxySwitchCmd(client), newProxyWeightCmd(client), newProxyStatusCmd(client),
		newProxyPauseCmd(client), newProxyResumeCmd(client), newProxyRemoveCmd(client))
	return cmd
}

func newProxyRunCmd(admin *string) *cobra.Command {
	var listen, state, certFile, keyFile, logLevel string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Serve traffic and the admin API",
		Example: `  cutover proxy run --listen 127.0.0.1:8080 --admin /run/cutover/proxy.sock --state /var/lib/cutover-proxy
  cutover proxy run --listen :443 --tls-cert cert.pem --tls-key key.pem --admin 127.0.0.1:9090 --state ./proxy-state`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if *admin == "" {
				return usagef("--admin is required: a unix socket path or 127.0.0.1:PORT")
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return usagef("--log-level %q: want debug, info, warn or error", logLevel)
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			var tlsCfg *tls.Config
			if certFile != "" || keyFile != "" {
				cert, err := tls.LoadX509KeyPair(certFile, keyFile)
				if err != nil {
					return fmt.Errorf("--tls-cert/--tls-key: %w", err)
				}
				tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
			}
			p, err := proxy.New(proxy.Config{StateDir: state, Logger: log, TLS: tlsCfg})
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("--listen %s: %w", listen, err)
			}
			adminLn, token, err := adminListener(*admin, state)
			if err != nil {
				ln.Close()
				return err
			}
			adminSrv := proxy.ServeAdmin(adminLn, p.AdminHandler(token), proxy.AdminLimits{})
			errc := make(chan error, 1)
			go func() { errc <- p.Serve(ln) }()
			fmt.Fprintf(cmd.OutOrStdout(), "cutover proxy serving %s, admin on %s, state in %s\n", ln.Addr(), *admin, state)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			select {
			case <-ctx.Done():
			case err := <-errc:
				if err != nil && !errors.Is(err, http.ErrServerClosed) {
					return err
				}
			}
			shut, cancel := context.WithTimeout(context.Background(), proxy.DefaultDrainTimeout)
			defer cancel()
			_ = adminSrv.Shutdown(shut)
			return p.Shutdown(shut)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address for traffic")
	cmd.Flags().StringVar(&state, "state", "cutover-proxy-state", "directory where committed routes (and the admin token) are kept")
	cmd.Flags().StringVar(&certFile, "tls-cert", "", "TLS certificate file (serves HTTPS and HTTP/2)")
	cmd.Flags().StringVar(&keyFile, "tls-key", "", "TLS key file")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

// adminListener opens the admin endpoint. A unix socket is created with mode
// 0600; a TCP endpoint must be on loopback and gets a token.
func adminListener(admin, state string) (net.Listener, string, error) {
	if strings.HasPrefix(admin, "/") || strings.HasPrefix(admin, "./") || strings.HasPrefix(admin, "unix:") {
		path := strings.TrimPrefix(admin, "unix:")
		if fi, err := os.Lstat(path); err == nil && fi.Mode()&fs.ModeSocket != 0 {
			_ = os.Remove(path) // stale socket from a killed run
		}
		old := syscall.Umask(0o177)
		ln, err := net.Listen("unix", path)
		syscall.Umask(old)
		if err != nil {
			return nil, "", fmt.Errorf("--admin %s: %w", admin, err)
		}
		return ln, "", nil
	}
	host, _, err := net.SplitHostPort(admin)
	if err != nil {
		return nil, "", usagef("--admin %q: want a unix socket path or 127.0.0.1:PORT", admin)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, "", usagef("--admin %q: a TCP admin endpoint must be on loopback", admin)
	}
	token := os.Getenv("CUTOVER_PROXY_TOKEN")
	if token == "" {
		if token, err = proxy.LoadOrCreateAdminToken(filepath.Join(state, proxyTokenFile)); err != nil {
			return nil, "", err
		}
	} else if len(token) < proxy.MinAdminTokenLen {
		return nil, "", fmt.Errorf("%w: CUTOVER_PROXY_TOKEN has %d characters, at least %d are required", proxy.ErrWeakToken, len(token), proxy.MinAdminTokenLen)
	}
	ln, err := net.Listen("tcp", admin)
	if err != nil {
		return nil, "", fmt.Errorf("--admin %s: %w", admin, err)
	}
	return ln, token, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func newProxySetCmd(client func() (*proxy.AdminClient, error)) *cobra.Command {
	var targets, hosts, healthPath, prefix, drain string
	var force bool
	var output string
	cmd := &cobra.Command{
		Use:   "set SERVICE",
		Short: "Set a service's targets: a health-gated, atomic switch of its active set",
		Long: `Creates or updates SERVICE. When the targets change, the new set must pass its
health check (unless --force), then takes all new requests at once; the old
set becomes the standby and drains in the background. Returns when switched,
not when drained.`,
		Example: `  cutover proxy set web --target 127.0.0.1:9001,127.0.0.1:9002 --host example.com --health-path /up
  cutover proxy set web --target 127.0.0.1:9003 --force`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client()
			if err != nil {
				return err
			}
			req := proxy.AdminRequest{Targets: splitList(targets), Hosts: splitList(hosts), PathPrefix: prefix, Force: force, DrainTimeout: drain}
			req.Health.Path = healthPath
			var st proxy.ServiceStatus
			start := time.Now()
			if err := c.Do(cmd.Context(), "PUT", "/services/"+args[0], req, &st); err != nil {
				return err
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), st)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s -> %s (switched in %s)\n", args[0], strings.Join(req.Targets, ","), time.Since(start).Round(time.Microsecond))
			return nil
		},
	}
	cmd.Flags().StringVar(&targets, "target", "", "host:port[,host:port...] of the new active set (required)")
	cmd.Flags().StringVar(&hosts, "host", "", "host names to match (comma separated); none matches every host")
	cmd.Flags().StringVar(&prefix, "path-prefix", "", "path prefix to match")
	cmd.Flags().StringVar(&healthPath, "health-path", "", "health check path (default /up)")
	cmd.Flags().StringVar(&drain, "drain-timeout", "", "how long the old set may finish in-flight requests (default 30s)")
	cmd.Flags().BoolVar(&force, "force", false, "switch without waiting for the health check")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	_ = cmd.MarkFlagRequired("target")
	return cmd
}

func newProxySwitchCmd(client func() (*proxy.AdminClient, error)) *cobra.Command {
	var force bool
	var output string
	cmd := &cobra.Command{
		Use:   "switch SERVICE",
		Short: "Switch back to the standby set (the previous colour): an instant rollback",
		Long: `Makes the service's standby set, the one that was active before the last
switch, active again, health-gated unless --force. The set it replaces drains
in the background.`,
		Example: "  cutover proxy switch web",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client()
			if err != nil {
				return err
			}
			path := "/services/" + args[0] + "/switch"
			if force {
				path += "?force=true"
			}
			var st proxy.ServiceStatus
			start := time.Now()
			if err := c.Do(cmd.Context(), "POST", path, nil, &st); err != nil {
				return err
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), st)
			}
			addrs := make([]string, len(st.Active.Targets))
			for i, t := range st.Active.Targets {
				addrs[i] = t.Addr
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s -> %s (switched in %s)\n", args[0], strings.Join(addrs, ","), time.Since(start).Round(time.Microsecond))
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "switch without waiting for the health check")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

func newProxyWeightCmd(client func() (*proxy.AdminClient, error)) *cobra.Command {
	var canary, output string
	var percent int
	var sticky bool
	cmd := &cobra.Command{
		Use:     "weight SERVICE",
		Short:   "Send a share of a service's requests to a canary set",
		Example: "  cutover proxy weight web --canary 127.0.0.1:9003 --percent 5 --sticky\n  cutover proxy weight web --percent 0   # remove the canary",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if percent < 0 || percent > 100 {
				return usagef("--percent %d: want 0-100", percent)
			}
			c, err := client()
			if err != nil {
				return err
			}
			var st proxy.ServiceStatus
			if err := c.Do(cmd.Context(), "PUT", "/services/"+args[0]+"/canary", proxy.CanaryRequest{Targets: splitList(canary), Percent: percent, Sticky: sticky}, &st); err != nil {
				return err
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), st)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d%% to %s\n", args[0], percent, canary)
			return nil
		},
	}
	cmd.Flags().StringVar(&canary, "canary", "", "host:port[,host:port...] of the canary set")
	cmd.Flags().IntVar(&percent, "percent", 0, "share of requests for the canary, 0-100")
	cmd.Flags().BoolVar(&sticky, "sticky", false, "keep each client on its side with a cookie")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

func newProxyStatusCmd(client func() (*proxy.AdminClient, error)) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "status [SERVICE]",
		Short:   "Show services, their targets, health, counters and drains in progress",
		Example: "  cutover proxy status\n  cutover proxy status web --output json",
		Args:    maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client()
			if err != nil {
				return err
			}
			var list []proxy.ServiceStatus
			if len(args) == 1 {
				var st proxy.ServiceStatus
				if err := c.Do(cmd.Context(), "GET", "/services/"+args[0], nil, &st); err != nil {
					return err
				}
				list = append(list, st)
			} else if err := c.Do(cmd.Context(), "GET", "/services", nil, &list); err != nil {
				return err
			}
			if output == "json" {
				if len(args) == 1 {
					return printJSON(cmd.OutOrStdout(), list[0])
				}
				return printJSON(cmd.OutOrStdout(), list)
			}
			printProxyStatus(cmd.OutOrStdout(), list)
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

func printProxyStatus(w io.Writer, list []proxy.ServiceStatus) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tSET\tTARGET\tHEALTHY\tREQUESTS\t5XX\tCONN ERR\tIN FLIGHT")
	row := func(name, set string, s *proxy.SetStatus) {
		for _, t := range s.Targets {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%d\t%d\t%d\t%d\n", name, set, t.Addr, t.Healthy && !t.Ejected, t.Requests, t.Errors5xx, t.ConnErrors, s.InFlight)
		}
	}
	for _, s := range list {
		row(s.Name, "active", &s.Active)
		if s.Canary != nil {
			row(s.Name, fmt.Sprintf("canary %d%%", s.CanaryPercent), s.Canary)
		}
		if s.Standby != nil {
			row(s.Name, "standby", s.Standby)
		}
		for _, d := range s.Draining {
			fmt.Fprintf(tw, "%s\tdraining\t%s\t-\t-\t-\t-\t%d (+%d tunnels) since %s\n", s.Name, strings.Join(d.Targets, ","), d.InFlight, d.Tunnels, d.Since.Format(time.TimeOnly))
		}
		if s.Paused != "" {
			fmt.Fprintf(tw, "%s\tpaused\t%s\t\t\t\t\t\n", s.Name, s.Paused)
		}
	}
	tw.Flush()
}

func newProxyPauseCmd(client func() (*proxy.AdminClient, error)) *cobra.Command {
	var mode, message, timeout, output string
	cmd := &cobra.Command{
		Use:     "pause SERVICE",
		Short:   "Answer 503 with a maintenance page, or hold requests until resume",
		Example: "  cutover proxy pause web --mode maintenance --message 'Back at 10:00'\n  cutover proxy pause web --mode queue --timeout 10s",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client()
			if err != nil {
				return err
			}
			if err := c.Do(cmd.Context(), "PUT", "/services/"+args[0]+"/pause", proxy.PauseRequest{Mode: proxy.PauseMode(mode), Message: message, Timeout: timeout}, nil); err != nil {
				return err
			}
			return done(cmd, output, map[string]string{"service": args[0], "paused": mode}, "%s paused (%s)\n", args[0], mode)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	cmd.Flags().StringVar(&mode, "mode", "maintenance", "maintenance or queue")
	cmd.Flags().StringVar(&message, "message", "", "maintenance page message")
	cmd.Flags().StringVar(&timeout, "timeout", "", "longest a queued request waits (default 30s)")
	return cmd
}

func newProxyResumeCmd(client func() (*proxy.AdminClient, error)) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use: "resume SERVICE", Short: "End a pause; queued requests proceed", Example: "  cutover proxy resume web", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client()
			if err != nil {
				return err
			}
			if err := c.Do(cmd.Context(), "DELETE", "/services/"+args[0]+"/pause", nil, nil); err != nil {
				return err
			}
			return done(cmd, output, map[string]string{"service": args[0], "resumed": "true"}, "%s resumed\n", args[0])
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

func newProxyRemoveCmd(client func() (*proxy.AdminClient, error)) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use: "remove SERVICE", Short: "Stop routing a service (its sets drain)", Example: "  cutover proxy remove web", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client()
			if err != nil {
				return err
			}
			if err := c.Do(cmd.Context(), "DELETE", "/services/"+args[0], nil, nil); err != nil {
				return err
			}
			return done(cmd, output, map[string]string{"service": args[0], "removed": "true"}, "%s removed\n", args[0])
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

// done reports a proxy change: as JSON with --output json, else as text.
func done(cmd *cobra.Command, output string, v any, format string, args ...any) error {
	switch output {
	case "json":
		return printJSON(cmd.OutOrStdout(), v)
	case "text":
		fmt.Fprintf(cmd.OutOrStdout(), format, args...)
		return nil
	}
	return usagef("--output %q: want text or json", output)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// exactArgs is cobra.ExactArgs with a usage error (exit code 2).
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s takes %d argument(s), got %d (see --help)", cmd.CommandPath(), n, len(args))
		}
		return nil
	}
}

// maxArgs is cobra.MaximumNArgs with a usage error.
func maxArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > n {
			return usagef("%s takes at most %d argument(s), got %d (see --help)", cmd.CommandPath(), n, len(args))
		}
		return nil
	}
}
