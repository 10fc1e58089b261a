package release

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cutover/cutover/internal/command"
	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/gitx"
	"github.com/cutover/cutover/internal/manifest"
)

// CompatCheck is the name under which compatibility results are recorded.
const CompatCheck = "compat"

// maxCompatOutput bounds the output kept with a check.
const maxCompatOutput = 8 << 10

// compatEnvAllow lists what the old tests inherit beyond command.BaseEnv:
// toolchains, no secrets.
var compatEnvAllow = []string{"GOCACHE", "GOPATH", "GOMODCACHE", "GOPROXY", "GOFLAGS", "GOTOOLCHAIN"}

// ErrCompatRefused is wrapped by the refusals of the backwards-compatibility
// gate. They also match core.ErrInvalid, which the deploy gate adapter and
// the API take for "refused, not an internal failure".
var ErrCompatRefused = errors.New("refused by the backwards-compatibility gate")

// RefusedError is a refusal by a check: the request was valid, a check said no.
type RefusedError struct {
	Reason string
}

func (e *RefusedError) Error() string { return ErrCompatRefused.Error() + ": " + e.Reason }

// Unwrap makes a refusal match ErrCompatRefused and core.ErrInvalid.
func (e *RefusedError) Unwrap() []error { return []error{ErrCompatRefused, core.ErrInvalid} }

func refused(format string, args ...any) error {
	return &RefusedError{Reason: fmt.Sprintf(format, args...)}
}

// BeforePromotion is the backwards-compatibility gate: before sha goes from
// the environment `from` to the next one, the tests of the oldest compatible
// version (the tag TagPrefix+compat.oldest) run against the new release live
// in `from`. The result is recorded as a check; a passed check is reused.
func (s *Service) BeforePromotion(ctx context.Context, app core.App, sha string, m *manifest.Manifest, from manifest.Environment) error {
	if m.Compat == nil {
		return nil
	}
	if c, err := s.cfg.Store.GetCheck(ctx, app.Name, sha, from.Name, CompatCheck); err == nil && c.Passed {
		return nil
	}
	st, err := s.cfg.Store.GetEnvState(ctx, app.Name, from.Name)
	if err != nil {
		return err
	}
	live := st.LiveRelease()
	liveSHA := ""
	if live > 0 {
		if rel, err := s.cfg.Store.GetRelease(ctx, app.Name, live); err == nil {
			liveSHA = rel.SHA
		}
	}
	if liveSHA != sha {
		return refused("%s must be live in %s to run the tests of %s against it (deploy it there again)", core.ShortSHA(sha), from.Name, m.Compat.Oldest)
	}
	defer s.lock(app.Name)()
	w, err := s.open(ctx, app.Name)
	if err != nil {
		return err
	}
	tag := m.Release.TagPrefix + m.Compat.Oldest
	old, err := gitx.RefSHA(ctx, w.mirror, "refs/tags/"+tag)
	if err != nil {
		return err
	}
	if old == "" {
		return refused("tag %s (compat.oldest %s) does not exist in %s", tag, m.Compat.Oldest, app.Repo)
	}
	passed, detail := s.runCompat(ctx, w.mirror, old, tag, m.Compat, from)
	check := core.Check{App: app.Name, SHA: sha, Env: from.Name, Name: CompatCheck, Passed: passed, Detail: detail, CreatedAt: s.cfg.Now().UTC()}
	if err := s.cfg.Store.PutCheck(ctx, check); err != nil {
		return err
	}
	verdict := "passed"
	if !passed {
		verdict = "failed"
	}
	s.emit(ctx, core.Event{App: app.Name, Env: from.Name, Type: core.EventCheckRecorded,
		Message: fmt.Sprintf("backwards-compatibility tests of %s %s against %s in %s", tag, verdict, core.ShortSHA(sha), from.Name)})
	if !passed {
		return refused("the tests of %s failed against %s in %s:\n%s", tag, core.ShortSHA(sha), from.Name, detail)
	}
	return nil
}

// runCompat exports the old version and runs its compatibility tests,
// without a shell, against the environment's public address.
func (s *Service) runCompat(ctx context.Context, mirror, oldSHA, tag string, c *manifest.Compat, from manifest.Environment) (bool, string) {
	dir, err := os.MkdirTemp("", "cutover-compat-")
	if err != nil {
		return false, err.Error()
	}
	defer os.RemoveAll(dir)
	if err := gitx.Export(ctx, mirror, oldSHA, dir); err != nil {
		return false, "export " + tag + ": " + err.Error()
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	out := &command.Buffer{Max: maxCompatOutput}
	env := []string{"COMPAT_TARGET_URL=http://" + from.Listen, "COMPAT_TARGET_HOST=" + from.Host, "COMPAT_VERSION=" + tag}
	_, err = command.Run(ctx, command.Spec{Argv: c.Test, Dir: dir, Inherit: compatEnvAllow, Env: env, Stdout: out, Stderr: out, KillEscaped: true})
	text := out.String()
	if out.Truncated() {
		text = "...\n" + text
	}
	detail := fmt.Sprintf("$ %s (in %s)\n%s", strings.Join(c.Test, " "), tag, strings.TrimSpace(text))
	switch {
	case err == nil:
		return true, detail
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return false, detail + fmt.Sprintf("\ntimed out after %s", c.Timeout)
	default:
		return false, detail + "\n" + err.Error()
	}
}
