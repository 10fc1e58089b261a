// Package gitx runs git as a program, never through a shell. Every ref and
// path that comes from outside is validated and passed where git cannot
// read it as an option.
package gitx

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cutover/cutover/internal/command"
	"github.com/cutover/cutover/internal/core"
)

// Defaults.
const (
	DefaultTimeout = 2 * time.Minute
	maxRefLength   = 255
	maxExportBytes = 2 << 30  // an export larger than this is refused
	maxOutput      = 64 << 20 // a git output larger than this is refused
	maxStderr      = 64 << 10 // the end of git's messages is kept
	maxMessage     = 1 << 10  // the end of git's message shown in an error
)

// ErrBadRef is wrapped by every ref validation error.
var ErrBadRef = fmt.Errorf("%w: bad git ref", core.ErrInvalid)

// ValidateRef refuses refs that git could read as options or that carry
// control characters or shell syntax. It accepts branch and tag names,
// HEAD~N forms and SHAs.
func ValidateRef(ref string) error {
	switch {
	case ref == "":
		return fmt.Errorf("%w: empty", ErrBadRef)
	case len(ref) > maxRefLength:
		return fmt.Errorf("%w: %d characters, at most %d", ErrBadRef, len(ref), maxRefLength)
	case strings.HasPrefix(ref, "-"):
		return fmt.Errorf("%w %q: must not start with '-'", ErrBadRef, ref)
	case strings.Contains(ref, ".."):
		return fmt.Errorf("%w %q: must not contain '..'", ErrBadRef, ref)
	case strings.HasSuffix(ref, ".lock") || strings.HasSuffix(ref, "/") || strings.HasSuffix(ref, "."):
		return fmt.Errorf("%w %q: bad ending", ErrBadRef, ref)
	}
	for _, c := range ref {
		if c < 0x20 || c == 0x7f {
			return fmt.Errorf("%w %q: control characters are not allowed", ErrBadRef, ref)
		}
		if strings.ContainsRune(" \\:?*[$`;&|<>()'\"!{}", c) {
			return fmt.Errorf("%w %q: character %q is not allowed", ErrBadRef, ref, c)
		}
	}
	return nil
}

// ValidateRepo checks a repository location: a local path or a URL git
// understands, never something git could take as an option.
func ValidateRepo(repo string) error {
	if repo == "" || strings.HasPrefix(repo, "-") || len(repo) > 4096 {
		return fmt.Errorf("%w: repo %q", core.ErrInvalid, repo)
	}
	for _, c := range repo {
		if c < 0x20 || c == 0x7f {
			return fmt.Errorf("%w: repo %q: control characters are not allowed", core.ErrInvalid, repo)
		}
	}
	if strings.HasPrefix(repo, "ext::") || strings.Contains(repo, "::") {
		return fmt.Errorf("%w: repo %q: remote helpers are not allowed", core.ErrInvalid, repo)
	}
	return nil
}

// Run runs git in dir with args and returns its standard output.
func Run(ctx context.Context, dir string, args ...string) ([]byte, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	stdout := &command.Buffer{Max: maxOutput}
	out, err := command.Run(ctx, spec(dir, stdout, args...))
	if err != nil {
		return stdout.Bytes(), runError(args[0], out.Stderr, err)
	}
	if stdout.Truncated() {
		return nil, fmt.Errorf("git %s: output larger than %d bytes", args[0], maxOutput)
	}
	return stdout.Bytes(), nil
}

// Error is a git run that failed: the subcommand, its exit status and
// what git said.
type Error struct {
	Op     string // the git subcommand, e.g. rev-parse
	Code   int    // exit status; -1 when git did not run to the end
	Stderr string // git's message, trimmed and bounded
	Err    error  // from internal/command: exit, start or context error
}

func (e *Error) Error() string {
	if e.Stderr != "" {
		return "git " + e.Op + ": " + e.Stderr
	}
	return "git " + e.Op + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// runError describes a failed run of git op from its error and stderr.
func runError(op string, stderr []byte, err error) *Error {
	e := &Error{Op: op, Code: -1, Stderr: message(stderr), Err: err}
	var xe *command.ExitError
	if errors.As(err, &xe) {
		e.Code = xe.Code
	}
	return e
}

// message trims git's stderr and keeps its end, where the fatal line is,
// within maxMessage bytes.
func message(stderr []byte) string {
	msg := strings.TrimSpace(string(stderr))
	if len(msg) > maxMessage {
		msg = "..." + strings.ToValidUTF8(msg[len(msg)-maxMessage:], "")
	}
	return msg
}

// notExistMessages are what git says, with exit status 128, when a ref,
// revision, object or path at a commit does not exist (LC_ALL=C).
var notExistMessages = []string{
	"unknown revision",
	"bad revision",
	"not a valid object name",
	"not a valid commit name",
	"invalid object name",
	"needed a single revision",
	"does not exist in '",
	"exists on disk, but not in '",
}

// notExist reports whether err says that what was asked for does not exist,
// rather than that git could not answer (no repository, permission,
// corruption, timeout). rev-parse --verify --quiet says it by exiting 1
// without a message.
func notExist(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code {
	case 1:
		return e.Stderr == ""
	case 128:
		msg := strings.ToLower(e.Stderr)
		if strings.Contains(msg, "corrupt") || strings.Contains(msg, "not a git repository") {
			return false
		}
		for _, m := range notExistMessages {
			if strings.Contains(msg, m) {
				return true
			}
		}
	}
	return false
}

// withTimeout bounds ctx by DefaultTimeout unless it has a deadline.
func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, DefaultTimeout)
}

// gitEnv is what git gets beyond command.BaseEnv: never a prompt, no
// system configuration, messages in English so they can be recognised.
var gitEnv = []string{"GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1", "GIT_ASKPASS=/bin/false", "LC_ALL=C"}

// spec describes a git run in dir with args, its standard output to stdout
// (captured when nil).
func spec(dir string, stdout io.Writer, args ...string) command.Spec {
	argv := append([]string{
		"git",
		"-c", "protocol.ext.allow=never",
		"-c", "core.hooksPath=/dev/null",
		"-c", "core.fsmonitor=false",
		"-c", "safe.directory=*",
	}, args...)
	return command.Spec{Argv: argv, Dir: dir, Env: gitEnv, Stdout: stdout, MaxOutput: maxStderr}
}

// ResolveCommit returns the full SHA of ref in repo. An unknown commit is
// an error wrapping core.ErrNotFound.
func ResolveCommit(ctx context.Context, repo, ref string) (string, error) {
	if err := ValidateRepo(repo); err != nil {
		return "", err
	}
	if err := ValidateRef(ref); err != nil {
		return "", err
	}
	out, err := Run(ctx, repo, "rev-parse", "--verify", "--quiet", "--end-of-options", ref+"^{commit}")
	switch {
	case notExist(err):
		return "", fmt.Errorf("commit %q: %w", ref, core.ErrNotFound)
	case err != nil:
		return "", fmt.Errorf("resolve %q in %s: %w", ref, repo, err)
	}
	sha := strings.TrimSpace(string(out))
	if err := core.ValidateSHA("sha", sha); err != nil {
		return "", err
	}
	return sha, nil
}

// Log returns the commits reachable from to and not from from, newest
// first; from "" means all of to's history.
func Log(ctx context.Context, repo, from, to string) ([]core.Commit, error) {
	return logCommits(ctx, repo, from, to)
}

func logCommits(ctx context.Context, repo, from, to string, extra ...string) ([]core.Commit, error) {
	for _, r := range []string{from, to} {
		if r == "" {
			continue
		}
		if err := ValidateRef(r); err != nil {
			return nil, err
		}
	}
	rng := to
	if from != "" {
		rng = from + ".." + to
	}
	return logRange(ctx, repo, rng, extra...)
}

// logRange logs a range already validated by its caller.
func logRange(ctx context.Context, repo, rng string, extra ...string) ([]core.Commit, error) {
	const sep, end = "\x1f", "\x1e"
	args := append([]string{"log", "--format=%H" + sep + "%P" + sep + "%an" + sep + "%ae" + sep + "%aI" + sep + "%s" + sep + "%b" + end}, extra...)
	out, err := Run(ctx, repo, append(args, rng, "--")...)
	if err != nil {
		return nil, err
	}
	var commits []core.Commit
	for _, rec := range strings.Split(string(out), end) {
		rec = strings.TrimLeft(rec, "\n")
		if rec == "" {
			continue
		}
		f := strings.SplitN(rec, sep, 7)
		if len(f) != 7 {
			continue
		}
		t, _ := time.Parse(time.RFC3339, f[4])
		commits = append(commits, core.Commit{SHA: f[0], Parents: strings.Fields(f[1]), Author: f[2], Email: f[3], Time: t, Subject: f[5], Body: strings.TrimSpace(f[6])})
	}
	return commits, nil
}

// Export writes the tree of commit sha into dst (which must not exist or be
// empty): a clean checkout of exactly that commit, never a working tree.
func Export(ctx context.Context, repo, sha, dst string) error {
	if err := core.ValidateSHA("sha", sha); err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	var stderr []byte
	go func() {
		out, err := command.Run(ctx, spec(repo, pw, "archive", "--format=tar", sha))
		stderr = out.Stderr
		pw.Close()
		done <- err
	}()
	exErr := untar(io.LimitReader(pr, maxExportBytes), dst)
	if exErr == nil {
		_, _ = io.Copy(io.Discard, pr) // the archive's trailing padding
	}
	pr.CloseWithError(errExportStopped) // git stops writing once the export failed
	runErr := <-done
	if exErr != nil {
		return exErr
	}
	if runErr != nil {
		return fmt.Errorf("git archive %s: %s", core.ShortSHA(sha), strings.TrimSpace(string(stderr)))
	}
	return nil
}

var errExportStopped = errors.New("export stopped")

// untar extracts a git archive, refusing entries that escape dst.
func untar(r io.Reader, dst string) error {
	tr := tar.NewReader(r)
	root, err := filepath.Abs(dst)
	if err != nil {
		return err
	}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
		target := filepath.Join(root, filepath.FromSlash(h.Name))
		if target != root && !strings.HasPrefix(target, root+string(filepath.Separator)) {
			return fmt.Errorf("archive entry %q escapes the export directory", h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			mode := os.FileMode(0o644)
			if h.Mode&0o111 != 0 {
				mode = 0o755
			}
			f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
			if err != nil {
				return err
			}
			if _, err := io.Copy(f, tr); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if filepath.IsAbs(h.Linkname) || strings.Contains(h.Linkname, "..") {
				return fmt.Errorf("archive symlink %q -> %q points outside the export", h.Name, h.Linkname)
			}
			if err := os.Symlink(h.Linkname, target); err != nil {
				return err
			}
		case tar.TypeXGlobalHeader:
		default:
			// Submodule entries and other types carry no content here.
		}
	}
}

// Init creates a repository in dir with main as its first branch.
func Init(ctx context.Context, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	_, err := Run(ctx, dir, "init", "-q", "-b", "main")
	return err
}

// CommitAll commits every change in dir's working tree with msg and returns
// the new HEAD. The author is "cutover" unless the repository configures one.
func CommitAll(ctx context.Context, dir, msg string) (string, error) {
	if _, err := Run(ctx, dir, "add", "-A"); err != nil {
		return "", err
	}
	id := []string{"-c", "user.name=cutover", "-c", "user.email=cutover@localhost", "-c", "commit.gpgsign=false"}
	if out, err := Run(ctx, dir, "config", "user.email"); err == nil && len(bytes.TrimSpace(out)) > 0 {
		id = []string{"-c", "commit.gpgsign=false"}
	}
	if _, err := Run(ctx, dir, append(id, "commit", "-q", "--allow-empty", "-m", msg)...); err != nil {
		return "", err
	}
	return ResolveCommit(ctx, dir, "HEAD")
}

// LogFirstParent is Log along first parents only: the commits made on the
// line itself and the merges into it, not the commits inside merged branches.
func LogFirstParent(ctx context.Context, repo, from, to string) ([]core.Commit, error) {
	return logCommits(ctx, repo, from, to, "--first-parent")
}
