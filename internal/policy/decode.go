package policy

import (
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// decoder walks the YAML node tree itself, so that every error names the
// field path and line rather than a Go type, and collects every error
// instead of stopping at the first. It follows internal/manifest's.
type decoder struct{ errs []*FieldError }

func (d *decoder) fail(line int, path, format string, args ...any) {
	d.errs = append(d.errs, &FieldError{Line: line, Field: path, Msg: fmt.Sprintf(format, args...)})
}

// entry is one key of a mapping with its value; a missing key has nil nodes.
type entry struct{ key, val *yaml.Node }

func (e entry) given() bool { return e.val != nil && !isNull(e.val) }

func (e entry) line() int {
	if e.key != nil {
		return e.key.Line
	}
	return 0
}

// fields is a decoded mapping: its keys in file order and their entries.
type fields struct {
	line int
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
	"envs": "environments", "promote_from": "from", "rule": "require", "requires": "require",
	"required": "require", "when": "require", "approvers": "approvals", "reviewers": "approvals",
	"window": "windows", "tz": "timezone", "time_zone": "timezone", "zone": "timezone",
	"blackout": "deny", "freeze": "deny", "required_checks": "checks", "status_checks": "checks",
}

// unknownField says a key is unknown and suggests the nearest known one.
func unknownField(name string, known []string) string {
	if a, ok := aliases[strings.ToLower(name)]; ok && slices.Contains(known, a) {
		return fmt.Sprintf("unknown field; did you mean %s?", a)
	}
	if s := suggest(name, known); s != "" {
		return fmt.Sprintf("unknown field; did you mean %s?", s)
	}
	return fmt.Sprintf("unknown field (known: %s)", strings.Join(known, ", "))
}

// scalar returns e's value; false when it is absent or not a scalar (the
// latter is an error).
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

// str decodes an optional one-line string.
func (d *decoder) str(e entry, path string) string {
	n, ok := d.scalar(e, path, "a string")
	if !ok {
		return ""
	}
	if strings.ContainsAny(n.Value, "\x00\r\n") {
		d.fail(n.Line, path, "%q: must be one line", n.Value)
		return ""
	}
	return n.Value
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
