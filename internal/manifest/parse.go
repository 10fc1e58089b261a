package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/cutover/cutover/internal/core"
)

// Argv is a command as an argument list. In YAML it is either a list of
// strings or one string split on white space; it is never given to a shell.
type Argv []string

// UnmarshalYAML accepts a string or a list of strings.
func (a *Argv) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*a = strings.Fields(n.Value)
		return nil
	case yaml.SequenceNode:
		var s []string
		if err := n.Decode(&s); err != nil {
			return err
		}
		*a = s
		return nil
	}
	return fmt.Errorf("line %d: want a command as a string or a list of strings", n.Line)
}

// raw mirrors the file with commands as Argv; it is decoded strictly.
type raw struct {
	App            string       `yaml:"app"`
	Build          rawBuild     `yaml:"build"`
	Run            rawRun       `yaml:"run"`
	Health         Health       `yaml:"health"`
	Smoke          []Smoke      `yaml:"smoke"`
	Migrate        *rawMigrate  `yaml:"migrate"`
	Verify         Verify       `yaml:"verify"`
	StandbyFor     yaml.Node    `yaml:"standby_for"`
	ScaleInDelay   yaml.Node    `yaml:"scale_in_delay"`
	InvestigateFor yaml.Node    `yaml:"investigate_for"`
	OnConfirm      string       `yaml:"on_confirm"`
	StopGrace      yaml.Node    `yaml:"stop_grace"`
	Release        ReleaseLines `yaml:"release"`
	Compat         *rawCompat   `yaml:"compat"`
	Environments   yaml.Node    `yaml:"environments"`
}

type rawCompat struct {
	Test    Argv      `yaml:"test"`
	Oldest  string    `yaml:"oldest"`
	Timeout yaml.Node `yaml:"timeout"`
}

type rawBuild struct {
	Command Argv      `yaml:"command"`
	Timeout yaml.Node `yaml:"timeout"`
}

type rawRun struct {
	Command Argv              `yaml:"command"`
	Env     map[string]string `yaml:"env"`
}

type rawMigrate struct {
	Command Argv      `yaml:"command"`
	Timeout yaml.Node `yaml:"timeout"`
}

// Load reads and validates dir/cutover.yml.
func Load(dir string) (*Manifest, error) {
	path := filepath.Join(dir, FileName)
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

// Parse validates a manifest and applies defaults. Every error names the
// field path and the line: "cutover.yml:12: environments.production.instances: ...".
func Parse(data []byte) (*Manifest, error) {
	if len(data) > MaxManifestBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", FileName, MaxManifestBytes)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %s", FileName, cleanYAMLError(err))
	}
	if len(root.Content) == 0 {
		return nil, fmt.Errorf("%s: empty file", FileName)
	}
	var r raw
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%s: %s", FileName, cleanYAMLError(err))
	}
	v := &validator{root: root.Content[0]}
	m := &Manifest{
		App:       r.App,
		Build:     Build{Command: r.Build.Command},
		Run:       Run{Command: r.Run.Command, Env: r.Run.Env},
		Health:    r.Health,
		Smoke:     r.Smoke,
		Verify:    r.Verify,
		OnConfirm: r.OnConfirm,
	}
	m.Build.Timeout = v.duration(&r.Build.Timeout, DefaultBuildTimeout, "build", "timeout")
	m.StandbyFor = v.duration(&r.StandbyFor, 0, "standby_for")
	m.ScaleInDelay = v.duration(&r.ScaleInDelay, 0, "scale_in_delay")
	m.InvestigateFor = v.duration(&r.InvestigateFor, DefaultInvestigateFor, "investigate_for")
	m.StopGrace = v.duration(&r.StopGrace, DefaultStopGrace, "stop_grace")
	if r.Migrate != nil {
		m.Migrate = &Migrate{Command: r.Migrate.Command}
		m.Migrate.Timeout = v.duration(&r.Migrate.Timeout, DefaultMigrateTimeout, "migrate", "timeout")
		if len(m.Migrate.Command) == 0 {
			v.fail([]string{"migrate", "command"}, "is required when migrate is given")
		}
	}
	if m.App != "" {
		if err := core.ValidateName("app", m.App); err != nil {
			v.fail([]string{"app"}, fmt.Sprintf("%q: use lower-case letters, digits, '-' or '_'", m.App))
		}
	}
	if len(m.Build.Command) == 0 {
		v.fail([]string{"build", "command"}, "is required (for example: go build -o bin/app .)")
	}
	if len(m.Run.Command) == 0 {
		v.fail([]string{"run", "command"}, "is required (for example: bin/app)")
	}
	for k := range m.Run.Env {
		if !validEnvKey(k) {
			v.fail([]string{"run", "env", k}, fmt.Sprintf("%q is not a valid environment variable name", k))
		}
	}
	v.health(&m.Health)
	for i := range m.Smoke {
		v.smoke(i, &m.Smoke[i])
	}
	v.verify(&m.Verify)
	switch {
	case m.StandbyFor > 0:
	case m.ScaleInDelay > 0:
		m.StandbyFor = m.ScaleInDelay
	default:
		m.StandbyFor = DefaultStandbyFor
	}
	if m.OnConfirm == "" {
		m.OnConfirm = DefaultOnConfirm
	} else if m.OnConfirm != OnConfirmSync && m.OnConfirm != OnConfirmScaleIn {
		v.fail([]string{"on_confirm"}, fmt.Sprintf("%q: want %s or %s", m.OnConfirm, OnConfirmSync, OnConfirmScaleIn))
	}
	m.Release = r.Release
	v.releaseLines(&m.Release)
	if r.Compat != nil {
		m.Compat = &Compat{Test: r.Compat.Test, Oldest: r.Compat.Oldest}
		m.Compat.Timeout = v.duration(&r.Compat.Timeout, DefaultCompatTimeout, "compat", "timeout")
		if len(m.Compat.Test) == 0 {
			v.fail([]string{"compat", "test"}, "is required when compat is given (the command that runs the old version's tests)")
		}
		if !versionPattern.MatchString(m.Compat.Oldest) {
			v.fail([]string{"compat", "oldest"}, fmt.Sprintf("%q: want the oldest compatible version, MAJOR.MINOR.PATCH such as 2.3.20", m.Compat.Oldest))
		}
	}
	m.Environments = v.environments(&r.Environments)
	if err := errors.Join(v.errs...); err != nil {
		return nil, err
	}
	return m, nil
}

type validator struct {
	root *yaml.Node
	errs []error
}

// fail records an error for the field at path, with the line of the
// deepest node of path that exists.
func (v *validator) fail(path []string, msg string) {
	line := v.line(path)
	loc := FileName
	if line > 0 {
		loc += ":" + strconv.Itoa(line)
	}
	v.errs = append(v.errs, fmt.Errorf("%s: %s: %s", loc, strings.Join(path, "."), msg))
}

func (v *validator) line(path []string) int {
	n := v.root
	line := 0
	for _, p := range path {
		if n == nil {
			break
		}
		var next *yaml.Node
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == p {
					line = n.Content[i].Line
					next = n.Content[i+1]
					break
				}
			}
		case yaml.SequenceNode:
			if i, err := strconv.Atoi(p); err == nil && i < len(n.Content) {
				next = n.Content[i]
				line = next.Line
			}
		}
		n = next
	}
	return line
}

// duration decodes an optional duration node.
func (v *validator) duration(n *yaml.Node, def time.Duration, path ...string) time.Duration {
	if n.Kind == 0 {
		return def
	}
	var d time.Duration
	if err := n.Decode(&d); err != nil || d < 0 {
		v.fail(path, fmt.Sprintf("%q is not a duration (examples: 500ms, 30s, 15m)", n.Value))
		return def
	}
	if d == 0 {
		return def
	}
	return d
}

func (v *validator) health(h *Health) {
	if h.Path == "" {
		h.Path = DefaultHealthPath
	} else if !strings.HasPrefix(h.Path, "/") {
		v.fail([]string{"health", "path"}, fmt.Sprintf("%q must start with /", h.Path))
	}
	if h.Interval <= 0 {
		h.Interval = DefaultHealthInterval
	}
	if h.Timeout <= 0 {
		h.Timeout = DefaultHealthTimeout
	}
	if h.Deadline <= 0 {
		h.Deadline = DefaultHealthDeadline
	}
	if h.Deadline < h.Interval {
		v.fail([]string{"health", "deadline"}, fmt.Sprintf("%s is shorter than the interval %s", h.Deadline, h.Interval))
	}
}

func (v *validator) smoke(i int, s *Smoke) {
	path := func(f string) []string { return []string{"smoke", strconv.Itoa(i), f} }
	if s.Path == "" || !strings.HasPrefix(s.Path, "/") {
		v.fail(path("path"), fmt.Sprintf("%q must start with /", s.Path))
	}
	if s.Method == "" {
		s.Method = "GET"
	}
	switch s.Method {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS":
	default:
		v.fail(path("method"), fmt.Sprintf("%q is not an HTTP method", s.Method))
	}
	if s.Status == 0 {
		s.Status = 200
	} else if s.Status < 100 || s.Status > 599 {
		v.fail(path("status"), fmt.Sprintf("%d is out of range (100-599)", s.Status))
	}
	if s.Timeout <= 0 {
		s.Timeout = DefaultSmokeTimeout
	}
	if s.Name == "" {
		s.Name = s.Method + " " + s.Path
	}
}

func (v *validator) verify(vf *Verify) {
	if vf.For < 0 {
		v.fail([]string{"verify", "for"}, "must not be negative")
	}
	if vf.For == 0 {
		vf.For = DefaultVerifyFor
	}
	if vf.MaxErrorRate < 0 || vf.MaxErrorRate > 1 {
		v.fail([]string{"verify", "max_error_rate"}, fmt.Sprintf("%v is out of range (0-1)", vf.MaxErrorRate))
	}
	if vf.MaxErrorRate == 0 {
		vf.MaxErrorRate = DefaultMaxErrorRate
	}
	if vf.MinRequests < 0 {
		v.fail([]string{"verify", "min_requests"}, "must not be negative")
	}
}

func (v *validator) environments(n *yaml.Node) []Environment {
	if n.Kind == 0 {
		v.fail([]string{"environments"}, "at least one environment is required (for example staging: {listen: 127.0.0.1:8081})")
		return nil
	}
	if n.Kind != yaml.MappingNode {
		v.fail([]string{"environments"}, "want a mapping of environment names to settings")
		return nil
	}
	var out []Environment
	seen := map[string]bool{}
	listens := map[string]string{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		name := n.Content[i].Value
		path := func(f ...string) []string { return append([]string{"environments", name}, f...) }
		if err := core.ValidateName("env", name); err != nil {
			v.fail(path(), fmt.Sprintf("%q is not a valid environment name: use lower-case letters, digits, '-' or '_'", name))
			continue
		}
		var e Environment
		if err := n.Content[i+1].Decode(&e); err != nil {
			v.fail(path(), cleanYAMLError(err))
			continue
		}
		if err := strictEnv(n.Content[i+1]); err != nil {
			v.fail(path(err.field), err.msg)
		}
		e.Name = name
		if e.Listen == "" {
			v.fail(path("listen"), "is required (host:port of the environment's public proxy)")
		} else if _, port, err := net.SplitHostPort(e.Listen); err != nil || port == "" {
			v.fail(path("listen"), fmt.Sprintf("%q is not host:port", e.Listen))
		} else if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			v.fail(path("listen"), fmt.Sprintf("%q: port out of range", e.Listen))
		} else {
			if other, dup := listens[e.Listen+"|"+e.Host]; dup {
				v.fail(path("listen"), fmt.Sprintf("%q is already used by environment %s (give one of them a host)", e.Listen, other))
			}
			listens[e.Listen+"|"+e.Host] = name
		}
		if e.Instances == 0 {
			e.Instances = DefaultInstances
		} else if e.Instances < 1 || e.Instances > MaxInstances {
			v.fail(path("instances"), fmt.Sprintf("%d is out of range (1-%d)", e.Instances, MaxInstances))
		}
		if e.From != "" && !seen[e.From] {
			v.fail(path("from"), fmt.Sprintf("%q is not an environment listed before %s", e.From, name))
		}
		for k := range e.Env {
			if !validEnvKey(k) {
				v.fail(path("env", k), fmt.Sprintf("%q is not a valid environment variable name", k))
			}
		}
		seen[name] = true
		out = append(out, e)
	}
	if len(out) == 0 && len(v.errs) == 0 {
		v.fail([]string{"environments"}, "at least one environment is required")
	}
	return out
}

// versionPattern is core's semantic version syntax without the v prefix.
var versionPattern = regexp.MustCompile(`^(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})(-[0-9A-Za-z]+(\.[0-9A-Za-z]+)*)?$`)

// refPattern is what release branch and tag names may contain.
var refPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,100}$`)

func (v *validator) releaseLines(r *ReleaseLines) {
	for _, f := range []struct {
		name string
		val  *string
		def  string
	}{
		{"main", &r.Main, DefaultMainLine},
		{"production", &r.Production, DefaultProductionLine},
		{"branch_prefix", &r.BranchPrefix, DefaultBranchPrefix},
		{"tag_prefix", &r.TagPrefix, DefaultTagPrefix},
	} {
		if *f.val == "" {
			*f.val = f.def
			continue
		}
		if !refPattern.MatchString(*f.val) || strings.Contains(*f.val, "..") || strings.HasSuffix(*f.val, ".lock") {
			v.fail([]string{"release", f.name}, fmt.Sprintf("%q is not a valid git ref name part", *f.val))
		}
	}
	if r.Main == r.Production {
		v.fail([]string{"release", "production"}, fmt.Sprintf("%q is also the main line", r.Production))
	}
	if r.SigningKey != "" && (strings.HasPrefix(r.SigningKey, "-") || strings.ContainsAny(r.SigningKey, " \t\n;$`")) {
		v.fail([]string{"release", "signing_key"}, fmt.Sprintf("%q is not a key id", r.SigningKey))
	}
}

type fieldError struct{ field, msg string }

// strictEnv refuses unknown keys in an environment.
func strictEnv(n *yaml.Node) *fieldError {
	if n.Kind != yaml.MappingNode {
		return &fieldError{"", "want a mapping"}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		switch k := n.Content[i].Value; k {
		case "listen", "host", "instances", "from", "env":
		default:
			return &fieldError{k, "unknown field (known: listen, host, instances, from, env)"}
		}
	}
	return nil
}

func validEnvKey(k string) bool {
	if k == "" {
		return false
	}
	for i, c := range k {
		if !(c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (i > 0 && c >= '0' && c <= '9')) {
			return false
		}
	}
	return true
}

// cleanYAMLError drops go-yaml's "yaml: " prefixes and Go type names.
func cleanYAMLError(err error) string {
	s := strings.ReplaceAll(err.Error(), "yaml: ", "")
	s = strings.ReplaceAll(s, "unmarshal errors:\n  ", "")
	s = strings.ReplaceAll(s, " in type manifest.raw", "")
	s = strings.ReplaceAll(s, "in type manifest.", "in ")
	return s
}
