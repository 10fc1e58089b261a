package manifest

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/cutover/cutover/internal/yamlfield"
)

// FieldError is one problem in a manifest: where it is and what would be
// accepted. Parse returns them joined (errors.Join), in file order; their
// File is FileName, so Error formats them as cutover.yml:LINE: FIELD: MSG.
type FieldError = yamlfield.FieldError

// decoder decodes a manifest with yamlfield: every error names the field
// path and line, and all of them are collected.
type decoder struct{ yamlfield.Decoder }

func isScalar(e yamlfield.Entry) bool {
	n := yamlfield.Deref(e.Val)
	return n != nil && n.Kind == yaml.ScalarNode
}

// aliases are names people write for a field from other tools.
var aliases = yamlfield.Aliases{
	"replicas": "instances", "scale": "instances", "cmd": "command", "port": "listen",
	"address": "listen", "addr": "listen", "environment": "env", "vars": "env",
	"healthcheck": "health", "health_check": "health", "envs": "environments",
	"promote_from": "from", "expect_status": "status", "status_code": "status",
}

// suggest returns the candidate s is an alias of, else the one nearest to s
// by edit distance, or "" when none is near enough to be a likely misspelling.
func suggest(s string, candidates []string) string { return aliases.Suggest(s, candidates) }

const durationExamples = "examples: 500ms, 5s, 1m"

// duration decodes an optional duration that must be more than zero;
// absent, it is def.
func (d *decoder) duration(e yamlfield.Entry, path string, def time.Duration) time.Duration {
	n, ok := d.Scalar(e, path, "a duration ("+durationExamples+")")
	if !ok {
		return def
	}
	v, err := time.ParseDuration(n.Value)
	switch {
	case err != nil && (n.Tag == "!!int" || n.Tag == "!!float"):
		d.Fail(n.Line, path, "%s has no unit (%s)", n.Value, durationExamples)
	case err != nil:
		d.Fail(n.Line, path, "%q is not a duration (%s)", n.Value, durationExamples)
	case v < 0:
		d.Fail(n.Line, path, "%s is negative: want more than 0 (default %s)", n.Value, def)
	case v == 0:
		d.Fail(n.Line, path, "%s: want more than 0 (leave it out for the default %s)", n.Value, def)
	default:
		return v
	}
	return def
}

// share decodes an optional fraction in [0, 1]; absent, it is def. NaN and
// infinities are refused: a comparison with NaN is always false, so it
// would switch the check off.
func (d *decoder) share(e yamlfield.Entry, path string, def float64) float64 {
	const want = "want a share from 0 to 1, e.g. 0.01 for 1%"
	n, ok := d.Scalar(e, path, "a number from 0 to 1")
	if !ok {
		return def
	}
	var v float64
	if (n.Tag != "!!float" && n.Tag != "!!int") || n.Decode(&v) != nil {
		if p, err := strconv.ParseFloat(strings.TrimSuffix(n.Value, "%"), 64); err == nil && strings.HasSuffix(n.Value, "%") {
			d.Fail(n.Line, path, "%q is not a number: write a percentage as a share (%g)", n.Value, p/100)
		} else {
			d.Fail(n.Line, path, "%q is not a number (%s)", n.Value, want)
		}
		return def
	}
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		d.Fail(n.Line, path, "%s is not a finite number (%s)", n.Value, want)
	case v > 1 && v <= 100:
		d.Fail(n.Line, path, "%s is out of range (%s; for %s%% write %g)", n.Value, want, n.Value, v/100)
	case v < 0 || v > 1:
		d.Fail(n.Line, path, "%s is out of range (%s)", n.Value, want)
	default:
		return v
	}
	return def
}

// argv decodes an optional command: a list of strings, or one string split
// on white space.
func (d *decoder) argv(e yamlfield.Entry, path string) []string {
	n := yamlfield.Deref(e.Val)
	if yamlfield.IsNull(n) {
		return nil
	}
	var out []string
	switch n.Kind {
	case yaml.ScalarNode:
		out = strings.Fields(n.Value)
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			c = yamlfield.Deref(c)
			if c.Kind != yaml.ScalarNode || yamlfield.IsNull(c) {
				d.Fail(c.Line, p, "want a string, not %s", yamlfield.KindName(c))
				continue
			}
			if c.Value == "" {
				d.Fail(c.Line, p, "is empty: remove it or quote what you meant")
				continue
			}
			out = append(out, c.Value)
		}
		if len(n.Content) == 0 {
			return nil
		}
	default:
		d.Fail(n.Line, path, "want a command as a string or a list of strings, not %s", yamlfield.KindName(n))
		return nil
	}
	for _, a := range out {
		if strings.ContainsRune(a, 0) {
			d.Fail(n.Line, path, "%q: contains a NUL byte", a)
		}
	}
	return out
}

// envName is a portable environment variable name.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// reservedEnv says whether cutover sets the variable itself.
func reservedEnv(k string) bool {
	return k == "PORT" || strings.HasPrefix(k, "CUTOVER_")
}

// env decodes an optional mapping of environment variables.
func (d *decoder) env(e yamlfield.Entry, path string) map[string]string {
	f := d.Mapping(e, path, "{GREETING: hello}")
	if len(f.Keys) == 0 {
		return nil
	}
	out := make(map[string]string, len(f.Keys))
	for _, k := range f.Keys {
		p := yamlfield.Join(path, k)
		en := f.Get(k)
		switch {
		case !envName.MatchString(k):
			d.Fail(en.Line(), p, "%q is not a valid variable name (letters, digits and _, not starting with a digit)", k)
			continue
		case reservedEnv(k):
			d.Fail(en.Line(), p, "%s is set by cutover and cannot be overridden (reserved: PORT, CUTOVER_*)", k)
			continue
		}
		v := ""
		if n, ok := d.Scalar(en, p, "a string"); ok {
			v = n.Value
			if strings.ContainsRune(v, 0) {
				d.Fail(n.Line, p, "contains a NUL byte")
			}
		}
		out[k] = v
	}
	return out
}

// oneOf decodes an optional string that must be one of allowed; absent, it is def.
func (d *decoder) oneOf(e yamlfield.Entry, path, def string, allowed ...string) string {
	n, ok := d.Scalar(e, path, "one of "+strings.Join(allowed, ", "))
	if !ok {
		return def
	}
	if slices.Contains(allowed, n.Value) {
		return n.Value
	}
	msg := fmt.Sprintf("%q: want one of %s", n.Value, strings.Join(allowed, ", "))
	if s := suggest(n.Value, allowed); s != "" {
		msg += fmt.Sprintf(" (did you mean %s?)", s)
	}
	d.Fail(n.Line, path, "%s", msg)
	return def
}
