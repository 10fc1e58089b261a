package cli

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cutover/cutover/internal/client"
	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/release"
)

func newReleaseCmd(c *control) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "release",
		Short: "Release candidates: cut, check, finish, notes",
		Long: `The release manager's checklist as safe, repeatable steps. "cut" creates the
release branch (stages/rc-YYYY-MM-DD) from the commit live in staging, numbers
the candidate (RC 112, or RC 112.1 for a hotfix) and writes its notes; "check"
reports merge conflicts with the production line without changing anything;
"finish" moves the production line to the candidate's commit (the one built
and deployed), tags that commit and pushes both at once, and is safe to rerun;
"abandon" gives a candidate up.`,
	}
	cmd.AddCommand(newReleaseCutCmd(c), newReleaseListCmd(c), newReleaseNotesCmd(c), newReleaseCheckCmd(c), newReleaseFinishCmd(c), newReleaseAbandonCmd(c))
	return cmd
}

// errReleaseNotReady makes "release check" exit 1 after it printed why the
// candidate cannot simply replace the production line.
var errReleaseNotReady = errors.New("the release candidate cannot replace the production line as it is")

func newReleaseCutCmd(c *control) *cobra.Command {
	var hotfix, from, version, since string
	var major, minor, patch bool
	cmd := &cobra.Command{
		Use:   "cut APP",
		Short: "Cut a release candidate from what is live in staging (or a hotfix)",
		Example: `  cutover release cut hello --minor              # RC N+1 from staging, version bumped
  cutover release cut hello --version 2.4.5
  cutover release cut hello --hotfix hotfix/login   # RC N.1 from a hotfix branch
  cutover release cut hello --since v2.4.4          # notes start at v2.4.4`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := validName("app", args[0]); err != nil {
				return err
			}
			bumps := 0
			bump := ""
			for name, set := range map[string]bool{"major": major, "minor": minor, "patch": patch} {
				if set {
					bumps++
					bump = name
				}
			}
			if bumps > 1 || (bumps == 1 && version != "") {
				return usagef("give one of --version, --major, --minor, --patch")
			}
			if version != "" {
				if _, err := core.ParseVersion(version); err != nil {
					return usageError{err}
				}
			}
			req := map[string]any{"version": version, "bump": bump, "from": from, "since": since}
			if hotfix != "" {
				if from != "" {
					return usagef("--hotfix takes the ref; do not also give --from")
				}
				req["patch"], req["from"] = true, hotfix
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			rc, err := cl.CutRelease(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(cmd.OutOrStdout(), rc)
			}
			printf(cmd, "%s cut at %s on branch %s\n\n%s", rc.Label(), core.ShortSHA(rc.Head), rc.Branch, rc.Notes)
			return nil
		},
	}
	cmd.Flags().StringVar(&hotfix, "hotfix", "", "cut a patch release (RC N.k) from this hotfix branch or commit")
	cmd.Flags().StringVar(&from, "from", "", "cut a full release from this ref instead of what is live in staging")
	cmd.Flags().StringVar(&since, "since", "", "start the notes at this ref (default: the production line, or the latest release tag)")
	cmd.Flags().StringVar(&version, "version", "", "semantic version, greater than the last (e.g. 2.4.5)")
	cmd.Flags().BoolVar(&major, "major", false, "bump the major version")
	cmd.Flags().BoolVar(&minor, "minor", false, "bump the minor version")
	cmd.Flags().BoolVar(&patch, "patch", false, "bump the patch version")
	return cmd
}

func newReleaseListCmd(c *control) *cobra.Command {
	return &cobra.Command{
		Use: "list APP", Short: "List release candidates, newest first", Example: "  cutover release list hello", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.forApp(args[0])
			if err != nil {
				return err
			}
			rcs, err := cl.Candidates(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(cmd.OutOrStdout(), rcs)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RC\tVERSION\tSTATE\tBRANCH\tHEAD\tTAG\tCUT")
			for _, r := range rcs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID(), r.Version, r.State, r.Branch, core.ShortSHA(r.Head), r.Tag, r.CreatedAt.Local().Format(time.DateTime))
			}
			return tw.Flush()
		},
	}
}

func newReleaseNotesCmd(c *control) *cobra.Command {
	var setFile string
	cmd := &cobra.Command{
		Use:     "notes APP RC",
		Short:   "Print a candidate's release notes, or replace them with --set-file",
		Example: "  cutover release notes hello 112 > notes.md\n  cutover release notes hello 112 --set-file notes.md",
		Args:    exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.forCandidate(args[0], args[1])
			if err != nil {
				return err
			}
			var rc core.Candidate
			if setFile != "" {
				b, err := os.ReadFile(setFile)
				if err != nil {
					return usagef("--set-file: %v", err)
				}
				rc, err = cl.SetNotes(cmd.Context(), args[0], args[1], string(b))
				if err != nil {
					return err
				}
			} else if rc, err = cl.Candidate(cmd.Context(), args[0], args[1]); err != nil {
				return err
			}
			if c.json() {
				return printJSON(cmd.OutOrStdout(), rc)
			}
			printf(cmd, "%s", rc.Notes)
			return nil
		},
	}
	cmd.Flags().StringVar(&setFile, "set-file", "", "replace the notes with this Markdown file")
	return cmd
}

func newReleaseCheckCmd(c *control) *cobra.Command {
	return &cobra.Command{
		Use:   "check APP RC",
		Short: "Report whether the candidate can replace the production line (changes nothing)",
		Long: `Reports whether the candidate contains the production line (finish then
fast-forwards it), which of the production line's commits it lacks (compared
by patch, so a fix cherry-picked into the release counts as present) and where
merging them would conflict. Exits 1 when finish would refuse.`,
		Example: "  cutover release check hello 112",
		Args:    exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.forCandidate(args[0], args[1])
			if err != nil {
				return err
			}
			var res release.CheckResult
			if err := cl.CheckRelease(cmd.Context(), args[0], args[1], &res); err != nil {
				return err
			}
			if c.json() {
				if err := printJSON(cmd.OutOrStdout(), res); err != nil {
					return err
				}
			} else {
				printCheck(cmd, res)
			}
			switch {
			case res.Clean:
				return nil
			case len(res.Conflicts) > 0:
				return fmt.Errorf("%w: %s conflicts with the production line %s in %d file(s) and lacks %d of its commit(s)", errReleaseNotReady, res.Candidate, res.Production, len(res.Conflicts), len(res.Missing))
			default:
				return fmt.Errorf("%w: %s lacks %d commit(s) of the production line %s", errReleaseNotReady, res.Candidate, len(res.Missing), res.Production)
			}
		},
	}
}

func printCheck(cmd *cobra.Command, res release.CheckResult) {
	switch {
	case res.Merged:
		printf(cmd, "%s is already in %s\n", res.Candidate, res.Production)
		return
	case res.FastForward:
		printf(cmd, "%s merges cleanly into %s (it contains the production line: a fast-forward)\n", res.Candidate, res.Production)
		return
	case res.Clean:
		printf(cmd, "%s has every change of %s (by patch) but not its history: finish moves %s to the release's commit, dropping nothing\n", res.Candidate, res.Production, res.Production)
		return
	}
	printf(cmd, "%s lacks %d commit(s) of %s:\n", res.Candidate, len(res.Missing), res.Production)
	for _, m := range res.Missing {
		printf(cmd, "  %s %s (%s)\n", core.ShortSHA(m.SHA)[:8], m.Subject, m.Author)
	}
	if len(res.Conflicts) > 0 {
		printf(cmd, "%s conflicts with %s in:\n  %s\n", res.Candidate, res.Production, strings.Join(res.Conflicts, "\n  "))
	}
	printf(cmd, "Merge %s into the release's source and cut again, or finish with --drop SHA for each commit to lose (--true-up: all of them).\n", res.Production)
}

func newReleaseFinishCmd(c *control) *cobra.Command {
	var trueUp bool
	var drop []string
	cmd := &cobra.Command{
		Use:   "finish APP RC",
		Short: "Move the production line to the candidate's commit, tag it, push (safe to rerun)",
		Long: `Moves the production line to the candidate's commit (the one built and deployed)
and creates an annotated tag on that same commit (signed when
release.signing_key is set), pushing both in one atomic push; then records the
candidate finished. The production line moves when the candidate contains it,
or has all of its changes by patch. When the production line has commits the
candidate lacks (a hotfix not brought to main), finish refuses and names them:
merge them and cut again, or drop them on purpose with --drop SHA (repeatable)
or --true-up (all of them); what is dropped is listed in the notes and the tag.
A refused or failed finish changes nothing; rerunning is safe. A version never
goes backwards, and an abandoned candidate cannot be finished.`,
		Example: "  cutover release finish hello 112\n  cutover release finish hello 113 --drop 4f2a9c1e\n  cutover release finish hello 113 --true-up",
		Args:    exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.forCandidate(args[0], args[1])
			if err != nil {
				return err
			}
			if trueUp && len(drop) > 0 {
				return usagef("give --drop or --true-up, not both")
			}
			rc, err := cl.FinishRelease(cmd.Context(), args[0], args[1], trueUp, drop)
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(cmd.OutOrStdout(), rc)
			}
			printf(cmd, "%s finished: production line at %s, tagged %s\n", rc.Label(), core.ShortSHA(rc.Head), rc.Tag)
			return nil
		},
	}
	cmd.Flags().BoolVar(&trueUp, "true-up", false, "drop every commit of the production line the release lacks (listed in the notes)")
	cmd.Flags().StringArrayVar(&drop, "drop", nil, "drop this commit of the production line the release lacks (SHA; repeatable; listed in the notes)")
	return cmd
}

func newReleaseAbandonCmd(c *control) *cobra.Command {
	return &cobra.Command{
		Use:     "abandon APP RC",
		Short:   "Give a candidate up: recorded, and it can no longer be finished",
		Example: "  cutover release abandon hello 112",
		Args:    exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.forCandidate(args[0], args[1])
			if err != nil {
				return err
			}
			rc, err := cl.AbandonRelease(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(cmd.OutOrStdout(), rc)
			}
			printf(cmd, "%s abandoned (branch %s left as it is)\n", rc.Label(), rc.Branch)
			return nil
		},
	}
}

func newDiffCmd(c *control) *cobra.Command {
	return &cobra.Command{
		Use:     "diff APP A B",
		Short:   "What changed between releases A and B: commits, authors, config keys, migrations",
		Example: "  cutover diff hello 7 9",
		Args:    exactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := validName("app", args[0]); err != nil {
				return err
			}
			a, errA := strconv.Atoi(strings.TrimPrefix(args[1], "v"))
			b, errB := strconv.Atoi(strings.TrimPrefix(args[2], "v"))
			if errA != nil || errB != nil || a <= 0 || b <= 0 {
				return usagef("releases are numbers such as 7 or v7, got %q and %q", args[1], args[2])
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			var ch release.Change
			if err := cl.Diff(cmd.Context(), args[0], a, b, &ch); err != nil {
				return err
			}
			if c.json() {
				return printJSON(cmd.OutOrStdout(), ch)
			}
			printf(cmd, "#%d -> #%d: %d commit(s) by %s\n", a, b, len(ch.Commits), strings.Join(ch.Authors, ", "))
			for _, cm := range ch.Commits {
				printf(cmd, "  %s %s (%s)\n", core.ShortSHA(cm.SHA)[:8], cm.Subject, cm.Author)
			}
			printf(cmd, "config keys changed: %s\n", listOrNone(ch.Config))
			printf(cmd, "migrations: %s\n", listOrNone(ch.Migrations))
			return nil
		},
	}
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}

// forCandidate validates APP and RC arguments, then returns a client.
func (c *control) forCandidate(app, rc string) (*client.Client, error) {
	if err := validName("app", app); err != nil {
		return nil, err
	}
	if _, _, err := core.ParseCandidateID(rc); err != nil {
		return nil, usageError{err}
	}
	return c.client()
}
