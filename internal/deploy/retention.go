package deploy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/manifest"
)

// Artifact retention: every commit's export costs disk (42 MB for a real
// app), so artifacts nothing can use any more are collected. An artifact
// is kept while a colour runs it, a deployment not yet ended ships it, it
// is among the KeepReleases newest rollback targets of an environment, or
// among the KeepReleases newest artifacts of the app (built, perhaps not
// yet deployed). A rollback further back than that (--to N) is refused
// with the reason; deploying the commit again builds it again.
const (
	DefaultKeepReleases = 10
	collectEvery        = time.Hour
	collectRetry        = time.Minute // after a pass postponed by a build
)

// ErrBuildRunning says the retention was postponed: a build is running.
var ErrBuildRunning = errors.New("a build is running: the retention waits for it")

// CollectArtifacts removes the artifacts no rollback can target any more
// and returns them. The tick runs it every hour.
//
// It runs while no build does: an image being built is not an artifact
// yet and would be collected as a leftover. With a build running it
// returns ErrBuildRunning and collects nothing.
func (s *Service) CollectArtifacts(ctx context.Context) ([]core.Artifact, error) {
	if _, err := s.activation(); err != nil {
		return nil, err
	}
	if !s.building.TryLock() {
		return nil, ErrBuildRunning
	}
	defer s.building.Unlock()
	apps, err := s.cfg.Store.ListApps(ctx)
	if err != nil {
		return nil, err
	}
	keep := s.cfg.KeepReleases
	if keep <= 0 {
		keep = DefaultKeepReleases
	}
	unfinished, err := s.cfg.Store.UnfinishedDeployments(ctx)
	if err != nil {
		return nil, err
	}
	var removed []core.Artifact
	for _, app := range apps {
		keep := s.keepFor(ctx, app.Name, keep)
		protected, err := s.protectedCommits(ctx, app.Name, keep, unfinished)
		if err != nil {
			return removed, fmt.Errorf("retention of %s: %w", app.Name, err)
		}
		arts, err := s.cfg.Store.ListArtifacts(ctx, app.Name, MaxHistoryLimit)
		if err != nil {
			return removed, err
		}
		var gone []string
		kept := map[string]bool{}
		for i, a := range arts { // newest first
			if i < keep || protected[a.SHA] {
				kept[a.Ref] = true
				continue
			}
			if err := s.cfg.Builder.Remove(ctx, a); err != nil {
				s.log.Error("collect artifact", "app", app.Name, "sha", a.SHA, "err", err)
				kept[a.Ref] = true
				continue
			}
			if err := s.cfg.Store.DeleteArtifact(ctx, app.Name, a.SHA); err != nil {
				return removed, err
			}
			removed = append(removed, a)
			gone = append(gone, core.ShortSHA(a.SHA))
		}
		if p, ok := s.cfg.Driver.(Pruner); ok && len(arts) < MaxHistoryLimit {
			// Stopped containers and images of collected artifacts; with a
			// full page of artifacts some kept ones were not listed, so
			// nothing is pruned by artifact until fewer remain.
			if n, err := p.Prune(ctx, app.Name, func(ref string) bool { return kept[ref] }); err != nil {
				s.log.Error("prune runtime leftovers", "app", app.Name, "err", err)
			} else if n > 0 {
				s.log.Info("pruned runtime leftovers", "app", app.Name, "removed", n)
			}
		}
		if len(gone) > 0 {
			s.emit(ctx, core.Event{App: app.Name, Type: core.EventArtifactsCollected, Actor: "cutover", Reason: strings.Join(gone, ", "),
				Message: fmt.Sprintf("collected %d artifact(s) no rollback can target any more (keeping %d per environment): %s", len(gone), keep, strings.Join(gone, ", "))})
		}
	}
	return removed, nil
}

// keepFor is how many rollback targets per environment keep their
// artifacts for app: its manifest's docker.keep for runtime docker (images
// and stopped containers cost disk on every host), else the server's
// setting. The newest artifact's manifest decides.
func (s *Service) keepFor(ctx context.Context, app string, def int) int {
	arts, err := s.cfg.Store.ListArtifacts(ctx, app, 1)
	if err != nil || len(arts) == 0 {
		return def
	}
	m, err := s.cfg.Builder.Manifest(ctx, arts[0])
	if err != nil || m.Runtime != manifest.RuntimeDocker {
		return def
	}
	return m.Docker.Keep
}

// protectedCommits lists the commits of app whose artifacts must stay.
func (s *Service) protectedCommits(ctx context.Context, app string, keep int, unfinished []core.Deployment) (map[string]bool, error) {
	protected := map[string]bool{}
	releaseSHA := func(n int) error {
		if n <= 0 {
			return nil
		}
		rel, err := s.cfg.Store.GetRelease(ctx, app, n)
		if err != nil {
			return err
		}
		protected[rel.SHA] = true
		return nil
	}
	for _, d := range unfinished {
		if d.App == app {
			protected[d.SHA] = true
		}
	}
	sts, err := s.cfg.Store.ListEnvStates(ctx, app)
	if err != nil {
		return nil, err
	}
	for _, st := range sts {
		for _, sl := range st.Slots {
			if err := releaseSHA(sl.Release); err != nil {
				return nil, err
			}
		}
		earlier, err := s.earlierReleases(ctx, app, st.Env)
		if err != nil {
			return nil, err
		}
		for i, n := range earlier {
			if i >= keep {
				break
			}
			if err := releaseSHA(n); err != nil {
				return nil, err
			}
		}
	}
	return protected, nil
}

// maybeCollect runs the retention once per collectEvery.
func (s *Service) maybeCollect(ctx context.Context) {
	s.mu.Lock()
	due := s.now().Sub(s.lastCollect) >= collectEvery
	if due {
		s.lastCollect = s.now()
	}
	s.mu.Unlock()
	if !due {
		return
	}
	_, err := s.CollectArtifacts(ctx)
	if errors.Is(err, ErrBuildRunning) {
		s.mu.Lock()
		s.lastCollect = s.now().Add(collectRetry - collectEvery) // again in a minute
		s.mu.Unlock()
		return
	}
	if err != nil && ctx.Err() == nil {
		s.log.Error("artifact retention", "err", err)
	}
}
