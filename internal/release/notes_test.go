package release

import (
	"strings"
	"testing"

	"github.com/cutover/cutover/internal/core"
)

func commit(subject, body string, parents int) core.Commit {
	c := core.Commit{SHA: strings.Repeat("a", 40), Author: "Ada", Subject: subject, Body: body}
	for range parents {
		c.Parents = append(c.Parents, strings.Repeat("b", 40))
	}
	return c
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name      string
		c         core.Commit
		cat, text string
		pr, scope string
		skip      bool
	}{
		{"feature", commit("feat: add login", "", 1), CatFeatures, "add login", "", "", false},
		{"scoped fix", commit("fix(api): handle nil", "", 1), CatFixes, "handle nil", "", "api", false},
		{"breaking bang", commit("feat!: drop v1 API", "", 1), CatBreaking, "drop v1 API", "", "", false},
		{"breaking footer", commit("refactor: new store", "BREAKING CHANGE: config moved", 1), CatBreaking, "new store", "", "", false},
		{"squash merge PR suffix", commit("perf: faster switch (#42)", "", 1), CatPerformance, "faster switch", "42", "", false},
		{"PR merge", commit("Merge pull request #7 from team/login", "fix: login loop\n\ndetails", 2), CatFixes, "login loop", "7", "", false},
		{"plain merge skipped", commit("Merge branch 'main' into feature", "", 2), "", "", "", "", true},
		{"unrecognised", commit("updated stuff", "", 1), CatOther, "updated stuff", "", "", false},
		{"unknown type", commit("wip: something", "", 1), CatOther, "wip: something", "", "", false},
		{"changelog trailer", commit("Tidy up", "Some text\n\nchangelog: User-Facing Improvements, Login, Faster sign in", 1), "User-Facing Improvements", "Faster sign in", "", "Login", false},
		{"changelog category only", commit("fix: x", "Changelog: Internal", 1), "Internal", "x", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, ok := Classify(tc.c)
			if ok == tc.skip {
				t.Fatalf("ok = %v", ok)
			}
			if tc.skip {
				return
			}
			if e.Category != tc.cat || e.Text != tc.text || e.PR != tc.pr || e.Scope != tc.scope {
				t.Errorf("entry = %+v", e)
			}
		})
	}
}

func TestNotesGroupsEverything(t *testing.T) {
	notes := Notes("RC 3 (v1.2.0)", "Commits a..b.", []core.Commit{
		commit("chore: bump deps", "", 1),
		commit("feat(ui): dark mode", "", 1),
		commit("fixed the thing", "", 1),
		commit("Merge pull request #9 from x/y", "fix: crash on start", 2),
		commit("Merge branch 'main'", "", 2),
		commit("docs: readme", "Changelog: Partner Notes, API, New endpoint", 1),
	})
	for _, want := range []string{"# RC 3 (v1.2.0)", "## Features\n\n- **ui:** dark mode", "## Bug fixes\n\n- crash on start (#9)", "## Maintenance", "## Partner Notes", "**API:** New endpoint", "## Other\n\n- fixed the thing"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
	if strings.Index(notes, "## Features") > strings.Index(notes, "## Bug fixes") || strings.Index(notes, "## Partner Notes") > strings.Index(notes, "## Other") {
		t.Errorf("category order wrong:\n%s", notes)
	}
	if !strings.Contains(Notes("RC 1", "", nil), "No changes.") {
		t.Error("empty notes")
	}
}
