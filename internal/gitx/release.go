package gitx

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cutover/cutover/internal/command"
	"github.com/cutover/cutover/internal/core"
)

// Mirror keeps a bare clone of origin at dir, fetching every branch and tag.
// Release operations write refs there and push them back explicitly.
func Mirror(ctx context.Context, origin, dir string) error {
	if err := ValidateRepo(origin); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, "HEAD")); err != nil {
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return err
		}
		if _, err := Run(ctx, filepath.Dir(dir), "clone", "-q", "--bare", "--", origin, dir); err != nil {
			return err
		}
	}
	_, err := Run(ctx, dir, "fetch", "-q", "--prune", "--force", "--", origin, "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
	return err
}

// RefSHA returns the commit a ref points to, or "" when the ref does not exist.
func RefSHA(ctx context.Context, repo, ref string) (string, error) {
	if err := ValidateRef(ref); err != nil {
		return "", err
	}
	out, err := Run(ctx, repo, "rev-parse", "--verify", "--quiet", "--end-of-options", ref+"^{commit}")
	switch {
	case notExist(err):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("read ref %s in %s: %w", ref, repo, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// IsAncestor reports whether commit a is an ancestor of (or equal to) b.
func IsAncestor(ctx context.Context, repo, a, b string) (bool, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	out, err := command.Run(ctx, spec(repo, nil, "merge-base", "--is-ancestor", a, b))
	if err == nil {
		return true, nil
	}
	var xe *command.ExitError
	if errors.As(err, &xe) && xe.Code == 1 {
		return false, nil
	}
	if msg := strings.TrimSpace(string(out.Stderr)); msg != "" {
		return false, fmt.Errorf("git merge-base --is-ancestor: %s", msg)
	}
	return false, fmt.Errorf("git merge-base --is-ancestor: %w", err)
}

// MergeTree merges theirs into ours without touching any working tree and
// returns the resulting tree, or the files in conflict. Nothing is written
// to any ref.
func MergeTree(ctx context.Context, repo, ours, theirs string) (tree string, conflicts []string, err error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	stdout := &command.Buffer{Max: maxOutput}
	out, runErr := command.Run(ctx, spec(repo, stdout, "merge-tree", "--write-tree", "--name-only", "--no-messages", ours, theirs))
	if stdout.Truncated() {
		return "", nil, fmt.Errorf("git merge-tree: output larger than %d bytes", maxOutput)
	}
	lines := strings.Split(strings.TrimRight(stdout.String(), "\n"), "\n")
	if runErr != nil {
		var xe *command.ExitError
		if !errors.As(runErr, &xe) || xe.Code != 1 {
			return "", nil, fmt.Errorf("git merge-tree: %s", strings.TrimSpace(string(out.Stderr)))
		}
		// Exit 1: conflicts. The first line is the tree, then the conflicted files.
		seen := map[string]bool{}
		for _, l := range lines[1:] {
			if l != "" && !seen[l] {
				seen[l] = true
				conflicts = append(conflicts, l)
			}
		}
		return "", conflicts, nil
	}
	return strings.TrimSpace(lines[0]), nil, nil
}

// CommitTree creates a commit of tree with parents and message, without
// touching any ref, and returns it.
func CommitTree(ctx context.Context, repo, tree, message string, parents ...string) (string, error) {
	args := []string{"-c", "user.name=cutover", "-c", "user.email=cutover@localhost", "commit-tree", tree}
	for _, p := range parents {
		args = append(args, "-p", p)
	}
	args = append(args, "-m", message)
	out, err := Run(ctx, repo, args...)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// TreeOf returns the tree of a commit.
func TreeOf(ctx context.Context, repo, commit string) (string, error) {
	out, err := Run(ctx, repo, "rev-parse", "--verify", "--end-of-options", commit+"^{tree}")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// UpdateBranch moves branch to commit only if it still points at old ("" =
// the branch must not exist): a compare-and-swap, so a concurrent change is
// never overwritten.
func UpdateBranch(ctx context.Context, repo, branch, commit, old string) error {
	if err := ValidateRef(branch); err != nil {
		return err
	}
	if old == "" {
		old = strings.Repeat("0", len(commit))
	}
	_, err := Run(ctx, repo, "update-ref", "-m", "cutover release", "refs/heads/"+branch, commit, old)
	return err
}

// CreateTag creates an annotated tag (signed with key when key is set) on
// commit. An existing tag on the same commit is left as it is; on another
// commit it is an error wrapping core.ErrConflict.
func CreateTag(ctx context.Context, repo, tag, commit, message, key string) error {
	if err := ValidateRef(tag); err != nil {
		return err
	}
	if cur, _ := RefSHA(ctx, repo, "refs/tags/"+tag); cur != "" {
		if cur == commit {
			return nil
		}
		return fmt.Errorf("tag %s: %w: it already points at %s", tag, core.ErrConflict, core.ShortSHA(cur))
	}
	args := []string{"-c", "user.name=cutover", "-c", "user.email=cutover@localhost", "tag", "-a", "--cleanup=verbatim", "-m", message}
	if key != "" {
		args = append(args, "-s", "-u", key)
	}
	args = append(args, "--", tag, commit)
	_, err := Run(ctx, repo, args...)
	return err
}

// Push pushes refs (full names) to origin. Already up-to-date refs are fine.
func Push(ctx context.Context, repo, origin string, refs ...string) error {
	if err := ValidateRepo(origin); err != nil {
		return err
	}
	args := append([]string{"push", "-q", "--", origin}, refs...)
	_, err := Run(ctx, repo, args...)
	return err
}

// ShowFile returns the content of path at commit, or an error wrapping
// core.ErrNotFound.
func ShowFile(ctx context.Context, repo, commit, path string) ([]byte, error) {
	if strings.HasPrefix(path, "-") || strings.Contains(path, "..") || strings.ContainsAny(path, "\x00\n:") {
		return nil, fmt.Errorf("%w: path %q", core.ErrInvalid, path)
	}
	out, err := Run(ctx, repo, "show", commit+":"+path)
	switch {
	case notExist(err):
		return nil, fmt.Errorf("%s at %s: %w", path, core.ShortSHA(commit), core.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("read %s at %s: %w", path, core.ShortSHA(commit), err)
	}
	return out, nil
}

// ChangedFiles lists the files that differ between two commits.
func ChangedFiles(ctx context.Context, repo, from, to string) ([]string, error) {
	out, err := Run(ctx, repo, "diff", "--name-only", from, to, "--")
	if err != nil {
		return nil, err
	}
	var files []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			files = append(files, l)
		}
	}
	return files, nil
}

// Missing returns the commits of line that head lacks: reachable from line
// and not from head, and with no commit of the same patch in head (what
// `git cherry head line` marks "+"), so a fix cherry-picked into head counts
// as present. Merge commits carry no patch of their own and are skipped.
// Newest first.
func Missing(ctx context.Context, repo, head, line string) ([]core.Commit, error) {
	for _, r := range []string{head, line} {
		if err := ValidateRef(r); err != nil {
			return nil, err
		}
	}
	return logRange(ctx, repo, head+"..."+line, "--cherry-pick", "--right-only", "--no-merges")
}

// Tag is a tag and the commit it names.
type Tag struct {
	Name    string // without refs/tags/
	Commit  string // the commit it names (peeled)
	Subject string // the first line of an annotated tag's message
}

// Tags lists the repository's tags that name commits.
func Tags(ctx context.Context, repo string) ([]Tag, error) {
	out, err := Run(ctx, repo, "for-each-ref", "--format=%(refname:strip=2)%1f%(objecttype)%1f%(objectname)%1f%(*objecttype)%1f%(*objectname)%1f%(contents:subject)", "refs/tags/")
	if err != nil {
		return nil, err
	}
	var tags []Tag
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, "\x1f")
		if len(f) != 6 {
			continue
		}
		switch {
		case f[1] == "commit":
			tags = append(tags, Tag{Name: f[0], Commit: f[2]})
		case f[1] == "tag" && f[3] == "commit":
			tags = append(tags, Tag{Name: f[0], Commit: f[4], Subject: f[5]})
		}
	}
	return tags, nil
}

// NearestTag returns the tag reachable from commit that is fewest commits
// away from it among those matching one of the glob patterns, or "" when
// there is none.
func NearestTag(ctx context.Context, repo, commit string, patterns ...string) (string, error) {
	if err := ValidateRef(commit); err != nil {
		return "", err
	}
	args := []string{"describe", "--tags", "--abbrev=0"}
	for _, p := range patterns {
		args = append(args, "--match", p)
	}
	out, err := Run(ctx, repo, append(args, "--end-of-options", commit)...)
	if err != nil {
		var ge *Error
		if errors.As(err, &ge) && ge.Code == 128 {
			return "", nil // no names found
		}
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// RefUpdate is one ref of an atomic push: Ref (full name) is set on the
// remote to the mirror's value only if the remote still has Old there ("" =
// the ref must not exist yet).
type RefUpdate struct {
	Ref string
	Old string
}

// PushAtomic pushes refs to origin all or nothing (git push --atomic), each
// a compare-and-swap against its Old value (--force-with-lease), so a ref
// that moved on the remote since it was read is never overwritten.
func PushAtomic(ctx context.Context, repo, origin string, updates ...RefUpdate) error {
	if err := ValidateRepo(origin); err != nil {
		return err
	}
	args := []string{"push", "-q", "--atomic"}
	var specs []string
	for _, u := range updates {
		if err := ValidateRef(u.Ref); err != nil {
			return err
		}
		args = append(args, "--force-with-lease="+u.Ref+":"+u.Old)
		specs = append(specs, u.Ref+":"+u.Ref) // no "+": it would override the lease
	}
	args = append(append(args, "--", origin), specs...)
	_, err := Run(ctx, repo, args...)
	return err
}

// ResetRef points ref (a full name) at commit, or deletes it when commit is
// "": used to put the mirror back after a push that failed.
func ResetRef(ctx context.Context, repo, ref, commit string) error {
	if err := ValidateRef(ref); err != nil {
		return err
	}
	if commit == "" {
		_, err := Run(ctx, repo, "update-ref", "-d", ref)
		return err
	}
	_, err := Run(ctx, repo, "update-ref", ref, commit)
	return err
}
