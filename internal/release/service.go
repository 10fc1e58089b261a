package release

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/gitx"
	"github.com/cutover/cutover/internal/manifest"
)

// Store is what release management needs from storage (internal/store).
type Store interface {
	GetApp(ctx context.Context, name string) (core.App, error)
	GetEnvState(ctx context.Context, app, env string) (core.EnvState, error)
	GetRelease(ctx context.Context, app string, number int) (core.Release, error)
	GetConfig(ctx context.Context, app, env string, version int) (core.ConfigVersion, error)
	GetConfigSecrets(ctx context.Context, app, env string, version int) (map[string]string, error)
	CreateCandidate(ctx context.Context, c core.Candidate) (core.Candidate, error)
	UpdateCandidate(ctx context.Context, c core.Candidate) error
	GetCandidate(ctx context.Context, app string, number, patch int) (core.Candidate, error)
	ListCandidates(ctx context.Context, app string, limit int) ([]core.Candidate, error)
	PutCheck(ctx context.Context, c core.Check) error
	GetCheck(ctx context.Context, app, sha, env, name string) (core.Check, error)
	ListDeployments(ctx context.Context, app, env string, beforeID int64, limit int) ([]core.Deployment, error)
}

// Publisher records events in the timeline (the deploy machine's).
type Publisher interface {
	Publish(ctx context.Context, e core.Event)
}

// Config wires a Service.
type Config struct {
	Store Store
	// DataDir holds a bare mirror of each app's repository (DataDir/APP.git),
	// where release refs are written before they are pushed to the app's repo.
	DataDir string
	Logger  *slog.Logger
	Now     func() time.Time
	// Publisher records timeline events (may be nil).
	Publisher Publisher
	// Tagger adds a finished release's tag to the artifact of its commit
	// (an image in a registry); nil for none.
	Tagger Tagger
}

// Tagger adds a release tag (rc-112, v2.4.5) to what was built from a
// commit: a container image's digest gets the tag beside its SHA tag, and
// TagArtifact returns the tagged image ("" when the commit has no image:
// not built, or not runtime docker). Adding a tag that already names the
// same image is a no-op; one that names another is refused.
type Tagger interface {
	TagArtifact(ctx context.Context, app, sha, tag string) (tagged string, err error)
}

// Service runs release operations; one at a time per app.
type Service struct {
	cfg   Config
	log   *slog.Logger
	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{cfg: cfg, log: cfg.Logger, locks: map[string]*sync.Mutex{}}
}

// Store returns the store the service records candidates and checks in.
func (s *Service) Store() Store { return s.cfg.Store }

func (s *Service) lock(app string) func() {
	s.mu.Lock()
	l := s.locks[app]
	if l == nil {
		l = &sync.Mutex{}
		s.locks[app] = l
	}
	s.mu.Unlock()
	l.Lock()
	return l.Unlock
}

func (s *Service) emit(ctx context.Context, e core.Event) {
	if s.cfg.Publisher != nil {
		s.cfg.Publisher.Publish(ctx, e)
	}
}

// workspace is an app's synced mirror and its release settings.
type workspace struct {
	app    core.App
	mirror string
	m      *manifest.Manifest // cutover.yml of the main line's head
	lines  manifest.ReleaseLines
}

// open syncs the app's mirror and reads the release settings from the main line.
func (s *Service) open(ctx context.Context, appName string) (*workspace, error) {
	if err := core.ValidateName("app", appName); err != nil {
		return nil, err
	}
	app, err := s.cfg.Store.GetApp(ctx, appName)
	if err != nil {
		return nil, fmt.Errorf("app %q: %w", appName, err)
	}
	w := &workspace{app: app, mirror: filepath.Join(s.cfg.DataDir, app.Name+".git")}
	if err := gitx.Mirror(ctx, app.Repo, w.mirror); err != nil {
		return nil, fmt.Errorf("sync %s: %w", app.Repo, err)
	}
	main, err := gitx.RefSHA(ctx, w.mirror, "refs/heads/"+manifest.DefaultMainLine)
	if err != nil {
		return nil, err
	}
	// The main line's manifest may rename the main line itself; read it from
	// "main" first, then from HEAD.
	ref := main
	if ref == "" {
		if ref, err = gitx.RefSHA(ctx, w.mirror, "HEAD"); err != nil || ref == "" {
			return nil, fmt.Errorf("%w: %s has no main line commit", core.ErrInvalid, app.Repo)
		}
	}
	if w.m, err = loadManifest(ctx, w.mirror, ref); err != nil {
		return nil, err
	}
	w.lines = w.m.Release
	return w, nil
}

func loadManifest(ctx context.Context, repo, commit string) (*manifest.Manifest, error) {
	b, err := gitx.ShowFile(ctx, repo, commit, manifest.FileName)
	if err != nil {
		return nil, err
	}
	m, err := manifest.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", core.ShortSHA(commit), err)
	}
	return m, nil
}

// CutRequest asks for a new release candidate.
type CutRequest struct {
	App string
	// Patch makes RC N.k on top of the latest RC N from From (a hotfix
	// branch or commit); otherwise a full release RC N+1 is cut from the
	// commit live in the environment production promotes from (or From).
	Patch bool
	From  string
	// Version sets the semantic version; Bump ("major", "minor", "patch")
	// derives it from the last one. Both are optional.
	Version string
	Bump    string
	// Since starts the notes at this ref instead of the production line
	// (or, without one, the latest release tag the candidate contains).
	Since string
}

// Cut creates the release branch, pushes it, writes the notes and records
// the candidate. Nothing is merged. Numbers and versions continue from the
// store and from the repository's release tags; commits of the production
// line the candidate lacks are listed in its notes.
func (s *Service) Cut(ctx context.Context, req CutRequest) (core.Candidate, error) {
	if req.Patch && req.From == "" {
		return core.Candidate{}, fmt.Errorf("%w: a patch release needs --from REF (the hotfix branch or commit)", core.ErrInvalid)
	}
	for name, ref := range map[string]string{"--from": req.From, "--since": req.Since} {
		if ref == "" {
			continue
		}
		if err := gitx.ValidateRef(ref); err != nil {
			return core.Candidate{}, fmt.Errorf("%s: %w", name, err)
		}
	}
	defer s.lock(req.App)()
	w, err := s.open(ctx, req.App)
	if err != nil {
		return core.Candidate{}, err
	}
	h, err := s.loadHistory(ctx, w, nil)
	if err != nil {
		return core.Candidate{}, err
	}
	version, err := nextVersion(h, req)
	if err != nil {
		return core.Candidate{}, err
	}
	head, err := s.source(ctx, w, req)
	if err != nil {
		return core.Candidate{}, err
	}
	prod, err := gitx.RefSHA(ctx, w.mirror, "refs/heads/"+w.lines.Production)
	if err != nil {
		return core.Candidate{}, err
	}
	if prod != "" {
		if in, err := gitx.IsAncestor(ctx, w.mirror, head, prod); err != nil {
			return core.Candidate{}, err
		} else if in {
			return core.Candidate{}, fmt.Errorf("%w: commit %s is already in the production line %s: nothing to release", core.ErrInvalid, core.ShortSHA(head), w.lines.Production)
		}
	}
	base := prod
	switch {
	case req.Since != "":
		if base, err = gitx.ResolveCommit(ctx, w.mirror, req.Since); err != nil {
			return core.Candidate{}, fmt.Errorf("--since %q: %w", req.Since, err)
		}
	case prod == "":
		if base, err = notesStart(ctx, w, head); err != nil {
			return core.Candidate{}, err
		}
	}
	branch, err := s.branch(ctx, w, head)
	if err != nil {
		return core.Candidate{}, err
	}
	if err := gitx.Push(ctx, w.mirror, w.app.Repo, "refs/heads/"+branch); err != nil {
		return core.Candidate{}, fmt.Errorf("push %s: %w", branch, err)
	}
	// The store numbers the candidate; the tags' numbers are floors.
	floor := core.Candidate{Number: h.last.Number + 1}
	if req.Patch {
		floor = core.Candidate{Number: h.last.Number, Patch: h.lastPatch[h.last.Number] + 1}
	}
	c, err := s.cfg.Store.CreateCandidate(ctx, core.Candidate{
		App: w.app.Name, Number: floor.Number, Patch: floor.Patch, Version: version, Branch: branch, Base: base, Head: head,
		State: core.CandidateCut, CreatedAt: s.cfg.Now().UTC(),
	})
	if err != nil {
		return core.Candidate{}, err
	}
	if c.Notes, err = s.notes(ctx, w, c, prod); err != nil {
		return c, err
	}
	if err := s.cfg.Store.UpdateCandidate(ctx, c); err != nil {
		return c, err
	}
	s.emit(ctx, core.Event{App: c.App, Type: core.EventReleaseCut, Message: fmt.Sprintf("%s cut at %s on %s", title(c), core.ShortSHA(head), branch)})
	return c, nil
}

// source picks the commit a candidate releases.
func (s *Service) source(ctx context.Context, w *workspace, req CutRequest) (string, error) {
	if req.From != "" {
		sha, err := gitx.ResolveCommit(ctx, w.mirror, req.From)
		if err != nil {
			return "", fmt.Errorf("--from %q: %w", req.From, err)
		}
		return sha, nil
	}
	if len(w.m.Environments) == 0 {
		return "", fmt.Errorf("%w: cutover.yml has no environments", core.ErrInvalid)
	}
	prod := w.m.Environments[len(w.m.Environments)-1]
	src := prod.From
	if src == "" {
		return "", fmt.Errorf("%w: environment %s promotes from nothing: cut with --from REF", core.ErrInvalid, prod.Name)
	}
	st, err := s.cfg.Store.GetEnvState(ctx, w.app.Name, src)
	if err != nil {
		return "", err
	}
	live := st.LiveRelease()
	if live == 0 {
		return "", fmt.Errorf("%w: nothing is live in %s to cut a release from (deploy it there first, or give --from)", core.ErrInvalid, src)
	}
	rel, err := s.cfg.Store.GetRelease(ctx, w.app.Name, live)
	if err != nil {
		return "", err
	}
	return rel.SHA, nil
}

// branch creates PREFIX+DATE at head (PREFIX+DATE-2 ... when that name is
// taken by another commit or by another candidate) in the mirror: two
// candidates never share a branch.
func (s *Service) branch(ctx context.Context, w *workspace, head string) (string, error) {
	cs, err := s.cfg.Store.ListCandidates(ctx, w.app.Name, 10000)
	if err != nil {
		return "", err
	}
	used := map[string]bool{}
	for _, c := range cs {
		used[c.Branch] = true
	}
	base := w.lines.BranchPrefix + s.cfg.Now().UTC().Format("2006-01-02")
	for i := 1; i < 100; i++ {
		name := base
		if i > 1 {
			name = fmt.Sprintf("%s-%d", base, i)
		}
		if used[name] {
			continue
		}
		cur, err := gitx.RefSHA(ctx, w.mirror, "refs/heads/"+name)
		if err != nil {
			return "", err
		}
		switch cur {
		case head: // left by a cut that stopped before recording its candidate
			return name, nil
		case "":
			if err := gitx.UpdateBranch(ctx, w.mirror, name, head, ""); err != nil {
				return "", err
			}
			return name, nil
		}
	}
	return "", fmt.Errorf("too many release branches named %s-N today", base)
}

func title(c core.Candidate) string {
	if c.Version != "" {
		return fmt.Sprintf("%s (%s)", c.Label(), c.Version)
	}
	return c.Label()
}

// notes generates the candidate's notes from the first-parent history
// between its base and its head, credits each merge to the authors of the
// commits it brings in, lists the commits of the production line (prod)
// the candidate lacks, and says when the oldest compatible version was
// raised.
func (s *Service) notes(ctx context.Context, w *workspace, c core.Candidate, prod string) (string, error) {
	commits, err := gitx.LogFirstParent(ctx, w.mirror, c.Base, c.Head)
	if err != nil {
		return "", err
	}
	for i, cm := range commits {
		if len(cm.Parents) < 2 {
			continue
		}
		// A merge is credited to whoever wrote what it merges, not to
		// whoever pressed the button.
		inside, err := gitx.Log(ctx, w.mirror, cm.Parents[0], cm.Parents[1])
		if err != nil {
			return "", err
		}
		if authors := authorsOf(inside); authors != "" {
			commits[i].Author = authors
		}
	}
	rng := fmt.Sprintf("%d commit(s) up to %s", len(commits), core.ShortSHA(c.Head))
	if c.Base != "" {
		rng = fmt.Sprintf("%d commit(s), %s..%s", len(commits), core.ShortSHA(c.Base), core.ShortSHA(c.Head))
	}
	notes := Notes(title(c), rng+".", commits)
	if prod != "" {
		lacks, err := gitx.Missing(ctx, w.mirror, c.Head, prod)
		if err != nil {
			return "", err
		}
		if len(lacks) > 0 {
			notes += fmt.Sprintf("\n## Not in this release\n\n%d commit(s) of the production line %s are missing from %s; finish refuses to drop them unless told to (--drop SHA, or --true-up):\n\n", len(lacks), w.lines.Production, c.Label())
			notes += commitList(lacks)
		}
	}
	if c.Base != "" {
		if raised := compatRaised(ctx, w.mirror, c.Base, c.Head); raised != "" {
			notes += "\n## Compatibility\n\n- " + raised + "\n"
			s.emit(ctx, core.Event{App: c.App, Type: core.EventCompatRaised, Message: fmt.Sprintf("%s: %s", c.Label(), raised)})
		}
	}
	return notes, nil
}

// authorsOf lists the distinct authors of commits, oldest first.
func authorsOf(commits []core.Commit) string {
	var names []string
	seen := map[string]bool{}
	for i := len(commits) - 1; i >= 0; i-- {
		if a := commits[i].Author; a != "" && !seen[a] {
			seen[a] = true
			names = append(names, a)
		}
	}
	return strings.Join(names, ", ")
}

// commitList renders commits as Markdown list items: short SHA, subject, author.
func commitList(commits []core.Commit) string {
	var b strings.Builder
	for _, c := range commits {
		fmt.Fprintf(&b, "- %s %s (%s)\n", core.ShortSHA(c.SHA)[:8], c.Subject, c.Author)
	}
	return b.String()
}

// compatRaised describes a change of compat.oldest between two commits.
func compatRaised(ctx context.Context, repo, from, to string) string {
	a, errA := loadManifest(ctx, repo, from)
	b, errB := loadManifest(ctx, repo, to)
	if errA != nil || errB != nil || b.Compat == nil {
		return ""
	}
	old := ""
	if a.Compat != nil {
		old = a.Compat.Oldest
	}
	if old == b.Compat.Oldest {
		return ""
	}
	if old == "" {
		return "oldest compatible version set to " + b.Compat.Oldest
	}
	return fmt.Sprintf("oldest compatible version raised from %s to %s", old, b.Compat.Oldest)
}

// Get returns a candidate by "112" or "112.1", with links to the
// deployments of its commit.
func (s *Service) Get(ctx context.Context, app, id string) (core.Candidate, error) {
	if err := core.ValidateName("app", app); err != nil {
		return core.Candidate{}, err
	}
	n, p, err := core.ParseCandidateID(id)
	if err != nil {
		return core.Candidate{}, err
	}
	c, err := s.cfg.Store.GetCandidate(ctx, app, n, p)
	if err != nil {
		return c, err
	}
	ds, err := s.cfg.Store.ListDeployments(ctx, app, "", 0, 1000)
	if err != nil {
		return c, err
	}
	for _, d := range ds {
		if d.SHA == c.Head || (c.Merge != "" && d.SHA == c.Merge) {
			c.Deployments = append(c.Deployments, d.ID)
		}
	}
	return c, nil
}

// List returns an app's candidates, newest first.
func (s *Service) List(ctx context.Context, app string) ([]core.Candidate, error) {
	if err := core.ValidateName("app", app); err != nil {
		return nil, err
	}
	if _, err := s.cfg.Store.GetApp(ctx, app); err != nil {
		return nil, fmt.Errorf("app %q: %w", app, err)
	}
	return s.cfg.Store.ListCandidates(ctx, app, 200)
}

// MaxNotesBytes bounds edited notes.
const MaxNotesBytes = 256 << 10

// SetNotes replaces a candidate's notes (they are generated, then edited).
func (s *Service) SetNotes(ctx context.Context, app, id, notes string) (core.Candidate, error) {
	if len(notes) > MaxNotesBytes {
		return core.Candidate{}, fmt.Errorf("%w: notes are %d bytes, at most %d", core.ErrInvalid, len(notes), MaxNotesBytes)
	}
	defer s.lock(app)()
	c, err := s.Get(ctx, app, id)
	if err != nil {
		return c, err
	}
	c.Notes = notes
	return c, s.cfg.Store.UpdateCandidate(ctx, c)
}

// Change is what differs between two releases.
type Change struct {
	From       int           `json:"from"`
	To         int           `json:"to"`
	Commits    []core.Commit `json:"commits"`
	Authors    []string      `json:"authors"`
	Config     []string      `json:"config_changed"` // keys only; secret values are compared, never shown
	Migrations []string      `json:"migrations"`     // changed files that look like migrations
}

// Diff says what changed between releases a and b of an app: commits,
// authors, changed config keys and migrations.
func (s *Service) Diff(ctx context.Context, app string, a, b int) (Change, error) {
	if a <= 0 || b <= 0 {
		return Change{}, fmt.Errorf("%w: releases are positive numbers, got %d and %d", core.ErrInvalid, a, b)
	}
	ra, err := s.cfg.Store.GetRelease(ctx, app, a)
	if err != nil {
		return Change{}, err
	}
	rb, err := s.cfg.Store.GetRelease(ctx, app, b)
	if err != nil {
		return Change{}, err
	}
	// open refreshes the mirror that cut, check and finish write to.
	defer s.lock(app)()
	w, err := s.open(ctx, app)
	if err != nil {
		return Change{}, err
	}
	ch := Change{From: a, To: b}
	if ra.SHA != rb.SHA {
		if ch.Commits, err = gitx.Log(ctx, w.mirror, ra.SHA, rb.SHA); err != nil {
			return ch, err
		}
		files, err := gitx.ChangedFiles(ctx, w.mirror, ra.SHA, rb.SHA)
		if err != nil {
			return ch, err
		}
		for _, f := range files {
			if strings.Contains(strings.ToLower(f), "migrat") {
				ch.Migrations = append(ch.Migrations, f)
			}
		}
	}
	seen := map[string]bool{}
	for _, c := range ch.Commits {
		if !seen[c.Author] {
			seen[c.Author] = true
			ch.Authors = append(ch.Authors, c.Author)
		}
	}
	if ch.Config, err = s.configChanges(ctx, app, ra, rb); err != nil {
		return ch, err
	}
	return ch, nil
}

func (s *Service) configChanges(ctx context.Context, app string, a, b core.Release) ([]string, error) {
	load := func(r core.Release) (map[string]string, error) {
		out := map[string]string{}
		if r.ConfigVersion == 0 {
			return out, nil // made before any config (GetConfig's 0 would mean "latest")
		}
		cv, err := s.cfg.Store.GetConfig(ctx, app, r.Env, r.ConfigVersion)
		if err != nil && !errors.Is(err, core.ErrNotFound) {
			return nil, err
		}
		for k, v := range cv.Vars {
			out[k] = "var:" + v
		}
		sec, err := s.cfg.Store.GetConfigSecrets(ctx, app, r.Env, r.ConfigVersion)
		if err != nil {
			return nil, err
		}
		for k, v := range sec {
			out[k] = "secret:" + v
		}
		return out, nil
	}
	ca, err := load(a)
	if err != nil {
		return nil, err
	}
	cb, err := load(b)
	if err != nil {
		return nil, err
	}
	var keys []string
	for k, v := range cb {
		if ca[k] != v {
			keys = append(keys, k)
		}
	}
	for k := range ca {
		if _, ok := cb[k]; !ok {
			keys = append(keys, k+" (removed)")
		}
	}
	sort.Strings(keys)
	return keys, nil
}
