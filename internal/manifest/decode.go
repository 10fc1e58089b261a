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
)

// FieldError is one problem in a manifest: where it is and what would be
// accepted. Parse returns them joined (errors.Join), in file order.
type FieldError struct {
	Line  int    // 1-based; 0 when the problem has no line (a missing section)
	Field string // the field path, e.g. health.timeout or smoke[0].status; "" for the whole file
	Msg   string // the value and what would be accepted
}

// Error formats the problem as cutover.yml:LINE: FIELD: MSG.
func (e *FieldError) Error() string { return e.In(FileName) }

// In formats the problem as if it were in the named file.
func (e *FieldError) In(file string) string {
	if e.Line > 0 {
		file += ":" + strconv.Itoa(e.Line)
	}
	if e.Field == "" {
		return file + ": " + e.Msg
	}
	return file + ": " + e.Field + ": " + e.Msg
}

// decoder walks the YAML node tree itself, so that every error names the
// field path and line rather than a Go type, and collects every error
// instead of stopping at the first.
type decoder struct{ errs []*FieldError }

func (d *decoder) fail(line int, path, format string, args ...any) {
	d.errs = append(d.errs, &FieldError{Line: line, Field: path, Msg: fmt.Sprintf(format, args...)})
}

// entry is one key of a mapping with its value; a missing key has nil nodes.
type entry struct{ key, val *yaml.Node }

func (e entry) given() bool { return e.val != nil && !isNull(e.val) }

func isScalar(e entry) bool {
	n := deref(e.val)
	return n != nil && n.Kind == yaml.ScalarNode
}

func (e entry) line() int {
	if e.key != nil {
		return e.key.Line
	}
	return 0
}

// fields is a decoded mapping: its keys in file order and their entries.
type fields struct {
	line int // of the mapping's own key; where missing fields are reported
	keys []string
	m    map[string]entry
}

func (f fields) get(k string) entry { return f.m[k] }

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = deref(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// kindName says what a node is, for "want a mapping, not a list".
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return fmt.Sprintf("%q", n.Value)
}

// mapping decodes e as a mapping. known lists the accepted keys (nil: any);
// an unknown key is an error with a suggestion. Merge keys (<<: *anchor) are
// followed; keys given in the mapping itself win over merged ones.
func (d *decoder) mapping(e entry, path, example string, known ...string) fields {
	f := fields{line: e.line(), m: map[string]entry{}}
	n := deref(e.val)
	if isNull(n) {
		return f
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n.Line, path, "want a mapping, not %s (for example: %s)", kindName(n), example)
		return f
	}
	d.collect(n, path, known, &f, 0)
	return f
}

func (d *decoder) collect(n *yaml.Node, path string, known []string, f *fields, depth int) {
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.fail(k.Line, path, "a key must be a plain name, not %s", kindName(k))
			continue
		}
		if k.Tag == "!!merge" {
			merges = append(merges, v)
			continue
		}
		name := k.Value
		p := join(path, name)
		if path == "" && strings.HasPrefix(name, "x-") {
			continue // a place for anchors, as in Compose files
		}
		if known != nil && !slices.Contains(known, name) {
			d.fail(k.Line, p, "%s", unknownField(name, known))
			continue
		}
		if prev, dup := f.m[name]; dup {
			if depth == 0 {
				d.fail(k.Line, p, "is given twice (first on line %d)", prev.key.Line)
			}
			continue
		}
		f.keys = append(f.keys, name)
		f.m[name] = entry{k, v}
	}
	for _, m := range merges {
		m = deref(m)
		var list []*yaml.Node
		switch m.Kind {
		case yaml.MappingNode:
			list = []*yaml.Node{m}
		case yaml.SequenceNode:
			list = m.Content
		}
		for _, item := range list {
			if item = deref(item); item.Kind != yaml.MappingNode || depth > 16 {
				d.fail(item.Line, path, "<< must merge a mapping (<<: *anchor)")
				continue
			}
			d.collect(item, path, known, f, depth+1)
		}
		if list == nil {
			d.fail(m.Line, path, "<< must merge a mapping (<<: *anchor)")
		}
	}
}

// aliases are names people write for a field from other tools.
var aliases = map[string]string{
	"replicas": "instances", "scale": "instances", "cmd": "command", "port": "listen",
	"address": "listen", "addr": "listen", "environment": "env", "vars": "env",
	"healthcheck": "health", "health_check": "health", "envs": "environments",
	"promote_from": "from", "expect_status": "status", "status_code": "status",
}

// unknownField says a key is unknown and suggests the nearest known one.
func unknownField(name string, known []string) string {
	if s := suggest(name, known); s != "" {
		return fmt.Sprintf("unknown field; did you mean %s?", s)
	}
	return fmt.Sprintf("unknown field (known: %s)", strings.Join(known, ", "))
}

// suggest returns the candidate nearest to s by edit distance, or "" when
// none is near enough to be a likely misspelling.
func suggest(s string, candidates []string) string {
	if a, ok := aliases[strings.ToLower(s)]; ok && slices.Contains(candidates, a) {
		return a
	}
	best, bestD := "", math.MaxInt
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(s), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	limit := max(1, min(3, len(best)/3))
	if bestD <= limit {
		return best
	}
	return ""
}

// editDistance is the Damerau-Levenshtein distance (adjacent swaps count one).
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// scalar returns e's value as text; false when it is absent or not a scalar
// (the latter is an error).
func (d *decoder) scalar(e entry, path, want string) (*yaml.Node, bool) {
	n := deref(e.val)
	if isNull(n) {
		return nil, false
	}
	if n.Kind != yaml.ScalarNode {
		d.fail(n.Line, path, "want %s, not %s", want, kindName(n))
		return nil, false
	}
	return n, true
}

// str decodes an optional string.
func (d *decoder) str(e entry, path string) string {
	n, ok := d.scalar(e, path, "a string")
	if !ok {
		return ""
	}
	if strings.ContainsAny(n.Value, "\x00\r\n") {
		d.fail(n.Line, path, "%q: must be one line", n.Value)
	}
	return n.Value
}

const durationExamples = "examples: 500ms, 5s, 1m"

// duration decodes an optional duration that must be more than zero;
// absent, it is def.
func (d *decoder) duration(e entry, path string, def time.Duration) time.Duration {
	n, ok := d.scalar(e, path, "a duration ("+durationExamples+")")
	if !ok {
		return def
	}
	v, err := time.ParseDuration(n.Value)
	switch {
	case err != nil && (n.Tag == "!!int" || n.Tag == "!!float"):
		d.fail(n.Line, path, "%s has no unit (%s)", n.Value, durationExamples)
	case err != nil:
		d.fail(n.Line, path, "%q is not a duration (%s)", n.Value, durationExamples)
	case v < 0:
		d.fail(n.Line, path, "%s is negative: want more than 0 (default %s)", n.Value, def)
	case v == 0:
		d.fail(n.Line, path, "%s: want more than 0 (leave it out for the default %s)", n.Value, def)
	default:
		return v
	}
	return def
}

// integer decodes an optional whole number in [lo, hi]; absent, it is def.
func (d *decoder) integer(e entry, path string, def, lo, hi int) int {
	n, ok := d.scalar(e, path, fmt.Sprintf("a whole number from %d to %d", lo, hi))
	if !ok {
		return def
	}
	var v int64
	if n.Tag != "!!int" || n.Decode(&v) != nil {
		d.fail(n.Line, path, "%q is not a whole number (want %d to %d)", n.Value, lo, hi)
		return def
	}
	if v < int64(lo) || v > int64(hi) {
		d.fail(n.Line, path, "%s is out of range (%d-%d)", n.Value, lo, hi)
		return def
	}
	return int(v)
}

// share decodes an optional fraction in [0, 1]; absent, it is def. NaN and
// infinities are refused: a comparison with NaN is always false, so it
// would switch the check off.
func (d *decoder) share(e entry, path string, def float64) float64 {
	const want = "want a share from 0 to 1, e.g. 0.01 for 1%"
	n, ok := d.scalar(e, path, "a number from 0 to 1")
	if !ok {
		return def
	}
	var v float64
	if (n.Tag != "!!float" && n.Tag != "!!int") || n.Decode(&v) != nil {
		if p, err := strconv.ParseFloat(strings.TrimSuffix(n.Value, "%"), 64); err == nil && strings.HasSuffix(n.Value, "%") {
			d.fail(n.Line, path, "%q is not a number: write a percentage as a share (%g)", n.Value, p/100)
		} else {
			d.fail(n.Line, path, "%q is not a number (%s)", n.Value, want)
		}
		return def
	}
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		d.fail(n.Line, path, "%s is not a finite number (%s)", n.Value, want)
	case v > 1 && v <= 100:
		d.fail(n.Line, path, "%s is out of range (%s; for %s%% write %g)", n.Value, want, n.Value, v/100)
	case v < 0 || v > 1:
		d.fail(n.Line, path, "%s is out of range (%s)", n.Value, want)
	default:
		return v
	}
	return def
}

// argv decodes an optional command: a list of strings, or one string split
// on white space.
func (d *decoder) argv(e entry, path string) []string {
	n := deref(e.val)
	if isNull(n) {
		return nil
	}
	var out []string
	switch n.Kind {
	case yaml.ScalarNode:
		out = strings.Fields(n.Value)
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			c = deref(c)
			if c.Kind != yaml.ScalarNode || isNull(c) {
				d.fail(c.Line, p, "want a string, not %s", kindName(c))
				continue
			}
			if c.Value == "" {
				d.fail(c.Line, p, "is empty: remove it or quote what you meant")
				continue
			}
			out = append(out, c.Value)
		}
		if len(n.Content) == 0 {
			return nil
		}
	default:
		d.fail(n.Line, path, "want a command as a string or a list of strings, not %s", kindName(n))
		return nil
	}
	for _, a := range out {
		if strings.ContainsRune(a, 0) {
			d.fail(n.Line, path, "%q: contains a NUL byte", a)
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
func (d *decoder) env(e entry, path string) map[string]string {
	f := d.mapping(e, path, "{GREETING: hello}")
	if len(f.keys) == 0 {
		return nil
	}
	out := make(map[string]string, len(f.keys))
	for _, k := range f.keys {
		p := join(path, k)
		en := f.get(k)
		switch {
		case !envName.MatchString(k):
			d.fail(en.line(), p, "%q is not a valid variable name (letters, digits and _, not starting with a digit)", k)
			continue
		case reservedEnv(k):
			d.fail(en.line(), p, "%s is set by cutover and cannot be overridden (reserved: PORT, CUTOVER_*)", k)
			continue
		}
		v := ""
		if n, ok := d.scalar(en, p, "a string"); ok {
			v = n.Value
			if strings.ContainsRune(v, 0) {
				d.fail(n.Line, p, "contains a NUL byte")
			}
		}
		out[k] = v
	}
	return out
}

// oneOf decodes an optional string that must be one of allowed; absent, it is def.
func (d *decoder) oneOf(e entry, path, def string, allowed ...string) string {
	n, ok := d.scalar(e, path, "one of "+strings.Join(allowed, ", "))
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
	d.fail(n.Line, path, "%s", msg)
	return def
}
