// Package docker runs instances as containers on one or several Docker
// Engine hosts. Each container publishes its port on the host's loopback
// (or a configured address) and carries labels that say what it is, so a
// restarted server finds its containers again from the engine alone: the
// engine is the driver's only state.
package docker

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/authconfig"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/deploy"
)

// Defaults.
const (
	DefaultHostName  = "local"
	DefaultPublishIP = "127.0.0.1"
	DefaultPort      = 8080
	DefaultRestart   = "unless-stopped"
	// DefaultListenHost is the HOST an app gets unless its environment
	// says otherwise: inside a container it must listen on every
	// interface for the published port to reach it.
	DefaultListenHost = "0.0.0.0"
	pingTimeout       = 10 * time.Second
	// A container's log rotates like a process's: 10 MB, 3 files.
	logMaxSize  = "10m"
	logMaxFiles = "3"
	// StoppedKeep is how long a stopped container stays for its logs when
	// its release is still kept (like a stopped process's log files).
	StoppedKeep = 7 * 24 * time.Hour
)

// logConfig bounds the engine's log of every container cutover starts.
var logConfig = container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": logMaxSize, "max-file": logMaxFiles}}

// Labels every container and task the driver starts carries.
const (
	LabelManaged  = "cutover.managed" // "true"
	LabelApp      = "cutover.app"
	LabelEnv      = "cutover.env"
	LabelColour   = "cutover.colour"
	LabelRelease  = "cutover.release"
	LabelInstance = "cutover.instance" // index within the group on its host
	LabelArtifact = "cutover.artifact" // the image reference it was started from
	LabelHost     = "cutover.host"     // the configured host name that started it
	LabelTask     = "cutover.task"     // a one-off task's name (migrate)
	LabelOwner    = "cutover.owner"    // the installation (Config.Owner) whose containers these are
)

// Host is one Docker Engine the driver runs containers on.
type Host struct {
	Name string
	// Address is DOCKER_HOST style: unix:///var/run/docker.sock,
	// tcp://host:2375 or ssh://user@host[:port].
	Address string
	// PublishIP is the host address containers publish their port on and
	// the driver dials: by default 127.0.0.1 for a local socket, the
	// address's IP for tcp:// and ssh:// (a name must be given one).
	PublishIP string
}

// defaultPublishIP is where a host's containers publish their ports when
// its configuration does not say: the loopback of a local engine, the IP
// of a remote one. A remote host known by name needs an explicit IP: the
// engine binds an address, not a name, and its loopback is not ours.
func defaultPublishIP(address string) (string, error) {
	u, err := url.Parse(address)
	if err != nil || u.Scheme == "unix" || u.Scheme == "" {
		return DefaultPublishIP, nil
	}
	if ip := net.ParseIP(u.Hostname()); ip != nil {
		return ip.String(), nil
	}
	return "", fmt.Errorf("%w: give the address its containers publish their ports on, reachable from this server (--docker-host NAME=%s,publish=IP): the host is named %q, and its loopback is not this server's",
		core.ErrInvalid, address, u.Hostname())
}

// Registry holds the credentials used to pull images by digest.
type Registry struct {
	Username, Password string
	ServerAddress      string
}

// LocalAddress is the default host's address, as the docker CLI finds
// it: DOCKER_HOST, else the default socket.
func LocalAddress() string {
	if a := os.Getenv(client.EnvOverrideHost); a != "" {
		return a
	}
	return client.DefaultDockerHost
}

// Config configures a Driver.
type Config struct {
	// Hosts are the named engines; none means one host named "local" at
	// DOCKER_HOST or the default socket.
	Hosts    []Host
	Registry Registry
	Logger   *slog.Logger
	// Owner names the installation (one database of cutover servers):
	// its containers carry it, and List and Prune see no other's, so two
	// installations (or tests) sharing an engine never stop each other's
	// containers as orphans. "" is an installation of its own.
	Owner string
}

// engine is a configured host and its API client.
type engine struct {
	Host
	api *client.Client
}

// Driver runs cutover instances as Docker containers.
type Driver struct {
	cfg     Config
	log     *slog.Logger
	engines []*engine // in configuration order; the first is the default
	auth    string    // RegistryAuth header value, "" without credentials
}

var _ deploy.Driver = (*Driver)(nil)

// New connects to every configured host and pings it (negotiating the API
// version); an unreachable host is an error naming it and its address.
func New(ctx context.Context, cfg Config) (*Driver, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	fromEnv := len(cfg.Hosts) == 0
	if fromEnv {
		cfg.Hosts = []Host{{Name: DefaultHostName, Address: LocalAddress()}}
	}
	d := &Driver{cfg: cfg, log: cfg.Logger}
	if r := cfg.Registry; r.Username != "" || r.Password != "" {
		auth, err := authconfig.Encode(registry.AuthConfig{Username: r.Username, Password: r.Password, ServerAddress: r.ServerAddress})
		if err != nil {
			return nil, fmt.Errorf("docker driver: registry credentials: %w", err)
		}
		d.auth = auth
	}
	seen := map[string]bool{}
	for _, h := range cfg.Hosts {
		if h.Name == "" {
			return nil, fmt.Errorf("%w: docker host %q has no name", core.ErrInvalid, h.Address)
		}
		if seen[h.Name] {
			return nil, fmt.Errorf("%w: docker host name %q is used twice", core.ErrInvalid, h.Name)
		}
		seen[h.Name] = true
		if h.PublishIP == "" {
			ip, err := defaultPublishIP(h.Address)
			if err != nil {
				d.Close()
				return nil, fmt.Errorf("docker host %s (%s): %w", h.Name, h.Address, err)
			}
			h.PublishIP = ip
		}
		api, err := newClient(h.Address, fromEnv)
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("docker host %s (%s): %w", h.Name, h.Address, err)
		}
		e := &engine{Host: h, api: api}
		d.engines = append(d.engines, e)
		pctx, cancel := context.WithTimeout(ctx, pingTimeout)
		_, err = api.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true})
		cancel()
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("docker host %s (%s) cannot be reached: %w", h.Name, h.Address, err)
		}
	}
	return d, nil
}

// Available reports whether the default Docker engine (DOCKER_HOST or the
// default socket) answers, so tests and the demo can skip with the reason.
func Available(ctx context.Context) error {
	d, err := New(ctx, Config{})
	if err != nil {
		return err
	}
	d.Close()
	return nil
}

// Close releases the API clients. Containers keep running.
func (d *Driver) Close() {
	for _, e := range d.engines {
		_ = e.api.Close()
	}
}

// Hosts returns the configured host names, the default first.
func (d *Driver) Hosts() []string {
	names := make([]string, len(d.engines))
	for i, e := range d.engines {
		names[i] = e.Name
	}
	return names
}

// newClient returns an API client for a DOCKER_HOST style address. API
// version negotiation is on by default in this client (MinAPIVersion 1.40).
// The default host also takes DOCKER_TLS_VERIFY, DOCKER_CERT_PATH and
// DOCKER_API_VERSION from the environment, as the docker CLI does.
func newClient(address string, fromEnv bool) (*client.Client, error) {
	u, err := url.Parse(address)
	if err != nil {
		return nil, fmt.Errorf("%w: address %q: %v", core.ErrInvalid, address, err)
	}
	switch u.Scheme {
	case "unix", "tcp":
		if fromEnv {
			return client.New(client.FromEnv, client.WithHost(address))
		}
		return client.New(client.WithHost(address))
	case "ssh":
		dial, err := sshDialer(u)
		if err != nil {
			return nil, err
		}
		// The connection is ssh's stdio: the transport dials through it and
		// never through a proxy. The client copies the transport it is
		// given, so it is complete before it is handed over, after WithHost
		// (which would set its own dialer).
		tr := &http.Transport{DialContext: dial, IdleConnTimeout: 30 * time.Second, MaxIdleConns: 6}
		return client.New(client.WithHost("tcp://docker.example.com:2375"), client.WithHTTPClient(&http.Client{Transport: tr}))
	}
	return nil, fmt.Errorf("%w: address %q: scheme %q (want unix://, tcp:// or ssh://)", core.ErrInvalid, address, u.Scheme)
}

// BuildClient is the first host's engine client: the one images are
// built on (internal/image shares it, so every address form works alike).
// It stays the driver's: Close closes it.
func (d *Driver) BuildClient() *client.Client { return d.engines[0].api }

// enginesFor returns the engines named (none = the default host).
func (d *Driver) enginesFor(names []string) ([]*engine, error) {
	if len(names) == 0 {
		return d.engines[:1], nil
	}
	var out []*engine
	for _, n := range names {
		e := d.engine(n)
		if e == nil {
			return nil, fmt.Errorf("%w: unknown docker host %q (known: %s)", core.ErrInvalid, n, strings.Join(d.Hosts(), ", "))
		}
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	return out, nil
}

func (d *Driver) engine(name string) *engine {
	for _, e := range d.engines {
		if e.Name == name {
			return e
		}
	}
	return nil
}

// engineOf returns the engine an instance runs on.
func (d *Driver) engineOf(in core.Instance) (*engine, error) {
	name := in.Data["host"]
	if name == "" {
		return d.engines[0], nil
	}
	if e := d.engine(name); e != nil {
		return e, nil
	}
	return nil, fmt.Errorf("instance %s runs on docker host %q, which is not configured (known: %s)", in.ID, name, strings.Join(d.Hosts(), ", "))
}

// containerOf is the container an instance names (its ID, else its name).
func containerOf(in core.Instance) string {
	if c := in.Data["container"]; c != "" {
		return c
	}
	return in.ID
}

// errNotFound reports whether the engine said the object does not exist.
func errNotFound(err error) bool {
	return cerrdefs.IsNotFound(err)
}
