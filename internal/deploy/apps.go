package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/manifest"
)

// AddApp registers an app whose repository holds a cutover.yml. The
// repository must exist and have at least one commit.
func (s *Service) AddApp(ctx context.Context, name, repo string) (core.App, error) {
	if err := core.ValidateName("app", name); err != nil {
		return core.App{}, err
	}
	if repo == "" {
		return core.App{}, fmt.Errorf("%w: repo is required", core.ErrInvalid)
	}
	if _, err := s.activation(); err != nil {
		return core.App{}, err
	}
	head, err := s.cfg.Source.ResolveCommit(ctx, repo, "HEAD")
	if err != nil {
		return core.App{}, fmt.Errorf("%w: repo %q: %v", core.ErrInvalid, repo, err)
	}
	if _, err := s.manifestAt(ctx, core.App{Name: name, Repo: repo}, head); err != nil {
		return core.App{}, fmt.Errorf("%w: repo %q: HEAD needs a valid %s at the root (see docs/manifest.md): %s",
			core.ErrInvalid, repo, manifest.FileName, strings.TrimPrefix(err.Error(), core.ErrInvalid.Error()+": "))
	}
	app := core.App{Name: name, Repo: repo, CreatedAt: s.now()}
	if err := s.cfg.Store.CreateApp(ctx, app); err != nil {
		return core.App{}, fmt.Errorf("add app %s: %w", name, err)
	}
	s.emit(ctx, core.Event{App: name, Type: core.EventAppAdded, Message: fmt.Sprintf("app %s added from %s", name, repo)})
	return app, nil
}

// RemoveApp forgets an app: its releases, deployments, config and
// artifacts (files included). Its timeline stays. It is refused while any
// of its environments runs instances or has a deployment not yet ended:
// stop them first (cutover stop APP ENV).
func (s *Service) RemoveApp(ctx context.Context, name, by string) error {
	if _, err := s.activation(); err != nil {
		return err
	}
	if _, err := s.App(ctx, name); err != nil {
		return err
	}
	sts, err := s.cfg.Store.ListEnvStates(ctx, name)
	if err != nil {
		return err
	}
	for _, st := range sts {
		for _, sl := range st.Slots {
			if len(sl.Instances) > 0 {
				return fmt.Errorf("%w: %s/%s still runs %d instance(s) of #%d; stop it first: cutover stop %s %s", core.ErrConflict, name, st.Env, len(sl.Instances), sl.Release, name, st.Env)
			}
		}
	}
	unfinished, err := s.cfg.Store.UnfinishedDeployments(ctx)
	if err != nil {
		return err
	}
	for _, d := range unfinished {
		if d.App == name {
			return fmt.Errorf("%w: deployment %d of %s to %s has not ended (%s); cancel it or wait", core.ErrConflict, d.ID, name, d.Env, d.State)
		}
	}
	arts, err := s.cfg.Store.ListArtifacts(ctx, name, MaxHistoryLimit)
	if err != nil {
		return err
	}
	for _, a := range arts {
		if err := s.cfg.Builder.Remove(ctx, a); err != nil {
			return fmt.Errorf("remove app %s: %w", name, err)
		}
	}
	if err := s.cfg.Store.DeleteApp(ctx, name); err != nil {
		return fmt.Errorf("remove app %s: %w", name, err)
	}
	s.emit(ctx, core.Event{App: name, Type: core.EventAppRemoved, Actor: by,
		Message: fmt.Sprintf("app %s removed by %s (%d artifact(s) deleted; its timeline stays)", name, orSomeone(by), len(arts))})
	return nil
}

// Build builds ref of app once and records the artifact. Building a commit
// that already has an artifact returns it unchanged.
func (s *Service) Build(ctx context.Context, appName, ref string, logw io.Writer) (core.Artifact, error) {
	app, err := s.cfg.Store.GetApp(ctx, appName)
	if err != nil {
		return core.Artifact{}, fmt.Errorf("app %q: %w", appName, err)
	}
	sha, err := s.resolve(ctx, app, ref)
	if err != nil {
		return core.Artifact{}, err
	}
	a, _, err := s.build(ctx, app, sha, logw, core.Deployment{App: app.Name, SHA: sha})
	return a, err
}

func (s *Service) resolve(ctx context.Context, app core.App, ref string) (string, error) {
	if ref == "" {
		ref = "HEAD"
	}
	sha, err := s.cfg.Source.ResolveCommit(ctx, app.Repo, ref)
	if err != nil {
		return "", fmt.Errorf("commit %q of app %s: %w", ref, app.Name, err)
	}
	return sha, nil
}

// build returns the artifact for sha, building it if needed, and its
// manifest. Its events belong to deployment d when d has an ID. The build
// runs on a context that the caller's cancellation does not end: other
// callers may share it.
func (s *Service) build(ctx context.Context, app core.App, sha string, logw io.Writer, d core.Deployment) (core.Artifact, *manifest.Manifest, error) {
	if a, err := s.cfg.Store.GetArtifact(ctx, app.Name, sha); err == nil {
		m, err := s.cfg.Builder.Manifest(ctx, a)
		if err == nil {
			return a, m, nil
		}
		// The recorded artifact is unreadable: fall through and let the
		// builder restore it; the store refuses a different digest.
	}
	ev := func(typ core.EventType, msg string) core.Event {
		return core.Event{App: app.Name, Env: d.Env, DeploymentID: d.ID, Type: typ, SHA: sha, Actor: d.RequestedBy, Message: msg}
	}
	s.emit(ctx, ev(core.EventBuildStarted, fmt.Sprintf("building %s", core.ShortSHA(sha))))
	// The build's output is streamed as events (the full log stays with the builder).
	lines := &lineEmitter{emit: func(line string) {
		s.emit(ctx, ev(core.EventBuildOutput, line))
	}, max: maxBuildOutputEvents}
	if logw == nil {
		logw = lines
	} else {
		logw = io.MultiWriter(logw, lines)
	}
	s.building.RLock()
	defer s.building.RUnlock()
	a, m, err := s.cfg.Builder.Build(context.WithoutCancel(ctx), app, sha, logw)
	lines.flush()
	if err != nil {
		s.emit(ctx, ev(core.EventBuildFailed, fmt.Sprintf("build of %s failed: %v", core.ShortSHA(sha), err)))
		return core.Artifact{}, nil, fmt.Errorf("build %s: %w", core.ShortSHA(sha), err)
	}
	stored, err := s.cfg.Store.PutArtifact(ctx, a)
	if err != nil {
		return core.Artifact{}, nil, fmt.Errorf("record artifact %s: %w", core.ShortSHA(sha), err)
	}
	fixed := s.fixes(ctx, app, sha)
	s.emit(ctx, ev(core.EventBuildFinished, fmt.Sprintf("built %s as %s", core.ShortSHA(sha), stored.Digest)))
	if fixed != "" {
		e := ev(core.EventBuildFixed, fmt.Sprintf("build of %s fixed (%s failed before)", core.ShortSHA(sha), core.ShortSHA(fixed)))
		e.Reason = "after the failed build of " + core.ShortSHA(fixed)
		s.emit(ctx, e)
	}
	return stored, m, nil
}

// manifestFor loads the manifest stored with a release's artifact.
func (s *Service) manifestFor(ctx context.Context, app string, rel core.Release) (core.Artifact, *manifest.Manifest, error) {
	a, err := s.cfg.Store.GetArtifact(ctx, app, rel.SHA)
	if errors.Is(err, core.ErrNotFound) {
		return core.Artifact{}, nil, fmt.Errorf("%w: the artifact of %s was collected by the retention (it keeps the newest rollback targets of each environment); deploy commit %s again to rebuild it",
			core.ErrNotFound, rel.Label(), core.ShortSHA(rel.SHA))
	}
	if err != nil {
		return core.Artifact{}, nil, fmt.Errorf("artifact of %s: %w", rel.Label(), err)
	}
	m, err := s.cfg.Builder.Manifest(ctx, a)
	if err != nil {
		return core.Artifact{}, nil, fmt.Errorf("manifest of %s: %w", rel.Label(), err)
	}
	return a, m, nil
}

// maxBuildOutputEvents bounds how many build output lines become events.
const maxBuildOutputEvents = 500

// lineEmitter turns written bytes into one call per line, up to max lines.
type lineEmitter struct {
	emit    func(string)
	max     int
	n       int
	partial []byte
}

func (l *lineEmitter) Write(p []byte) (int, error) {
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.line(string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
	if len(l.partial) > 4096 { // a very long line is cut
		l.line(string(l.partial))
		l.partial = nil
	}
	return len(p), nil
}

func (l *lineEmitter) line(s string) {
	if l.n < l.max {
		l.emit(s)
	} else if l.n == l.max {
		l.emit("(further build output is in the build log)")
	}
	l.n++
}

func (l *lineEmitter) flush() {
	if len(l.partial) > 0 {
		l.line(string(l.partial))
		l.partial = nil
	}
}

// fixes returns the commit whose failed build a successful build of sha
// fixes, or "": the app's last build outcome was a failure of sha itself
// or of an ancestor of sha (the same line of history: a branch broken,
// then repaired). A failure on a diverged branch is not fixed by sha.
func (s *Service) fixes(ctx context.Context, app core.App, sha string) string {
	last, ok, err := s.cfg.Store.LastEvent(ctx, app.Name, core.EventBuildFinished, core.EventBuildFailed)
	if err != nil || !ok || last.Type != core.EventBuildFailed || last.SHA == "" {
		return ""
	}
	if last.SHA == sha {
		return sha
	}
	// Commits reachable from the failed one but not from sha: none means
	// the failed commit is in sha's history.
	ahead, err := s.cfg.Source.Log(ctx, app.Repo, sha, last.SHA)
	if err != nil || len(ahead) > 0 {
		return ""
	}
	return last.SHA
}
