package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/manifest"
	"github.com/cutover/cutover/internal/secret"
)

// maxCheckBody bounds what a health or smoke check reads from an instance.
const maxCheckBody = 64 << 10

// waitHealthy polls every instance's health path until all pass or the
// manifest's deadline passes. It polls fast at first (most apps are up in
// milliseconds) and backs off to the configured interval.
func (s *Service) waitHealthy(ctx context.Context, m *manifest.Manifest, insts []core.Instance) error {
	ctx, cancel := context.WithTimeout(ctx, m.Health.Deadline)
	defer cancel()
	pending := map[string]core.Instance{}
	for _, in := range insts {
		pending[in.Addr] = in
	}
	wait := healthPollFirst
	var last error
	for {
		for addr := range pending {
			if err := s.probe(ctx, m.Health.Path, m.Health.Timeout, addr); err != nil {
				last = fmt.Errorf("%s: %w", addr, err)
				continue
			}
			delete(pending, addr)
		}
		if len(pending) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			if last == nil {
				last = ctx.Err()
			}
			return fmt.Errorf("%d of %d instance(s) not healthy on %s within %s: last error: %v", len(pending), len(insts), m.Health.Path, m.Health.Deadline, last)
		case <-time.After(wait):
		}
		if wait *= 2; wait > m.Health.Interval {
			wait = m.Health.Interval
		}
	}
}

// checkOnce runs one health probe against every instance.
func (s *Service) checkOnce(ctx context.Context, m *manifest.Manifest, insts []core.Instance) error {
	for _, in := range insts {
		if err := s.probe(ctx, m.Health.Path, m.Health.Timeout, in.Addr); err != nil {
			return fmt.Errorf("%s: %w", in.Addr, err)
		}
	}
	return nil
}

func (s *Service) probe(ctx context.Context, path string, timeout time.Duration, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "cutover-health")
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxCheckBody))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("GET %s answered %d", path, resp.StatusCode)
	}
	return nil
}

// smoke runs every smoke check against every instance directly, before any
// traffic reaches them.
func (s *Service) smoke(ctx context.Context, m *manifest.Manifest, insts []core.Instance) error {
	for _, sc := range m.Smoke {
		for _, in := range insts {
			if err := s.smokeOne(ctx, sc, in.Addr); err != nil {
				name := sc.Name
				if name == "" {
					name = sc.Method + " " + sc.Path
				}
				return fmt.Errorf("%q on %s: %w", name, in.Addr, err)
			}
		}
	}
	return nil
}

func (s *Service) smokeOne(ctx context.Context, sc manifest.Smoke, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, sc.Timeout)
	defer cancel()
	method := sc.Method
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+sc.Path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "cutover-smoke")
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxCheckBody))
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	want := sc.Status
	if want == 0 {
		want = http.StatusOK
	}
	if resp.StatusCode != want {
		return fmt.Errorf("status %d, want %d", resp.StatusCode, want)
	}
	if sc.BodyContains != "" && !bytes.Contains(body, []byte(sc.BodyContains)) {
		return fmt.Errorf("body does not contain %q", sc.BodyContains)
	}
	return nil
}

// migrate runs the migration command once, in the artifact directory, with
// the release's environment, without a shell.
func (s *Service) migrate(ctx context.Context, r *run) error {
	mg := r.m.Migrate
	ctx, cancel := context.WithTimeout(ctx, mg.Timeout)
	defer cancel()
	spec, err := s.groupSpec(ctx, r, "")
	if err != nil {
		return err
	}
	argv := mg.Command
	bin := argv[0]
	if strings.Contains(bin, "/") && !filepath.IsAbs(bin) {
		bin = filepath.Join(r.art.Path, bin)
	}
	cmd := exec.CommandContext(ctx, bin, argv[1:]...)
	cmd.Dir = r.art.Path
	cmd.Env = baseEnviron()
	for k, v := range spec.Environ {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	for k, v := range spec.Secrets {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, "CUTOVER_APP="+r.d.App, "CUTOVER_ENV="+r.d.Env, fmt.Sprintf("CUTOVER_RELEASE=%d", r.d.Release))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out bytes.Buffer
	cmd.Stdout = &limitedBuffer{buf: &out, max: maxCheckBody}
	cmd.Stderr = cmd.Stdout
	err = cmd.Run()
	if tail := strings.TrimSpace(secret.Redact(out.String(), spec.Secrets)); tail != "" {
		s.emit(ctx, core.Event{App: r.d.App, Env: r.d.Env, DeploymentID: r.d.ID, Type: "deploy.output", Step: core.StepMigrate, Message: tail})
	}
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("%s timed out after %s", joinArgv(argv), mg.Timeout)
		}
		return fmt.Errorf("%s: %w", joinArgv(argv), err)
	}
	return nil
}

// baseEnviron is the minimal environment given to commands cutover runs on
// an app's behalf: never the server's own variables, which may hold secrets.
func baseEnviron() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "LANG", "TZ"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// limitedBuffer keeps the first max bytes written to it and discards the
// rest, so a chatty command cannot grow the server's memory.
type limitedBuffer struct {
	buf *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.buf.Len(); room > 0 {
		if len(p) > room {
			l.buf.Write(p[:room])
		} else {
			l.buf.Write(p)
		}
	}
	return len(p), nil
}
