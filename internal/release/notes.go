// Package release runs the release manager's checklist as one safe,
// repeatable set of steps: numbered release candidates (RC 112, patch
// 112.1), notes generated from the commits, release branches, a merge
// conflict check before anything is touched, the merge into the production
// line with a tag, and the backwards-compatibility gate.
package release

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/cutover/cutover/internal/core"
)

// Note categories, in the order they are printed.
const (
	CatBreaking    = "Breaking changes"
	CatFeatures    = "Features"
	CatFixes       = "Bug fixes"
	CatPerformance = "Performance"
	CatSecurity    = "Security"
	CatDocs        = "Documentation"
	CatMaintenance = "Maintenance"
	CatOther       = "Other"
	// CatReverted lists a commit and its revert, both in the same range:
	// together they ship nothing.
	CatReverted = "Reverted"
)

var categoryOrder = []string{CatBreaking, CatFeatures, CatFixes, CatPerformance, CatSecurity, CatDocs, CatMaintenance}

var conventionalTypes = map[string]string{
	"feat": CatFeatures, "feature": CatFeatures,
	"fix": CatFixes, "bugfix": CatFixes,
	"perf":     CatPerformance,
	"security": CatSecurity, "sec": CatSecurity,
	"docs": CatDocs, "doc": CatDocs,
	"refactor": CatMaintenance, "style": CatMaintenance, "test": CatMaintenance, "tests": CatMaintenance,
	"build": CatMaintenance, "ci": CatMaintenance, "chore": CatMaintenance, "revert": CatMaintenance, "deps": CatMaintenance,
}

var (
	conventional = regexp.MustCompile(`^([a-zA-Z]+)(?:\(([^)]*)\))?(!)?:\s*(.+)$`)
	prMerge      = regexp.MustCompile(`^Merge pull request #(\d+) from (\S+)`)
	prSuffix     = regexp.MustCompile(`\(#(\d+)\)\s*$`)
	plainMerge   = regexp.MustCompile(`^Merge (branch|remote-tracking branch|tag|commit) `)
	revertOf     = regexp.MustCompile(`This reverts commit ([0-9a-f]{7,64})`)
)

// reverted pairs each commit with a revert of it in the same list (git's
// "This reverts commit X" message), oldest first: it returns the reverted
// commits (SHA -> the revert's SHA) and the reverts that pair with them.
// A revert of a commit outside the list stays an ordinary entry.
func reverted(commits []core.Commit) (by map[string]string, reverts map[string]bool) {
	by, reverts = map[string]string{}, map[string]bool{}
	for i := len(commits) - 1; i >= 0; i-- {
		c := commits[i]
		m := revertOf.FindStringSubmatch(c.Body)
		if m == nil || by[c.SHA] != "" {
			continue
		}
		for j := len(commits) - 1; j > i; j-- {
			t := commits[j]
			if strings.HasPrefix(t.SHA, m[1]) && by[t.SHA] == "" && !reverts[t.SHA] {
				by[t.SHA], reverts[c.SHA] = c.SHA, true
				break
			}
		}
	}
	return by, reverts
}

// Entry is one line of the notes.
type Entry struct {
	Category string
	Scope    string
	Text     string
	PR       string
	SHA      string
	Author   string
}

// Classify turns a commit into a note entry. A merge of a pull request takes
// its title from the merge's body; a plain merge (of a branch) yields no
// entry, since its commits are the merged branch's.
func Classify(c core.Commit) (Entry, bool) {
	e := Entry{SHA: c.SHA, Author: c.Author}
	subject := strings.TrimSpace(c.Subject)
	body := strings.TrimSpace(c.Body)
	if m := prMerge.FindStringSubmatch(subject); m != nil {
		e.PR = m[1]
		subject = firstLine(body)
		if subject == "" {
			subject = "Merge of " + m[2]
		}
	} else if len(c.Parents) > 1 && plainMerge.MatchString(subject) {
		return e, false
	}
	if m := prSuffix.FindStringSubmatch(subject); m != nil && e.PR == "" {
		e.PR = m[1]
		subject = strings.TrimSpace(prSuffix.ReplaceAllString(subject, ""))
	}
	e.Category, e.Text = CatOther, subject
	if m := conventional.FindStringSubmatch(subject); m != nil {
		if cat, ok := conventionalTypes[strings.ToLower(m[1])]; ok {
			e.Category, e.Scope, e.Text = cat, m[2], m[4]
			if m[3] == "!" {
				e.Category = CatBreaking
			}
		}
	}
	if strings.Contains(body, "BREAKING CHANGE:") || strings.Contains(body, "BREAKING-CHANGE:") {
		e.Category = CatBreaking
	}
	// A "Changelog: Category[, Subcategory], Description" trailer wins.
	for _, line := range strings.Split(body, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "changelog") {
			continue
		}
		parts := strings.Split(v, ",")
		for i := range parts {
			parts[i] = strings.TrimSpace(parts[i])
		}
		if parts[0] == "" {
			continue
		}
		e.Category = parts[0]
		if len(parts) > 1 && parts[len(parts)-1] != "" {
			e.Text = parts[len(parts)-1]
		}
		if len(parts) > 2 {
			e.Scope = parts[1]
		}
	}
	return e, true
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(line)
}

// Notes renders Markdown notes for a title and the commits of a release
// (newest first, as git log lists them), grouped by category; nothing
// unrecognised is dropped (it goes under Other). A commit reverted in the
// same range is listed with its revert under Reverted, not as shipped.
func Notes(title, rangeText string, commits []core.Commit) string {
	groups := map[string][]Entry{}
	var extra []string
	revertedBy, reverts := reverted(commits)
	var undone []string
	for _, c := range commits {
		if reverts[c.SHA] {
			continue
		}
		if by := revertedBy[c.SHA]; by != "" {
			undone = append(undone, fmt.Sprintf("- %s (%s, %s), reverted by %s", strings.TrimSpace(c.Subject), core.ShortSHA(c.SHA)[:8], c.Author, core.ShortSHA(by)[:8]))
			continue
		}
		e, ok := Classify(c)
		if !ok {
			continue
		}
		if _, known := groups[e.Category]; !known && !isStandard(e.Category) {
			extra = append(extra, e.Category)
		}
		groups[e.Category] = append(groups[e.Category], e)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n%s\n", title, rangeText)
	order := append(append(append([]string{}, categoryOrder...), extra...), CatOther)
	written := map[string]bool{}
	for _, cat := range order {
		es := groups[cat]
		if len(es) == 0 || written[cat] {
			continue
		}
		written[cat] = true
		fmt.Fprintf(&b, "\n## %s\n\n", cat)
		for _, e := range es {
			b.WriteString("- ")
			if e.Scope != "" {
				fmt.Fprintf(&b, "**%s:** ", e.Scope)
			}
			b.WriteString(e.Text)
			if e.PR != "" {
				fmt.Fprintf(&b, " (#%s)", e.PR)
			}
			fmt.Fprintf(&b, " (%s, %s)\n", core.ShortSHA(e.SHA)[:8], e.Author)
		}
	}
	if len(undone) > 0 {
		fmt.Fprintf(&b, "\n## %s\n\n%s\n", CatReverted, strings.Join(undone, "\n"))
	}
	if len(written) == 0 {
		b.WriteString("\nNo changes.\n")
	}
	return b.String()
}

func isStandard(cat string) bool {
	if cat == CatOther {
		return true
	}
	for _, c := range categoryOrder {
		if c == cat {
			return true
		}
	}
	return false
}
