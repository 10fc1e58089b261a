package core

import (
	"slices"
	"strings"
)

// ConfigDiff is what changes between two config versions: keys only, never
// values, so it can be shown and recorded anywhere.
type ConfigDiff struct {
	Added   []string `json:"added,omitempty"`
	Changed []string `json:"changed,omitempty"`
	Removed []string `json:"removed,omitempty"`
	// Secret names the keys that are secrets on either side.
	Secret map[string]bool `json:"-"`
}

// DiffConfig compares two configs given as plain vars and secret values.
func DiffConfig(oldVars, oldSecrets, newVars, newSecrets map[string]string) ConfigDiff {
	d := ConfigDiff{Secret: map[string]bool{}}
	before, after := map[string]string{}, map[string]string{}
	for k, v := range oldVars {
		before[k] = "v" + v
	}
	for k, v := range oldSecrets {
		before[k] = "s" + v
		d.Secret[k] = true
	}
	for k, v := range newVars {
		after[k] = "v" + v
	}
	for k, v := range newSecrets {
		after[k] = "s" + v
		d.Secret[k] = true
	}
	for k, v := range after {
		old, ok := before[k]
		switch {
		case !ok:
			d.Added = append(d.Added, k)
		case old != v:
			d.Changed = append(d.Changed, k)
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			d.Removed = append(d.Removed, k)
		}
	}
	slices.Sort(d.Added)
	slices.Sort(d.Changed)
	slices.Sort(d.Removed)
	return d
}

// Empty reports whether nothing changes.
func (d ConfigDiff) Empty() bool { return len(d.Added)+len(d.Changed)+len(d.Removed) == 0 }

// String renders the change for people: "added: A; changed: B (secret); removed: C".
func (d ConfigDiff) String() string {
	if d.Empty() {
		return "no config change"
	}
	var parts []string
	for _, g := range []struct {
		name string
		keys []string
	}{{"added", d.Added}, {"changed", d.Changed}, {"removed", d.Removed}} {
		if len(g.keys) == 0 {
			continue
		}
		names := make([]string, len(g.keys))
		for i, k := range g.keys {
			names[i] = k
			if d.Secret[k] {
				names[i] += " (secret)"
			}
		}
		parts = append(parts, g.name+": "+strings.Join(names, ", "))
	}
	return strings.Join(parts, "; ")
}
