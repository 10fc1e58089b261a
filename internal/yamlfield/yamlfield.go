// Package yamlfield is strict YAML decoding that names the field path and
// line of every error. A Decoder walks the yaml.Node tree itself rather than
// decoding into Go types, collects every error instead of stopping at the
// first, and suggests the known key a misspelt one was meant to be.
package yamlfield

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// FieldError is one problem in a YAML file: where it is and what would be
// accepted.
type FieldError struct {
	Line  int    // 1-based; 0 when the problem has no line (a missing section)
	Field string // the field path, e.g. health.timeout or smoke[0].status; "" for the whole file
	Msg   string // the value and what would be accepted
	File  string // the name Error reports the problem under, e.g. cutover.yml
}

// Error formats the problem as FILE:LINE: FIELD: MSG.
func (e *FieldError) Error() string { return e.In(e.File) }

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

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// SyntaxError turns go-yaml's "yaml: line 3: ..." into a FieldError.
func SyntaxError(file string, err error) *FieldError {
	s := err.Error()
	if m := yamlLine.FindStringSubmatch(s); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &FieldError{Line: line, Msg: "not valid YAML: " + m[2], File: file}
	}
	return &FieldError{Msg: "not valid YAML: " + strings.TrimPrefix(s, "yaml: "), File: file}
}

// Document parses data as exactly one YAML document and returns its root
// node; nil and no error when data holds no document. what names the
// document in the error for a second one ("the manifest is one document").
func Document(file string, data []byte, what string) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, SyntaxError(file, err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		return nil, &FieldError{Line: next.Line, Msg: "a second YAML document (---): the " + what + " is one document", File: file}
	} else if !errors.Is(err, io.EOF) {
		return nil, SyntaxError(file, err)
	}
	return doc.Content[0], nil
}

// Decoder collects the errors found while decoding one file.
type Decoder struct {
	File    string  // the file name errors are reported under
	Aliases Aliases // names from other tools that an unknown key may be meant as
	Errs    []*FieldError
}

// Fail records a problem at line in the field path.
func (d *Decoder) Fail(line int, path, format string, args ...any) {
	d.Errs = append(d.Errs, &FieldError{Line: line, Field: path, Msg: fmt.Sprintf(format, args...), File: d.File})
}

// Err returns every recorded problem joined (errors.Join), in file order:
// what has no line (a missing section) comes last. nil when there is none.
func (d *Decoder) Err() error {
	if len(d.Errs) == 0 {
		return nil
	}
	at := func(e *FieldError) int { return cmp.Or(e.Line, math.MaxInt) }
	slices.SortStableFunc(d.Errs, func(a, b *FieldError) int { return cmp.Compare(at(a), at(b)) })
	errs := make([]error, len(d.Errs))
	for i, e := range d.Errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// Entry is one key of a mapping with its value; a missing key has nil nodes.
type Entry struct{ Key, Val *yaml.Node }

// Given says whether the entry is present and not null.
func (e Entry) Given() bool { return e.Val != nil && !IsNull(e.Val) }

// Line is the line of the entry's key; 0 when it is missing.
func (e Entry) Line() int {
	if e.Key != nil {
		return e.Key.Line
	}
	return 0
}

// Fields is a decoded mapping: its keys in file order and their entries.
type Fields struct {
	Line int // of the mapping's own key; where missing fields are reported
	Keys []string
	m    map[string]Entry
}

// Get returns the entry of key k; a missing one has nil nodes.
func (f Fields) Get(k string) Entry { return f.m[k] }

// Deref follows aliases (*anchor) to the node they name.
func Deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// IsNull says whether n is missing or null.
func IsNull(n *yaml.Node) bool {
	n = Deref(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// Join appends key to a field path.
func Join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// KindName says what a node is, for "want a mapping, not a list".
func KindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return fmt.Sprintf("%q", n.Value)
}

// Mapping decodes e as a mapping. known lists the accepted keys (nil: any);
// an unknown key is an error with a suggestion. Merge keys (<<: *anchor) are
// followed; keys given in the mapping itself win over merged ones. At the
// top level, keys starting with x- are skipped: a place for anchors, as in
// Compose files.
func (d *Decoder) Mapping(e Entry, path, example string, known ...string) Fields {
	f := Fields{Line: e.Line(), m: map[string]Entry{}}
	n := Deref(e.Val)
	if IsNull(n) {
		return f
	}
	if n.Kind != yaml.MappingNode {
		d.Fail(n.Line, path, "want a mapping, not %s (for example: %s)", KindName(n), example)
		return f
	}
	d.collect(n, path, known, &f, 0)
	return f
}

func (d *Decoder) collect(n *yaml.Node, path string, known []string, f *Fields, depth int) {
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.Fail(k.Line, path, "a key must be a plain name, not %s", KindName(k))
			continue
		}
		if k.Tag == "!!merge" {
			merges = append(merges, v)
			continue
		}
		name := k.Value
		p := Join(path, name)
		if path == "" && strings.HasPrefix(name, "x-") {
			continue // a place for anchors, as in Compose files
		}
		if known != nil && !slices.Contains(known, name) {
			d.Fail(k.Line, p, "%s", d.Aliases.UnknownField(name, known))
			continue
		}
		if prev, dup := f.m[name]; dup {
			if depth == 0 {
				d.Fail(k.Line, p, "is given twice (first on line %d)", prev.Key.Line)
			}
			continue
		}
		f.Keys = append(f.Keys, name)
		f.m[name] = Entry{k, v}
	}
	for _, m := range merges {
		m = Deref(m)
		var list []*yaml.Node
		switch m.Kind {
		case yaml.MappingNode:
			list = []*yaml.Node{m}
		case yaml.SequenceNode:
			list = m.Content
		}
		for _, item := range list {
			if item = Deref(item); item.Kind != yaml.MappingNode || depth > 16 {
				d.Fail(item.Line, path, "<< must merge a mapping (<<: *anchor)")
				continue
			}
			d.collect(item, path, known, f, depth+1)
		}
		if list == nil {
			d.Fail(m.Line, path, "<< must merge a mapping (<<: *anchor)")
		}
	}
}

// Scalar returns e's value node; false when it is absent or not a scalar
// (the latter is an error: want says what would be accepted).
func (d *Decoder) Scalar(e Entry, path, want string) (*yaml.Node, bool) {
	n := Deref(e.Val)
	if IsNull(n) {
		return nil, false
	}
	if n.Kind != yaml.ScalarNode {
		d.Fail(n.Line, path, "want %s, not %s", want, KindName(n))
		return nil, false
	}
	return n, true
}

// OneLine decodes an optional one-line string. ok is false when it is
// absent, not a scalar or not one line (the latter two are errors); a
// string that is not one line is still returned.
func (d *Decoder) OneLine(e Entry, path string) (s string, ok bool) {
	n, ok := d.Scalar(e, path, "a string")
	if !ok {
		return "", false
	}
	if strings.ContainsAny(n.Value, "\x00\r\n") {
		d.Fail(n.Line, path, "%q: must be one line", n.Value)
		return n.Value, false
	}
	return n.Value, true
}

// Str decodes an optional one-line string; "" when absent. A string that
// is not one line is an error but still returned, so that later checks can
// report what else is wrong with it.
func (d *Decoder) Str(e Entry, path string) string {
	s, _ := d.OneLine(e, path)
	return s
}

// Integer decodes an optional whole number in [lo, hi]; absent, it is def.
func (d *Decoder) Integer(e Entry, path string, def, lo, hi int) int {
	n, ok := d.Scalar(e, path, fmt.Sprintf("a whole number from %d to %d", lo, hi))
	if !ok {
		return def
	}
	var v int64
	if n.Tag != "!!int" || n.Decode(&v) != nil {
		d.Fail(n.Line, path, "%q is not a whole number (want %d to %d)", n.Value, lo, hi)
		return def
	}
	if v < int64(lo) || v > int64(hi) {
		d.Fail(n.Line, path, "%s is out of range (%d-%d)", n.Value, lo, hi)
		return def
	}
	return int(v)
}

// Aliases maps names people write for a field in other tools (lower case)
// to the field's name, e.g. "replicas" to "instances".
type Aliases map[string]string

// UnknownField says a key is unknown and suggests the nearest known one.
func (a Aliases) UnknownField(name string, known []string) string {
	if s := a.Suggest(name, known); s != "" {
		return fmt.Sprintf("unknown field; did you mean %s?", s)
	}
	return fmt.Sprintf("unknown field (known: %s)", strings.Join(known, ", "))
}

// Suggest returns the candidate s is an alias of, else the one nearest to s
// by edit distance (see Suggest).
func (a Aliases) Suggest(s string, candidates []string) string {
	if c, ok := a[strings.ToLower(s)]; ok && slices.Contains(candidates, c) {
		return c
	}
	return Suggest(s, candidates)
}

// UnknownField says a key is unknown and suggests the nearest known one.
func UnknownField(name string, known []string) string {
	return Aliases(nil).UnknownField(name, known)
}

// Suggest returns the candidate nearest to s by edit distance, ignoring
// case, or "" when none is near enough to be a likely misspelling.
func Suggest(s string, candidates []string) string {
	best, bestD := "", math.MaxInt
	for _, c := range candidates {
		if d := EditDistance(strings.ToLower(s), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	limit := max(1, min(3, len(best)/3))
	if bestD <= limit {
		return best
	}
	return ""
}

// EditDistance is the Damerau-Levenshtein distance (adjacent swaps count one).
func EditDistance(a, b string) int {
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
