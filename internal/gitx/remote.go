package gitx

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// IsRemote reports whether repo is a URL git fetches (https://, ssh://,
// file://, git@host:path) rather than a path on this machine.
func IsRemote(repo string) bool {
	if strings.Contains(repo, "://") {
		return true
	}
	// scp-like: user@host:path (a local path has no ':' before its first '/').
	if i := strings.IndexByte(repo, ':'); i > 0 && strings.Contains(repo[:i], "@") && !strings.Contains(repo[:i], "/") {
		return true
	}
	return false
}

// Mirrors keeps a bare mirror of each remote repository under Dir, so the
// rest of cutover reads commits from a local path whatever the app's repo
// is. A mirror is fetched when it is older than MaxAge (and at its first
// use); concurrent callers share one fetch.
type Mirrors struct {
	Dir    string
	MaxAge time.Duration

	mu     sync.Mutex
	synced map[string]time.Time
	flight singleflight.Group
}

// DefaultMirrorAge is how long a mirror answers without fetching again.
const DefaultMirrorAge = 5 * time.Second

// Path returns where to read repo from: repo itself when it is local, its
// mirror (fetched if older than MaxAge) when it is remote.
func (m *Mirrors) Path(ctx context.Context, repo string) (string, error) {
	return m.path(ctx, repo, false)
}

// Fetched is Path with the mirror fetched now: resolving a branch or HEAD
// must see the latest commits.
func (m *Mirrors) Fetched(ctx context.Context, repo string) (string, error) {
	return m.path(ctx, repo, true)
}

func (m *Mirrors) path(ctx context.Context, repo string, force bool) (string, error) {
	if !IsRemote(repo) {
		return repo, nil
	}
	if err := ValidateRepo(repo); err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(repo))
	dir := filepath.Join(m.Dir, hex.EncodeToString(sum[:8])+".git")
	maxAge := m.MaxAge
	if maxAge <= 0 {
		maxAge = DefaultMirrorAge
	}
	m.mu.Lock()
	if m.synced == nil {
		m.synced = map[string]time.Time{}
	}
	fresh := !force && time.Since(m.synced[dir]) < maxAge
	m.mu.Unlock()
	if fresh {
		return dir, nil
	}
	_, err, _ := m.flight.Do(dir, func() (any, error) {
		if err := Mirror(context.WithoutCancel(ctx), repo, dir); err != nil {
			return nil, err
		}
		m.mu.Lock()
		m.synced[dir] = time.Now()
		m.mu.Unlock()
		return nil, nil
	})
	return dir, err
}
