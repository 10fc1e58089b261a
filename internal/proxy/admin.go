package proxy

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"
)

// maxAdminBody bounds admin request bodies.
const maxAdminBody = 1 << 20

// AdminRequest is the body of PUT /services/{name}.
type AdminRequest struct {
	Hosts        []string    `json:"hosts,omitempty"`
	PathPrefix   string      `json:"path_prefix,omitempty"`
	Targets      []string    `json:"targets"`
	Health       HealthCheck `json:"health"`
	DrainTimeout string      `json:"drain_timeout,omitempty"`
	Force        bool        `json:"force,omitempty"`
}

// CanaryRequest is the body of PUT /services/{name}/canary.
type CanaryRequest struct {
	Targets []string `json:"targets"`
	Percent int      `json:"percent"`
	Sticky  bool     `json:"sticky,omitempty"`
}

// PauseRequest is the body of PUT /services/{name}/pause.
type PauseRequest struct {
	Mode    PauseMode `json:"mode"`
	Message string    `json:"message,omitempty"`
	Timeout string    `json:"timeout,omitempty"`
}

// AdminHandler is the admin API. token "" means no token is required (a
// unix socket relies on its file permissions).
func (p *Proxy) AdminHandler(token string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /services", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, p.Status()) })
	mux.HandleFunc("GET /services/{name}", func(w http.ResponseWriter, r *http.Request) {
		st, err := p.StatusOf(r.PathValue("name"))
		respond(w, st, err)
	})
	mux.HandleFunc("PUT /services/{name}", func(w http.ResponseWriter, r *http.Request) {
		var req AdminRequest
		if !decode(w, r, &req) {
			return
		}
		spec := ServiceSpec{Name: r.PathValue("name"), Hosts: req.Hosts, PathPrefix: req.PathPrefix, Targets: req.Targets, Health: req.Health, Force: req.Force}
		if req.DrainTimeout != "" {
			d, err := time.ParseDuration(req.DrainTimeout)
			if err != nil || d < 0 {
				respond(w, nil, fmt.Errorf("%w: drain_timeout %q is not a duration", ErrInvalid, req.DrainTimeout))
				return
			}
			spec.DrainTimeout = d
		}
		start := time.Now()
		err := p.SetService(r.Context(), spec)
		if err != nil {
			respond(w, nil, err)
			return
		}
		st, err := p.StatusOf(spec.Name)
		w.Header().Set("X-Switch-Duration", time.Since(start).String())
		respond(w, st, err)
	})
	mux.HandleFunc("POST /services/{name}/switch", func(w http.ResponseWriter, r *http.Request) {
		force := r.URL.Query().Get("force") == "true"
		if err := p.SwitchToStandby(r.Context(), r.PathValue("name"), force); err != nil {
			respond(w, nil, err)
			return
		}
		st, err := p.StatusOf(r.PathValue("name"))
		respond(w, st, err)
	})
	mux.HandleFunc("PUT /services/{name}/canary", func(w http.ResponseWriter, r *http.Request) {
		var req CanaryRequest
		if !decode(w, r, &req) {
			return
		}
		err := p.SetCanary(r.Context(), r.PathValue("name"), req.Targets, req.Percent, req.Sticky)
		if err != nil {
			respond(w, nil, err)
			return
		}
		st, err := p.StatusOf(r.PathValue("name"))
		respond(w, st, err)
	})
	mux.HandleFunc("PUT /services/{name}/pause", func(w http.ResponseWriter, r *http.Request) {
		var req PauseRequest
		if !decode(w, r, &req) {
			return
		}
		var d time.Duration
		if req.Timeout != "" {
			var err error
			if d, err = time.ParseDuration(req.Timeout); err != nil {
				respond(w, nil, fmt.Errorf("%w: timeout %q is not a duration", ErrInvalid, req.Timeout))
				return
			}
		}
		if err := p.Pause(r.PathValue("name"), req.Mode, req.Message, d); err != nil {
			respond(w, nil, err)
			return
		}
		st, err := p.StatusOf(r.PathValue("name"))
		respond(w, st, err)
	})
	mux.HandleFunc("DELETE /services/{name}/pause", func(w http.ResponseWriter, r *http.Request) {
		if err := p.Resume(r.PathValue("name")); err != nil {
			respond(w, nil, err)
			return
		}
		st, err := p.StatusOf(r.PathValue("name"))
		respond(w, st, err)
	})
	mux.HandleFunc("DELETE /services/{name}", func(w http.ResponseWriter, r *http.Request) {
		respond(w, map[string]string{"removed": r.PathValue("name")}, p.RemoveService(r.Context(), r.PathValue("name")))
	})
	reg := prometheus.NewRegistry()
	reg.MustRegister(p.Collector())
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if token == "" {
		return mux
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="cutover-proxy"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong admin token"})
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// AdminLimits bound what one client can hold of the admin server, with or
// without a token. Zero fields take the DefaultAdmin... values.
type AdminLimits struct {
	ReadHeaderTimeout time.Duration // to send the request line and headers
	ReadTimeout       time.Duration // to send the whole request, body included
	WriteTimeout      time.Duration // from the end of the request to the end of the answer
	IdleTimeout       time.Duration // between requests on a kept-alive connection
	MaxHeaderBytes    int
	MaxConns          int // connections served at once; more wait to be accepted
}

func (l AdminLimits) withDefaults() AdminLimits {
	set := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	set(&l.ReadHeaderTimeout, DefaultAdminReadHeaderTimeout)
	set(&l.ReadTimeout, DefaultAdminReadTimeout)
	set(&l.WriteTimeout, DefaultAdminWriteTimeout)
	set(&l.IdleTimeout, DefaultAdminIdleTimeout)
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultAdminMaxHeaderBytes
	}
	if l.MaxConns <= 0 {
		l.MaxConns = DefaultAdminMaxConns
	}
	return l
}

// ServeAdmin serves h on ln within lim until the returned server is shut
// down. Slow or idle clients are cut off by the timeouts, and at most
// lim.MaxConns connections are served at once, so clients without a token
// cannot exhaust the server.
func ServeAdmin(ln net.Listener, h http.Handler, lim AdminLimits) *http.Server {
	lim = lim.withDefaults()
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		ReadTimeout:       lim.ReadTimeout,
		WriteTimeout:      lim.WriteTimeout,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    lim.MaxHeaderBytes,
	}
	go func() { _ = srv.Serve(netutil.LimitListener(ln, lim.MaxConns)) }()
	return srv
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAdminBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad request body: " + err.Error()})
		return false
	}
	return true
}

func respond(w http.ResponseWriter, v any, err error) {
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, v)
	case errors.Is(err, ErrNotFound):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
	case errors.Is(err, ErrInvalid):
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
	case errors.Is(err, ErrUnhealthy):
		writeJSON(w, http.StatusConflict, map[string]string{"error": err.Error()})
	default:
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// AdminClient talks to a proxy's admin API over a unix socket or TCP.
type AdminClient struct {
	base  string
	token string
	hc    *http.Client
}

// adminClientTimeout bounds one admin call (a switch waits for the new
// targets' health check): a wedged proxy fails the call, never hangs it.
const adminClientTimeout = 2 * time.Minute

// NewAdminClient returns a client for endpoint: a unix socket path (absolute,
// or prefixed with unix:) or host:port / http://host:port.
func NewAdminClient(endpoint, token string) (*AdminClient, error) {
	if endpoint == "" {
		return nil, fmt.Errorf("%w: admin endpoint is empty (set --admin or CUTOVER_PROXY_ADMIN)", ErrInvalid)
	}
	c := &AdminClient{token: token}
	if sock, ok := unixPath(endpoint); ok {
		c.base = "http://unix"
		c.hc = &http.Client{Timeout: adminClientTimeout, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			d := net.Dialer{Timeout: 5 * time.Second}
			return d.DialContext(ctx, "unix", sock)
		}}}
		return c, nil
	}
	base := endpoint
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("%w: admin endpoint %q: want a unix socket path or host:port", ErrInvalid, endpoint)
	}
	c.base = strings.TrimSuffix(base, "/")
	c.hc = &http.Client{Timeout: adminClientTimeout}
	return c, nil
}

// unixPath reports whether endpoint names a unix socket.
func unixPath(endpoint string) (string, bool) {
	if p, ok := strings.CutPrefix(endpoint, "unix:"); ok {
		return p, true
	}
	if strings.HasPrefix(endpoint, "/") || strings.HasPrefix(endpoint, "./") {
		return endpoint, true
	}
	return "", false
}

// Do sends a request and decodes a JSON answer into out.
func (c *AdminClient) Do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("proxy admin %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return &AdminError{Status: resp.StatusCode, Message: e.Error}
		}
		return &AdminError{Status: resp.StatusCode, Message: strings.TrimSpace(string(b))}
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// AdminError is an error answered by the admin API.
type AdminError struct {
	Status  int
	Message string
}

func (e *AdminError) Error() string { return e.Message }
