package release

import (
	"context"
	"fmt"
	"regexp"
	"strconv"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/gitx"
)

// rcTagPrefix names the tags of releases without a version: rc-112, rc-112.1.
const rcTagPrefix = "rc-"

var (
	rcTag     = regexp.MustCompile(`^` + rcTagPrefix + `([1-9][0-9]{0,8})(?:\.([1-9][0-9]{0,8}))?$`)
	rcSubject = regexp.MustCompile(`^# RC ([1-9][0-9]{0,8})(?:\.([1-9][0-9]{0,8}))?(?:\s|$)`)
)

// rcNumber is a release candidate's position: RC Number.Patch.
type rcNumber struct{ Number, Patch int }

func (n rcNumber) less(o rcNumber) bool {
	return n.Number < o.Number || (n.Number == o.Number && n.Patch < o.Patch)
}

func (n rcNumber) String() string { return core.Candidate{Number: n.Number, Patch: n.Patch}.Label() }

func parseRC(m []string) rcNumber {
	n, _ := strconv.Atoi(m[1])
	p, _ := strconv.Atoi(m[2]) // "" -> 0
	return rcNumber{n, p}
}

// history is what the repository's tags and the store say was released
// before: a new server on an old repository continues its numbering and
// its versions instead of starting again at RC 1.
type history struct {
	// last is the highest RC known (cut or tagged), lastPatch the highest
	// patch of each number.
	last      rcNumber
	lastPatch map[int]int
	// finished is the highest RC released (finished, or tagged in the
	// repository), finishedBy the tag or candidate that says so.
	finished   rcNumber
	finishedBy string
	// version is the highest version known (cut or tagged), released the
	// highest version released and releasedBy its tag or candidate.
	version    core.Version
	released   core.Version
	releasedBy string
}

func (h *history) see(n rcNumber, finished bool, by string) {
	if h.last.less(n) {
		h.last = n
	}
	h.lastPatch[n.Number] = max(h.lastPatch[n.Number], n.Patch)
	if finished && h.finished.less(n) {
		h.finished, h.finishedBy = n, by
	}
}

func (h *history) seeVersion(v core.Version, released bool, by string) {
	if h.version.Less(v) {
		h.version = v
	}
	if released && h.released.Less(v) {
		h.released, h.releasedBy = v, by
	}
}

// loadHistory reads the app's candidates and the mirror's release tags:
// rc-N[.k] and TagPrefix+VERSION (whose message, written by finish, starts
// with "# RC N"). skip leaves one candidate out (the one being finished).
func (s *Service) loadHistory(ctx context.Context, w *workspace, skip *core.Candidate) (*history, error) {
	h := &history{lastPatch: map[int]int{}}
	cs, err := s.cfg.Store.ListCandidates(ctx, w.app.Name, 10000)
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		if skip != nil && c.Number == skip.Number && c.Patch == skip.Patch {
			continue
		}
		done := c.State == core.CandidateFinished
		h.see(rcNumber{c.Number, c.Patch}, done, c.Label())
		if v, err := core.ParseVersion(c.Version); err == nil {
			h.seeVersion(v, done, c.Label())
		}
	}
	tags, err := gitx.Tags(ctx, w.mirror)
	if err != nil {
		return nil, err
	}
	for _, t := range tags {
		if m := rcTag.FindStringSubmatch(t.Name); m != nil {
			h.see(parseRC(m), true, "tag "+t.Name)
			continue
		}
		if len(t.Name) <= len(w.lines.TagPrefix) || t.Name[:len(w.lines.TagPrefix)] != w.lines.TagPrefix {
			continue
		}
		v, err := core.ParseVersion(t.Name[len(w.lines.TagPrefix):])
		if err != nil {
			continue
		}
		if skip != nil && skip.Tag == t.Name {
			continue // this candidate's own tag, from an earlier run
		}
		h.seeVersion(v, true, "tag "+t.Name)
		if m := rcSubject.FindStringSubmatch(t.Subject); m != nil {
			h.see(parseRC(m), true, "tag "+t.Name)
		}
	}
	return h, nil
}

// nextVersion validates or derives the semantic version of a new candidate.
func nextVersion(h *history, req CutRequest) (string, error) {
	if req.Version != "" && req.Bump != "" {
		return "", fmt.Errorf("%w: give --version or a bump, not both", core.ErrInvalid)
	}
	if req.Version == "" && req.Bump == "" {
		return "", nil
	}
	if req.Bump != "" {
		v, err := h.version.Bump(req.Bump)
		return v.String(), err
	}
	v, err := core.ParseVersion(req.Version)
	if err != nil {
		return "", err
	}
	if !h.version.Less(v) {
		return "", fmt.Errorf("%w: version %s is not greater than the last release's %s", core.ErrInvalid, v, h.version)
	}
	return v.String(), nil
}

// tagName is the tag a finished candidate gets.
func tagName(w *workspace, c core.Candidate) string {
	if c.Version != "" {
		return w.lines.TagPrefix + c.Version
	}
	return rcTagPrefix + c.ID()
}

// notesStart is where a candidate's notes begin when no production line
// exists yet: the nearest release tag the candidate contains, or "" (the
// whole history) for a repository never released.
func notesStart(ctx context.Context, w *workspace, head string) (string, error) {
	tag, err := gitx.NearestTag(ctx, w.mirror, head, rcTagPrefix+"[1-9]*", w.lines.TagPrefix+"[0-9]*")
	if err != nil || tag == "" {
		return "", err
	}
	return gitx.RefSHA(ctx, w.mirror, "refs/tags/"+tag)
}
