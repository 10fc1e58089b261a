package manifest

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/yamlfield"
)

// Load reads and validates dir/cutover.yml.
func Load(dir string) (*Manifest, error) {
	return LoadFile(filepath.Join(dir, FileName))
}

// LoadFile reads and validates the manifest at path.
func LoadFile(path string) (*Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", FileName, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxManifestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", FileName, err)
	}
	return Parse(data)
}

// Parse validates a manifest and applies defaults. Every error is a
// *FieldError that names the line and the field path:
// "cutover.yml:12: environments.production.instances: ...". All of them are
// returned, joined, in file order.
func Parse(data []byte) (*Manifest, error) {
	if len(data) > MaxManifestBytes {
		return nil, &FieldError{Msg: fmt.Sprintf("larger than %d bytes", MaxManifestBytes), File: FileName}
	}
	root, err := yamlfield.Document(FileName, data, "manifest")
	if err != nil {
		return nil, err
	}
	if root == nil {
		return nil, &FieldError{Msg: "empty file", File: FileName}
	}
	d := &decoder{yamlfield.Decoder{File: FileName, Aliases: aliases}}
	m := d.manifest(root)
	if err := d.Err(); err != nil {
		return nil, err
	}
	return m, nil
}

// The keys accepted at each level, in documentation order.
var (
	rootKeys    = []string{"app", "runtime", "docker", "build", "run", "health", "smoke", "migrate", "verify", "standby_for", "scale_in_delay", "investigate_for", "on_confirm", "stop_grace", "release", "compat", "environments"}
	buildKeys   = []string{"command", "timeout"}
	runKeys     = []string{"command", "env"}
	healthKeys  = []string{"path", "interval", "timeout", "deadline"}
	smokeKeys   = []string{"name", "method", "path", "status", "body_contains", "timeout"}
	migrateKeys = []string{"command", "timeout"}
	verifyKeys  = []string{"for", "max_error_rate", "min_requests"}
	releaseKeys = []string{"main", "production", "branch_prefix", "tag_prefix", "signing_key"}
	compatKeys  = []string{"test", "oldest", "timeout"}
	envKeys     = []string{"listen", "host", "instances", "from", "env", "docker"}
	dockerKeys  = []string{"file", "context", "port", "memory", "cpus", "restart", "keep"}
	envDocker   = []string{"hosts"}
)

func (d *decoder) manifest(root *yaml.Node) *Manifest {
	r := d.Mapping(yamlfield.Entry{Val: root}, "", "build: {command: ...}", rootKeys...)
	m := &Manifest{App: d.Str(r.Get("app"), "app")}
	if m.App != "" && core.ValidateName("app", m.App) != nil {
		d.Fail(r.Get("app").Line(), "app", "%q: use lower-case letters, digits, '-' or '_'", m.App)
	}

	m.Runtime = d.oneOf(r.Get("runtime"), "runtime", DefaultRuntime, RuntimeProcess, RuntimeDocker)
	docker := m.Runtime == RuntimeDocker
	m.Docker = d.docker(r.Get("docker"), docker)

	b := d.Mapping(r.Get("build"), "build", "{command: go build -o bin/app .}", buildKeys...)
	m.Build = Build{Command: d.argv(b.Get("command"), "build.command"), Timeout: d.duration(b.Get("timeout"), "build.timeout", DefaultBuildTimeout)}
	if len(m.Build.Command) == 0 && !docker { // an image may be built by its Dockerfile alone
		d.Fail(cmp.Or(b.Get("command").Line(), b.Line), "build.command", "is required (for example: go build -o bin/app .)")
	}

	run := d.Mapping(r.Get("run"), "run", "{command: bin/app}", runKeys...)
	m.Run = Run{Command: d.argv(run.Get("command"), "run.command"), Env: d.env(run.Get("env"), "run.env")}
	if len(m.Run.Command) == 0 && !docker { // a container runs its image's entrypoint
		d.Fail(cmp.Or(run.Get("command").Line(), run.Line), "run.command", "is required (for example: bin/app, or [sh, -c, 'exec app --port \"$PORT\"'])")
	}

	m.Health = d.health(r.Get("health"))
	m.Smoke = d.smokes(r.Get("smoke"))
	if e := r.Get("migrate"); e.Given() {
		mg := d.Mapping(e, "migrate", "{command: bin/app migrate}", migrateKeys...)
		m.Migrate = &Migrate{Command: d.argv(mg.Get("command"), "migrate.command"), Timeout: d.duration(mg.Get("timeout"), "migrate.timeout", DefaultMigrateTimeout)}
		if len(m.Migrate.Command) == 0 {
			d.Fail(cmp.Or(mg.Get("command").Line(), mg.Line), "migrate.command", "is required when migrate is given")
		}
	}
	m.Verify = d.verify(r.Get("verify"))

	m.StandbyFor = d.duration(r.Get("standby_for"), "standby_for", DefaultStandbyFor)
	m.ScaleInDelay = d.duration(r.Get("scale_in_delay"), "scale_in_delay", 0)
	switch sf, sd := r.Get("standby_for"), r.Get("scale_in_delay"); {
	case sf.Given() && sd.Given():
		d.Fail(sd.Line(), "scale_in_delay", "is another name for standby_for, which is also given: keep one")
	case sd.Given() && m.ScaleInDelay > 0:
		m.StandbyFor = m.ScaleInDelay
	}
	m.InvestigateFor = d.duration(r.Get("investigate_for"), "investigate_for", DefaultInvestigateFor)
	m.OnConfirm = d.oneOf(r.Get("on_confirm"), "on_confirm", DefaultOnConfirm, OnConfirmSync, OnConfirmScaleIn)
	m.StopGrace = d.duration(r.Get("stop_grace"), "stop_grace", DefaultStopGrace)
	m.Release = d.releaseLines(r.Get("release"))
	if e := r.Get("compat"); e.Given() {
		m.Compat = d.compat(e)
	}
	m.Environments = d.environments(r.Get("environments"))
	if !docker {
		for _, e := range m.Environments {
			if len(e.DockerHosts) > 0 {
				d.Fail(r.Get("environments").Line(), "environments."+e.Name+".docker.hosts", "is for runtime docker (this manifest's runtime is %s)", m.Runtime)
			}
		}
	}
	return m
}

// docker decodes the docker section; given for another runtime, it is an
// error (it would be silently ignored).
func (d *decoder) docker(e yamlfield.Entry, isDocker bool) Docker {
	dk := Docker{File: DefaultDockerfile, Context: DefaultDockerContext, Port: DefaultDockerPort, Restart: DefaultDockerRestart, Keep: DefaultDockerKeep}
	if !e.Given() {
		return dk
	}
	if !isDocker {
		d.Fail(e.Line(), "docker", "is for runtime docker: add runtime: docker, or remove this section")
		return dk
	}
	f := d.Mapping(e, "docker", "{file: Dockerfile, port: 8080}", dockerKeys...)
	at := func(k string) (yamlfield.Entry, string) { return f.Get(k), "docker." + k }
	if en, p := at("file"); en.Given() {
		dk.File = d.relPath(en, p)
	}
	if en, p := at("context"); en.Given() {
		dk.Context = d.relPath(en, p)
	}
	en, p := at("port")
	dk.Port = d.Integer(en, p, DefaultDockerPort, 1, 65535)
	en, p = at("memory")
	dk.Memory = d.bytes(en, p)
	en, p = at("cpus")
	if n, ok := d.Scalar(en, p, "a number of CPUs, e.g. 0.5"); ok {
		var v float64
		if (n.Tag != "!!float" && n.Tag != "!!int") || n.Decode(&v) != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			d.Fail(n.Line, p, "%q is not a number of CPUs (for example 0.5 or 2)", n.Value)
		} else if v <= 0 || v > 1024 {
			d.Fail(n.Line, p, "%s is out of range: want more than 0 and at most 1024 (leave it out for no limit)", n.Value)
		} else {
			dk.CPUs = v
		}
	}
	en, p = at("restart")
	dk.Restart = d.oneOf(en, p, DefaultDockerRestart, "no", "on-failure", "unless-stopped", "always")
	en, p = at("keep")
	dk.Keep = d.Integer(en, p, DefaultDockerKeep, 1, MaxDockerKeep)
	return dk
}

// relPath decodes a path inside the repository: relative, without ..
func (d *decoder) relPath(e yamlfield.Entry, path string) string {
	s := d.Str(e, path)
	clean := filepath.ToSlash(filepath.Clean(s))
	if s == "" || filepath.IsAbs(s) || clean == ".." || strings.HasPrefix(clean, "../") {
		d.Fail(e.Line(), path, "%q: want a path inside the repository, relative to its root (for example: . or docker/Dockerfile)", s)
		return ""
	}
	return clean
}

// byteUnits are the suffixes bytes accepts, as Docker writes them (binary).
var byteUnits = map[string]int64{"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30}

var byteSize = regexp.MustCompile(`^([0-9]+)\s*([a-zA-Z]*)$`)

// bytes decodes an optional size such as 256m or 1g (binary units, as
// Docker reads them); absent, it is 0 (no limit). Docker refuses less than
// 6 MiB for a container.
func (d *decoder) bytes(e yamlfield.Entry, path string) int64 {
	const want = "a size such as 256m or 1g"
	n, ok := d.Scalar(e, path, want)
	if !ok {
		return 0
	}
	m := byteSize.FindStringSubmatch(strings.TrimSpace(n.Value))
	unit, known := int64(0), false
	if m != nil {
		unit, known = byteUnits[strings.ToLower(m[2])]
	}
	if !known {
		d.Fail(n.Line, path, "%q is not %s (units: b, k, m, g)", n.Value, want)
		return 0
	}
	v, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || v > (1<<50)/unit {
		d.Fail(n.Line, path, "%q is too large", n.Value)
		return 0
	}
	if v*unit < 6<<20 {
		d.Fail(n.Line, path, "%q is less than the 6m Docker allows a container", n.Value)
		return 0
	}
	return v * unit
}

// validPath says whether p can be sent as an HTTP request path.
func validPath(p string) bool {
	return strings.HasPrefix(p, "/") && !strings.ContainsFunc(p, func(r rune) bool { return r <= ' ' || r == 0x7f })
}

func (d *decoder) health(e yamlfield.Entry) Health {
	f := d.Mapping(e, "health", "{path: /up, deadline: 60s}", healthKeys...)
	h := Health{
		Path:     DefaultHealthPath,
		Interval: d.duration(f.Get("interval"), "health.interval", DefaultHealthInterval),
		Timeout:  d.duration(f.Get("timeout"), "health.timeout", DefaultHealthTimeout),
		Deadline: d.duration(f.Get("deadline"), "health.deadline", DefaultHealthDeadline),
	}
	if p := f.Get("path"); p.Given() {
		if h.Path = d.Str(p, "health.path"); isScalar(p) && !validPath(h.Path) {
			d.Fail(p.Line(), "health.path", "%q must start with / and contain no spaces", h.Path)
		}
	}
	if h.Deadline < h.Interval {
		d.Fail(cmp.Or(f.Get("deadline").Line(), f.Get("interval").Line()), "health.deadline", "%s is shorter than the interval %s", h.Deadline, h.Interval)
	}
	// A check never waits past the deadline, so a longer per-request timeout
	// is the deadline.
	h.Timeout = min(h.Timeout, h.Deadline)
	return h
}

// methodToken is an HTTP method as servers compare it: upper case.
var methodToken = regexp.MustCompile(`^[A-Z][A-Z_-]{0,31}$`)

func (d *decoder) smokes(e yamlfield.Entry) []Smoke {
	n := yamlfield.Deref(e.Val)
	if yamlfield.IsNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.Fail(n.Line, "smoke", "want a list, not %s (for example: [{path: /, status: 200}])", yamlfield.KindName(n))
		return nil
	}
	out := make([]Smoke, 0, len(n.Content))
	for i, c := range n.Content {
		path := fmt.Sprintf("smoke[%d]", i)
		f := d.Mapping(yamlfield.Entry{Key: c, Val: c}, path, "{path: /, status: 200}", smokeKeys...)
		at := func(k string) (yamlfield.Entry, string) { return f.Get(k), yamlfield.Join(path, k) }
		s := Smoke{Method: "GET", Status: 200}
		en, p := at("name")
		s.Name = d.Str(en, p)
		if en, p = at("method"); en.Given() {
			s.Method = d.Str(en, p)
			if !methodToken.MatchString(s.Method) {
				msg := fmt.Sprintf("%q is not an HTTP method (GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, or another upper-case token)", s.Method)
				if up := strings.ToUpper(s.Method); methodToken.MatchString(up) {
					msg += fmt.Sprintf("; methods are case-sensitive: did you mean %s?", up)
				}
				d.Fail(en.Line(), p, "%s", msg)
			}
		}
		en, p = at("path")
		switch s.Path = d.Str(en, p); {
		case !en.Given():
			d.Fail(c.Line, p, "is required (for example: /)")
		case isScalar(en) && !validPath(s.Path):
			d.Fail(en.Line(), p, "%q must start with / and contain no spaces", s.Path)
		}
		en, p = at("status")
		s.Status = d.Integer(en, p, 200, 100, 599)
		en, p = at("body_contains")
		if n, ok := d.Scalar(en, p, "a string"); ok {
			s.BodyContains = n.Value // may span lines
		}
		en, p = at("timeout")
		s.Timeout = d.duration(en, p, DefaultSmokeTimeout)
		if s.Name == "" {
			s.Name = s.Method + " " + s.Path
		}
		out = append(out, s)
	}
	return out
}

func (d *decoder) verify(e yamlfield.Entry) Verify {
	f := d.Mapping(e, "verify", "{for: 10s, max_error_rate: 0.01}", verifyKeys...)
	return Verify{
		For:          d.duration(f.Get("for"), "verify.for", DefaultVerifyFor),
		MaxErrorRate: d.share(f.Get("max_error_rate"), "verify.max_error_rate", DefaultMaxErrorRate),
		MinRequests:  d.Integer(f.Get("min_requests"), "verify.min_requests", DefaultMinRequests, 1, MaxMinRequests),
	}
}

func (d *decoder) compat(e yamlfield.Entry) *Compat {
	f := d.Mapping(e, "compat", "{test: go test ./compat, oldest: 1.0.0}", compatKeys...)
	c := &Compat{
		Test:    d.argv(f.Get("test"), "compat.test"),
		Oldest:  d.Str(f.Get("oldest"), "compat.oldest"),
		Timeout: d.duration(f.Get("timeout"), "compat.timeout", DefaultCompatTimeout),
	}
	if len(c.Test) == 0 {
		d.Fail(cmp.Or(f.Get("test").Line(), f.Line), "compat.test", "is required when compat is given (the command that runs the old version's tests)")
	}
	if !versionPattern.MatchString(c.Oldest) {
		d.Fail(cmp.Or(f.Get("oldest").Line(), f.Line), "compat.oldest", "%q: want the oldest compatible version, MAJOR.MINOR.PATCH such as 2.3.20", c.Oldest)
	}
	return c
}

// versionPattern is core's semantic version syntax without the v prefix.
var versionPattern = regexp.MustCompile(`^(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})(-[0-9A-Za-z]+(\.[0-9A-Za-z]+)*)?$`)

// refPattern is what release branch and tag names may contain.
var refPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,100}$`)

func (d *decoder) releaseLines(e yamlfield.Entry) ReleaseLines {
	f := d.Mapping(e, "release", "{main: main, production: stages/prod}", releaseKeys...)
	var r ReleaseLines
	for _, l := range []struct {
		key string
		val *string
		def string
	}{
		{"main", &r.Main, DefaultMainLine},
		{"production", &r.Production, DefaultProductionLine},
		{"branch_prefix", &r.BranchPrefix, DefaultBranchPrefix},
		{"tag_prefix", &r.TagPrefix, DefaultTagPrefix},
	} {
		p := "release." + l.key
		if *l.val = d.Str(f.Get(l.key), p); *l.val == "" {
			*l.val = l.def
			continue
		}
		if v := *l.val; !refPattern.MatchString(v) || strings.Contains(v, "..") || strings.HasSuffix(v, ".lock") {
			d.Fail(f.Get(l.key).Line(), p, "%q is not a valid git ref name part (letters, digits, '.', '_', '/', '-'; starting with a letter or digit)", v)
		}
	}
	if r.Main == r.Production {
		d.Fail(cmp.Or(f.Get("production").Line(), f.Line), "release.production", "%q is also the main line", r.Production)
	}
	r.SigningKey = d.Str(f.Get("signing_key"), "release.signing_key")
	if r.SigningKey != "" && (strings.HasPrefix(r.SigningKey, "-") || strings.ContainsAny(r.SigningKey, " \t;$`")) {
		d.Fail(f.Get("signing_key").Line(), "release.signing_key", "%q is not a key id", r.SigningKey)
	}
	return r
}

// hostPattern is a DNS name or an IPv4 address, without a port.
var hostPattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)

var portPattern = regexp.MustCompile(`^[0-9]{1,5}$`)

// listenAddr checks a host:port address and returns its host and port.
func listenAddr(s string) (host string, port int, problem string) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Sprintf("%q is not host:port (for example 127.0.0.1:8080, or :8080 for every address)", s)
	}
	if h != "" && !hostPattern.MatchString(h) && net.ParseIP(h) == nil {
		return "", 0, fmt.Sprintf("%q: %q is not a host name or IP address", s, h)
	}
	n, err := strconv.Atoi(p)
	if !portPattern.MatchString(p) || err != nil || n < 1 || n > 65535 {
		return "", 0, fmt.Sprintf("%q: port %q is out of range (1-65535)", s, p)
	}
	return h, n, ""
}

func wildcard(host string) bool { return host == "" || host == "0.0.0.0" || host == "::" }

func (d *decoder) environments(e yamlfield.Entry) []Environment {
	const example = "staging: {listen: 127.0.0.1:8081}"
	if !e.Given() {
		d.Fail(e.Line(), "environments", "at least one environment is required (for example %s)", example)
		return nil
	}
	f := d.Mapping(e, "environments", "{"+example+"}")
	if yamlfield.Deref(e.Val).Kind != yaml.MappingNode {
		return nil
	}
	var (
		out         []Environment
		fromLines   = map[string]int{}
		listenLines = map[string]int{}
		position    = map[string]int{}
	)
	for _, name := range f.Keys {
		en := f.Get(name)
		path := "environments." + name
		if core.ValidateName("env", name) != nil {
			d.Fail(en.Line(), path, "%q is not a valid environment name: use lower-case letters, digits, '-' or '_'", name)
			continue
		}
		ef := d.Mapping(en, path, "{listen: 127.0.0.1:8081}", envKeys...)
		at := func(k string) (yamlfield.Entry, string) { return ef.Get(k), path + "." + k }
		env := Environment{Name: name}
		le, lp := at("listen")
		env.Listen = d.Str(le, lp)
		if env.Listen == "" {
			d.Fail(cmp.Or(le.Line(), en.Line()), lp, "is required (host:port of the environment's public proxy, for example 127.0.0.1:8080)")
		} else if _, _, problem := listenAddr(env.Listen); problem != "" {
			d.Fail(le.Line(), lp, "%s", problem)
		}
		he, hp := at("host")
		if env.Host = d.Str(he, hp); env.Host != "" && !hostPattern.MatchString(env.Host) {
			msg := fmt.Sprintf("%q is not a host name (letters, digits, '-' and '.')", env.Host)
			if h, _, err := net.SplitHostPort(env.Host); err == nil && hostPattern.MatchString(h) {
				msg = fmt.Sprintf("%q: give the name without a port (requests are matched on the name; the port is in listen)", env.Host)
			}
			d.Fail(he.Line(), hp, "%s", msg)
		}
		ie, ip := at("instances")
		env.Instances = d.Integer(ie, ip, DefaultInstances, 1, MaxInstances)
		fe, fp := at("from")
		env.From = d.Str(fe, fp)
		ve, vp := at("env")
		env.Env = d.env(ve, vp)
		env.DockerHosts = d.dockerHosts(at("docker"))
		position[name] = len(out)
		fromLines[name], listenLines[name] = fe.Line(), le.Line()
		out = append(out, env)
	}
	d.listenConflicts(out, listenLines)
	d.promotionChain(out, position, fromLines)
	return out
}

// dockerHosts decodes an environment's docker: {hosts: [a, b]}: names of
// Docker hosts the server defines (--docker-host NAME=ADDRESS).
func (d *decoder) dockerHosts(e yamlfield.Entry, path string) []string {
	f := d.Mapping(e, path, "{hosts: [web-1, web-2]}", envDocker...)
	he := f.Get("hosts")
	n := yamlfield.Deref(he.Val)
	if yamlfield.IsNull(n) {
		return nil
	}
	p := path + ".hosts"
	if n.Kind != yaml.SequenceNode {
		d.Fail(n.Line, p, "want a list of host names, not %s (for example: [web-1, web-2])", yamlfield.KindName(n))
		return nil
	}
	var out []string
	for i, c := range n.Content {
		c = yamlfield.Deref(c)
		ip := fmt.Sprintf("%s[%d]", p, i)
		if c.Kind != yaml.ScalarNode || core.ValidateName("host", c.Value) != nil {
			d.Fail(c.Line, ip, "%q is not a host name: use lower-case letters, digits, '-' or '_' (the names given to --docker-host)", c.Value)
			continue
		}
		if slices.Contains(out, c.Value) {
			d.Fail(c.Line, ip, "%s is listed twice", c.Value)
			continue
		}
		out = append(out, c.Value)
	}
	if len(out) > MaxDockerHosts {
		d.Fail(n.Line, p, "%d hosts: at most %d", len(out), MaxDockerHosts)
	}
	return out
}

// listenConflicts refuses two environments on one address and host, and
// two addresses that cannot both be bound (a wildcard and another address
// on the same port).
func (d *decoder) listenConflicts(envs []Environment, lines map[string]int) {
	for j, b := range envs {
		bh, bp, problem := listenAddr(b.Listen)
		if problem != "" {
			continue
		}
		for _, a := range envs[:j] {
			ah, ap, problem := listenAddr(a.Listen)
			if problem != "" || ap != bp {
				continue
			}
			path := "environments." + b.Name + ".listen"
			if ah == bh && strings.EqualFold(a.Host, b.Host) {
				d.Fail(lines[b.Name], path, "%q is already used by environment %s (give one of them a different host)", b.Listen, a.Name)
				break
			}
			if ah != bh && (wildcard(ah) || wildcard(bh)) {
				d.Fail(lines[b.Name], path, "%q and environment %s's %q cannot both be bound: use the same address, or different ports", b.Listen, a.Name, a.Listen)
				break
			}
		}
	}
}

// promotionChain checks every from: it names another environment listed
// before this one, so the chain has no cycle.
func (d *decoder) promotionChain(envs []Environment, position map[string]int, lines map[string]int) {
	names := make([]string, len(envs))
	for i, e := range envs {
		names[i] = e.Name
	}
	for i, e := range envs {
		path := "environments." + e.Name + ".from"
		switch p, known := position[e.From]; {
		case e.From == "":
		case e.From == e.Name:
			d.Fail(lines[e.Name], path, "%q is this environment: it must promote from another one (%s)", e.From, strings.Join(names, ", "))
		case !known:
			msg := fmt.Sprintf("%q is not an environment (environments: %s)", e.From, strings.Join(names, ", "))
			if s := suggest(e.From, names); s != "" {
				msg += fmt.Sprintf("; did you mean %s?", s)
			}
			d.Fail(lines[e.Name], path, "%s", msg)
		case p > i:
			if cycle := fromCycle(envs, position, i); cycle != nil {
				d.Fail(lines[e.Name], path, "%q forms a cycle (%s): the first environment must not promote from anywhere", e.From, strings.Join(cycle, " <- "))
			} else {
				d.Fail(lines[e.Name], path, "%q is listed after %s: environments are listed in promotion order, so move %s above %s", e.From, e.Name, e.From, e.Name)
			}
		}
	}
}

// fromCycle returns the cycle of froms through envs[i], or nil.
func fromCycle(envs []Environment, position map[string]int, i int) []string {
	chain := []string{envs[i].Name}
	for j, steps := i, 0; steps <= len(envs); steps++ {
		p, ok := position[envs[j].From]
		if !ok {
			return nil
		}
		chain = append(chain, envs[p].Name)
		if p == i {
			return chain
		}
		j = p
	}
	return nil
}
