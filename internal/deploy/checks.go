package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/manifest"
	"github.com/cutover/cutover/internal/secret"
)

// Bounds on what the checks read.
const (
	maxCheckBody  = 64 << 10 // of a health or smoke answer
	maxTaskOutput = 64 << 10 // of a migration's output kept for the timeline
	exitLogBytes  = 2 << 10  // of an exited instance's log quoted in the error
)

// waitHealthy polls every instance's health path until all pass or the
// manifest's deadline passes. It polls fast at first (most apps are up in
// milliseconds) and backs off to the configured interval. An instance that
// exits fails the gate at once, with its exit status and the end of its log.
func (s *Service) waitHealthy(ctx context.Context, m *manifest.Manifest, insts []core.Instance) error {
	ctx, cancel := context.WithTimeout(ctx, m.Health.Deadline)
	defer cancel()
	pending := map[string]core.Instance{}
	for _, in := range insts {
		pending[in.ID] = in
	}
	wait := healthPollFirst
	var last error
	for {
		for id, in := range pending {
			if status, exited := s.cfg.Driver.Exited(ctx, in); exited {
				return fmt.Errorf("instance %s exited (%s) before it was healthy%s", in.ID, status, s.logTail(ctx, in))
			}
			if err := s.probeHealth(ctx, m, in); err != nil {
				last = fmt.Errorf("%s: %w", where(in), err)
				continue
			}
			delete(pending, id)
		}
		if len(pending) == 0 {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			if last == nil {
				last = ctx.Err()
			}
			return fmt.Errorf("%d of %d instance(s) not healthy on %s within %s: last error: %v", len(pending), len(insts), m.Health.Path, m.Health.Deadline, last)
		case <-t.C:
		}
		if wait *= 2; wait > m.Health.Interval {
			wait = m.Health.Interval
		}
	}
}

// logTail quotes the end of an instance's log for an error message.
func (s *Service) logTail(ctx context.Context, in core.Instance) string {
	var b bytes.Buffer
	if err := s.cfg.Driver.Logs(context.WithoutCancel(ctx), in, exitLogBytes, &b); err != nil || b.Len() == 0 {
		return ""
	}
	return "; last output:\n" + strings.TrimSpace(b.String())
}

// where names an instance for people: its address, or its ID.
func where(in core.Instance) string {
	if in.Addr != "" {
		return in.Addr
	}
	return in.ID
}

// checkOnce runs one health probe against every instance.
func (s *Service) checkOnce(ctx context.Context, m *manifest.Manifest, insts []core.Instance) error {
	for _, in := range insts {
		if err := s.probeHealth(ctx, m, in); err != nil {
			return fmt.Errorf("%s: %w", where(in), err)
		}
	}
	return nil
}

func (s *Service) probeHealth(ctx context.Context, m *manifest.Manifest, in core.Instance) error {
	res, err := s.cfg.Driver.Probe(ctx, in, core.ProbeRequest{Method: http.MethodGet, Path: m.Health.Path, Timeout: m.Health.Timeout, MaxBody: maxCheckBody})
	if err != nil {
		return err
	}
	if res.Status < 200 || res.Status >= 400 {
		return fmt.Errorf("GET %s answered %d", m.Health.Path, res.Status)
	}
	return nil
}

// smoke runs every smoke check against every instance directly, before any
// traffic reaches them.
func (s *Service) smoke(ctx context.Context, m *manifest.Manifest, insts []core.Instance) error {
	for _, sc := range m.Smoke {
		for _, in := range insts {
			if err := s.smokeOne(ctx, sc, in); err != nil {
				name := sc.Name
				if name == "" {
					name = sc.Method + " " + sc.Path
				}
				return fmt.Errorf("%q on %s: %w", name, where(in), err)
			}
		}
	}
	return nil
}

func (s *Service) smokeOne(ctx context.Context, sc manifest.Smoke, in core.Instance) error {
	method := sc.Method
	if method == "" {
		method = http.MethodGet
	}
	res, err := s.cfg.Driver.Probe(ctx, in, core.ProbeRequest{Method: method, Path: sc.Path, Timeout: sc.Timeout, MaxBody: maxCheckBody})
	if err != nil {
		return err
	}
	want := sc.Status
	if want == 0 {
		want = http.StatusOK
	}
	if res.Status != want {
		return fmt.Errorf("status %d, want %d", res.Status, want)
	}
	if sc.BodyContains != "" && !bytes.Contains(res.Body, []byte(sc.BodyContains)) {
		return fmt.Errorf("body does not contain %q", sc.BodyContains)
	}
	return nil
}

// migrate runs the migration once, as a task of the release in the
// runtime, with the release's environment. Its output (secrets redacted)
// goes to the timeline.
func (s *Service) migrate(ctx context.Context, r *run) error {
	mg := r.m.Migrate
	spec, err := s.groupSpec(ctx, r, "")
	if err != nil {
		return err
	}
	task := core.TaskSpec{
		App: r.d.App, Env: r.d.Env, Release: r.d.Release, Name: "migrate", Artifact: spec.Artifact,
		Command: mg.Command, Environ: spec.Environ, Secrets: spec.Secrets, Timeout: mg.Timeout, Runtime: spec.Runtime,
	}
	out := &limitedBuffer{max: maxTaskOutput, secrets: spec.Secrets}
	err = s.cfg.Driver.RunTask(ctx, task, out)
	if text := strings.TrimSpace(out.String()); text != "" {
		s.emit(ctx, event(r.d, core.EventDeployOutput, text))
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%s timed out after %s", joinArgv(mg.Command), mg.Timeout)
		}
		return fmt.Errorf("%s: %w", joinArgv(mg.Command), err)
	}
	return nil
}

// limitedBuffer keeps the last max bytes written to it (the end of a
// command's output says why it failed), so a chatty command cannot grow
// the server's memory. Secrets are redacted before anything is cut, so a
// cut never leaves part of a secret behind.
type limitedBuffer struct {
	buf       []byte
	max       int
	secrets   map[string]string
	truncated bool
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	if len(l.buf) > 2*l.max {
		l.cut()
	}
	return len(p), nil
}

// cut redacts what has been written and keeps its last max bytes. A secret
// still being written is at the very end, which is kept whole.
func (l *limitedBuffer) cut() {
	red := []byte(secret.Redact(string(l.buf), l.secrets))
	if len(red) > l.max {
		red = red[len(red)-l.max:]
		l.truncated = true
	}
	l.buf = red
}

func (l *limitedBuffer) String() string {
	l.cut()
	b := l.buf
	if l.truncated {
		return "(earlier output cut)\n" + string(b)
	}
	return string(b)
}
