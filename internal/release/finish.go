package release

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/gitx"
)

// Errors callers branch on; each is wrapped together with core.ErrConflict.
var (
	// ErrConflicts: merging the production line into the candidate conflicts.
	ErrConflicts = errors.New("merge conflicts")
	// ErrLacksProduction: the production line has commits the candidate
	// lacks and finishing would drop them.
	ErrLacksProduction = errors.New("the release lacks commits of the production line")
	// ErrAbandoned: the candidate was abandoned.
	ErrAbandoned = errors.New("release candidate abandoned")
	// ErrBackwards: the candidate is older than what was already released.
	ErrBackwards = errors.New("release goes backwards")
)

// CheckResult says whether a candidate can replace the production line and
// what stands in the way.
type CheckResult struct {
	Candidate  string `json:"candidate"`
	Production string `json:"production"`
	// Clean: finish goes through without --drop or --true-up.
	Clean bool `json:"clean"`
	// FastForward: the candidate contains the production line.
	FastForward bool `json:"fast_forward"`
	Merged      bool `json:"already_merged"`
	// Missing lists the production line's commits the candidate lacks
	// (compared by patch: a fix cherry-picked into the candidate is present).
	Missing []core.Commit `json:"missing,omitempty"`
	// Conflicts lists the files where merging the production line into the
	// candidate conflicts (only when commits are missing).
	Conflicts []string `json:"conflicts,omitempty"`
}

// Check reports, without changing anything, whether the candidate contains
// the production line, which of its commits it lacks and where merging them
// would conflict.
func (s *Service) Check(ctx context.Context, app, id string) (CheckResult, error) {
	defer s.lock(app)()
	c, err := s.Get(ctx, app, id)
	if err != nil {
		return CheckResult{}, err
	}
	w, err := s.open(ctx, app)
	if err != nil {
		return CheckResult{}, err
	}
	res, _, err := s.check(ctx, w, c)
	return res, err
}

// check compares the candidate with the production line and returns the
// line's head ("" when it does not exist yet).
func (s *Service) check(ctx context.Context, w *workspace, c core.Candidate) (CheckResult, string, error) {
	res := CheckResult{Candidate: c.Label(), Production: w.lines.Production}
	prod, err := gitx.RefSHA(ctx, w.mirror, "refs/heads/"+w.lines.Production)
	if err != nil || prod == "" {
		res.Clean, res.FastForward = err == nil, err == nil
		return res, prod, err
	}
	if res.Merged, err = gitx.IsAncestor(ctx, w.mirror, c.Head, prod); err != nil {
		return res, prod, err
	}
	if res.FastForward, err = gitx.IsAncestor(ctx, w.mirror, prod, c.Head); err != nil {
		return res, prod, err
	}
	if res.Merged || res.FastForward {
		res.Clean = true
		return res, prod, nil
	}
	if res.Missing, err = gitx.Missing(ctx, w.mirror, c.Head, prod); err != nil {
		return res, prod, err
	}
	if len(res.Missing) > 0 {
		if _, res.Conflicts, err = gitx.MergeTree(ctx, w.mirror, c.Head, prod); err != nil {
			return res, prod, err
		}
	}
	res.Clean = len(res.Missing) == 0
	return res, prod, nil
}

// FinishOptions says what a finish may drop from the production line.
type FinishOptions struct {
	// TrueUp moves the production line to the candidate even though it
	// lacks commits of the line; they are listed in the notes.
	TrueUp bool
	// Drop names (by SHA or unique prefix) the production line's commits
	// the candidate may lack; they are listed in the notes.
	Drop []string
}

// minDropPrefix is the shortest SHA prefix --drop accepts.
const minDropPrefix = 7

// Finish releases the candidate: the production line moves to the
// candidate's commit (the commit that was built and deployed) and an
// annotated tag (signed when a key is configured) names that same commit;
// both are pushed in one atomic push, after which the candidate is recorded
// finished. The production line moves when the candidate contains it, or
// when every commit of the line is in the candidate by patch or dropped on
// purpose (opts); otherwise nothing changes. A refused or failed finish
// moves no ref and records nothing; a rerun after a crash completes it.
func (s *Service) Finish(ctx context.Context, app, id string, opts FinishOptions) (core.Candidate, error) {
	for _, d := range opts.Drop {
		if len(d) < minDropPrefix || len(d) > 64 || strings.Trim(strings.ToLower(d), "0123456789abcdef") != "" {
			return core.Candidate{}, fmt.Errorf("%w: --drop %q: want a commit SHA (at least %d hex digits)", core.ErrInvalid, d, minDropPrefix)
		}
	}
	defer s.lock(app)()
	c, err := s.Get(ctx, app, id)
	if err != nil {
		return c, err
	}
	w, err := s.open(ctx, app)
	if err != nil {
		return c, err
	}
	return s.finish(ctx, w, c, opts, true)
}

func (s *Service) finish(ctx context.Context, w *workspace, c core.Candidate, opts FinishOptions, push bool) (core.Candidate, error) {
	if c.State == core.CandidateAbandoned {
		return c, fmt.Errorf("%w: %w: %s was abandoned; cut a new release", core.ErrConflict, ErrAbandoned, c.Label())
	}
	prodRef := "refs/heads/" + w.lines.Production
	tag := tagName(w, c)
	tagRef := "refs/tags/" + tag
	tagAt, err := gitx.RefSHA(ctx, w.mirror, tagRef)
	if err != nil {
		return c, err
	}
	if tagAt != "" && tagAt != c.Head {
		return c, fmt.Errorf("%w: tag %s already names %s, not %s's commit %s: this repository released under that name before (nothing was changed; abandon %s and cut again)",
			core.ErrConflict, tag, core.ShortSHA(tagAt), c.Label(), core.ShortSHA(c.Head), c.Label())
	}
	res, prod, err := s.check(ctx, w, c)
	if err != nil {
		return c, err
	}
	if tagAt == c.Head && res.Merged {
		// Pushed by an earlier run that stopped before recording it.
		return s.recordFinished(ctx, w, c, tag, c.Notes)
	}
	if err := s.checkOrder(ctx, w, c); err != nil {
		return c, err
	}
	if res.Merged && prod != c.Head {
		return c, fmt.Errorf("%w: %w: %s's commit %s is already in the production line %s, which has moved past it: nothing to finish (abandon %s)",
			core.ErrConflict, ErrBackwards, c.Label(), core.ShortSHA(c.Head), w.lines.Production, c.Label())
	}
	dropped, err := droppable(w, c, res, opts)
	if err != nil {
		return c, err
	}
	notes := c.Notes
	if len(dropped) > 0 {
		how := "--drop"
		if opts.TrueUp {
			how = "--true-up"
		}
		notes += fmt.Sprintf("\n## Dropped from %s\n\n%d commit(s) of the production line are not in this release (finished with %s):\n\n%s",
			w.lines.Production, len(dropped), how, commitList(dropped))
	}
	// Write the refs in the mirror, push them all or nothing, and put the
	// mirror back if the push fails: a failed finish changes nothing.
	if prod != c.Head {
		if err := gitx.ResetRef(ctx, w.mirror, prodRef, c.Head); err != nil {
			return c, err
		}
	}
	if err := gitx.CreateTag(ctx, w.mirror, tag, c.Head, notes, w.lines.SigningKey); err != nil {
		s.restore(ctx, w, prodRef, prod, tagRef, tagAt)
		return c, err
	}
	if !push {
		return c, nil
	}
	updates := []gitx.RefUpdate{{Ref: prodRef, Old: prod}}
	if tagAt == "" {
		updates = append(updates, gitx.RefUpdate{Ref: tagRef})
	}
	if err := gitx.PushAtomic(ctx, w.mirror, w.app.Repo, updates...); err != nil {
		s.restore(ctx, w, prodRef, prod, tagRef, tagAt)
		return c, fmt.Errorf("push %s and tag %s: %w (nothing was changed; rerun finish)", w.lines.Production, tag, err)
	}
	return s.recordFinished(ctx, w, c, tag, notes)
}

// restore puts the mirror's production line and tag back after a failure.
func (s *Service) restore(ctx context.Context, w *workspace, prodRef, prod, tagRef, tagAt string) {
	for ref, to := range map[string]string{prodRef: prod, tagRef: tagAt} {
		if to != "" && ref == tagRef {
			continue // the tag existed before: it was never touched
		}
		if err := gitx.ResetRef(ctx, w.mirror, ref, to); err != nil {
			s.log.Warn("restore mirror ref", "app", w.app.Name, "ref", ref, "err", err)
		}
	}
}

// droppable decides which commits of the production line a finish drops:
// none when the candidate contains the line or has all of its changes by
// patch; the missing ones when opts says to drop each of them (or all, with
// TrueUp); otherwise it refuses, naming them.
func droppable(w *workspace, c core.Candidate, res CheckResult, opts FinishOptions) ([]core.Commit, error) {
	if len(opts.Drop) > 0 && opts.TrueUp {
		return nil, fmt.Errorf("%w: give --drop or --true-up, not both", core.ErrInvalid)
	}
	used := make([]bool, len(opts.Drop))
	var unlisted []core.Commit
	for _, m := range res.Missing {
		listed := opts.TrueUp
		for i, d := range opts.Drop {
			if strings.HasPrefix(m.SHA, strings.ToLower(d)) {
				listed, used[i] = true, true
			}
		}
		if !listed {
			unlisted = append(unlisted, m)
		}
	}
	for i, d := range opts.Drop {
		if !used[i] {
			return nil, fmt.Errorf("%w: --drop %s: not a commit of %s that %s lacks (nothing was changed)", core.ErrInvalid, d, w.lines.Production, c.Label())
		}
	}
	if len(unlisted) == 0 {
		return res.Missing, nil
	}
	msg := fmt.Sprintf("%d commit(s) of %s that %s lacks would be lost", len(unlisted), w.lines.Production, c.Label())
	if len(res.Conflicts) > 0 {
		msg = fmt.Sprintf("%s conflicts with the production line %s in %s, and %s", c.Label(), w.lines.Production, strings.Join(res.Conflicts, ", "), msg)
	}
	return nil, fmt.Errorf("%w: %w: %s (nothing was changed):\n%sMerge %s into the release's source and cut again, or finish with --drop SHA for each commit you mean to lose (--true-up drops them all, listed in the notes)",
		core.ErrConflict, errLacks(res.Conflicts), msg, commitList(unlisted), w.lines.Production)
}

func errLacks(conflicts []string) error {
	if len(conflicts) > 0 {
		return errors.Join(ErrLacksProduction, ErrConflicts)
	}
	return ErrLacksProduction
}

// checkOrder refuses to release a candidate older than what was released
// already: a lower RC number, or a version that is not greater.
func (s *Service) checkOrder(ctx context.Context, w *workspace, c core.Candidate) error {
	h, err := s.loadHistory(ctx, w, &c)
	if err != nil {
		return err
	}
	if n := (rcNumber{c.Number, c.Patch}); n.less(h.finished) {
		return fmt.Errorf("%w: %w: %s is older than %s, released already (%s): abandon %s and cut a new release",
			core.ErrConflict, ErrBackwards, c.Label(), h.finished, h.finishedBy, c.Label())
	}
	if c.Version == "" || h.releasedBy == "" {
		return nil
	}
	v, err := core.ParseVersion(c.Version)
	if err != nil {
		return err
	}
	if !h.released.Less(v) {
		return fmt.Errorf("%w: %w: %s's version %s is not greater than %s, released already (%s): a version never goes backwards; abandon %s and cut it again with a greater version",
			core.ErrConflict, ErrBackwards, c.Label(), v, h.released, h.releasedBy, c.Label())
	}
	return nil
}

// recordFinished records a pushed release (once).
func (s *Service) recordFinished(ctx context.Context, w *workspace, c core.Candidate, tag, notes string) (core.Candidate, error) {
	if c.State == core.CandidateFinished {
		return c, nil
	}
	now := s.cfg.Now().UTC()
	c.Merge, c.Tag, c.Notes = c.Head, tag, notes
	c.State, c.FinishedAt = core.CandidateFinished, &now
	if err := s.cfg.Store.UpdateCandidate(ctx, c); err != nil {
		return c, fmt.Errorf("record %s finished: %w (the refs are pushed; rerun finish to record it)", c.Label(), err)
	}
	s.emit(ctx, core.Event{App: c.App, Type: core.EventReleaseFinished, SHA: c.Head, Reason: tag, Message: fmt.Sprintf("%s released: %s at %s, tagged %s", title(c), w.lines.Production, core.ShortSHA(c.Head), tag)})
	if s.cfg.Tagger != nil {
		// The git tag is the release; the image tag follows it. A failure
		// is said on the timeline and does not undo the release.
		switch tagged, err := s.cfg.Tagger.TagArtifact(ctx, c.App, c.Head, tag); {
		case err != nil:
			s.log.Error("tag the release's artifact", "app", c.App, "sha", c.Head, "tag", tag, "err", err)
			s.emit(ctx, core.Event{App: c.App, Type: core.EventImageTagFailed, SHA: c.Head, Reason: tag,
				Message: fmt.Sprintf("%s: the image of %s was not tagged %s: %v", title(c), core.ShortSHA(c.Head), tag, err)})
		case tagged != "":
			s.emit(ctx, core.Event{App: c.App, Type: core.EventImageTagged, SHA: c.Head, Reason: tag,
				Message: fmt.Sprintf("%s: image %s tagged %s", title(c), tagged, tag)})
		}
	}
	return c, nil
}

// Abandon gives a candidate up: it is recorded abandoned and can no longer
// be finished. Its branch is left as it is.
func (s *Service) Abandon(ctx context.Context, app, id string) (core.Candidate, error) {
	defer s.lock(app)()
	c, err := s.Get(ctx, app, id)
	if err != nil {
		return c, err
	}
	switch c.State {
	case core.CandidateAbandoned:
		return c, nil
	case core.CandidateFinished:
		return c, fmt.Errorf("%w: %s was finished (tagged %s): it cannot be abandoned", core.ErrConflict, c.Label(), c.Tag)
	}
	c.State = core.CandidateAbandoned
	if err := s.cfg.Store.UpdateCandidate(ctx, c); err != nil {
		return c, err
	}
	s.emit(ctx, core.Event{App: c.App, Type: core.EventReleaseAbandoned, Message: title(c) + " abandoned"})
	return c, nil
}
