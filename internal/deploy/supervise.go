package deploy

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cutover/cutover/internal/core"
)

// Supervision of the live colour: an instance that dies is replaced, with
// a backoff between attempts and a limit, and every exit and restart is an
// event. Until it is replaced the environment is reported degraded, and a
// deploy of the live release repairs it instead of being a no-op.
const (
	restartFirst  = time.Second     // wait before the second attempt; doubles
	restartMax    = 5 * time.Minute // longest wait between attempts
	restartLimit  = 10              // attempts before giving up (a deploy or rollback repairs)
	restartWindow = time.Hour       // attempts older than this are forgotten
)

// restarts is what the supervisor remembers of one environment's repairs.
type restarts struct {
	attempts int
	first    time.Time // of the current run of attempts
	next     time.Time // no attempt before this
	gaveUp   bool
}

// deadInstances returns the live colour's instances the driver reports
// exited, with their exit status.
func (s *Service) deadInstances(ctx context.Context, st core.EnvState) (dead []core.Instance, why []string) {
	sl := st.Slots[st.Live]
	if sl == nil || sl.State != core.SlotLive {
		return nil, nil
	}
	for _, in := range sl.Instances {
		if status, exited := s.cfg.Driver.Exited(ctx, in); exited {
			dead = append(dead, in)
			why = append(why, fmt.Sprintf("%s (%s)", in.ID, status))
		}
	}
	return dead, why
}

// degraded says what is wrong with an environment's live colour, or "".
func (s *Service) degraded(ctx context.Context, st core.EnvState) string {
	s.mu.Lock()
	unrouted := s.unrouted[envKey(st.App, st.Env)]
	s.mu.Unlock()
	if unrouted != "" {
		return "the proxy could not be routed to the live colour (" + unrouted + "); retrying"
	}
	dead, why := s.deadInstances(ctx, st)
	if len(dead) == 0 {
		return ""
	}
	msg := fmt.Sprintf("%d of %d live instance(s) exited: %s", len(dead), len(st.Slots[st.Live].Instances), strings.Join(why, ", "))
	s.mu.Lock()
	r := s.restarts[envKey(st.App, st.Env)]
	s.mu.Unlock()
	if r != nil && r.gaveUp {
		msg += fmt.Sprintf("; gave up restarting after %d attempts (deploy or roll back to repair)", r.attempts)
	}
	return msg
}

// supervise queues a repair of st's live colour when an instance died.
func (s *Service) supervise(ctx context.Context, st core.EnvState) {
	if dead, _ := s.deadInstances(ctx, st); len(dead) == 0 {
		s.mu.Lock()
		delete(s.restarts, envKey(st.App, st.Env)) // healthy again: forget
		s.mu.Unlock()
		return
	}
	s.mu.Lock()
	r := s.restarts[envKey(st.App, st.Env)]
	wait := r != nil && (r.gaveUp || s.now().Before(r.next))
	s.mu.Unlock()
	if wait {
		return
	}
	q, err := s.queue(st.App, st.Env)
	if err != nil {
		return
	}
	key := "restart of the live colour of " + envKey(st.App, st.Env)
	q.push(task{holder: key, key: key, run: func(ctx context.Context) { s.repairLive(ctx, st.App, st.Env) }}, false)
}

// repairLive replaces the live colour's dead instances, in the queue.
func (s *Service) repairLive(ctx context.Context, app, env string) {
	st, err := s.cfg.Store.GetEnvState(ctx, app, env)
	if err != nil {
		return
	}
	st.App, st.Env = app, env
	dead, why := s.deadInstances(ctx, st)
	if len(dead) == 0 {
		return // repaired or replaced meanwhile
	}
	k := envKey(app, env)
	now := s.now()
	s.mu.Lock()
	r := s.restarts[k]
	if r == nil || now.Sub(r.first) > restartWindow {
		r = &restarts{first: now}
		s.restarts[k] = r
	}
	if r.gaveUp || now.Before(r.next) {
		s.mu.Unlock()
		return
	}
	r.attempts++
	attempt := r.attempts
	s.mu.Unlock()

	colour := st.Live
	slot := st.Slots[colour]
	ev := core.Event{App: app, Env: env, Release: slot.Release, Actor: "cutover"}
	ev.Type, ev.Reason = core.EventInstanceExited, strings.Join(why, ", ")
	ev.Message = fmt.Sprintf("live %s instance(s) of #%d exited: %s; restarting (attempt %d of %d)", colour, slot.Release, ev.Reason, attempt, restartLimit)
	s.emit(ctx, ev)

	err = s.replaceInstances(ctx, &st, colour, dead)
	if err == nil {
		s.mu.Lock()
		delete(s.restarts, k)
		s.mu.Unlock()
		ev.Type, ev.Reason = core.EventInstanceRestarted, ""
		ev.Message = fmt.Sprintf("live %s of #%d restarted: %s", colour, slot.Release, addrs(st.Slots[colour].Instances))
		s.emit(ctx, ev)
		return
	}
	s.mu.Lock()
	backoff := min(restartFirst<<(attempt-1), restartMax)
	r.next = s.now().Add(backoff)
	r.gaveUp = attempt >= restartLimit
	gaveUp := r.gaveUp
	s.mu.Unlock()
	ev.Type, ev.Reason = core.EventInstanceRestartFailed, err.Error()
	ev.Message = fmt.Sprintf("restarting live %s of #%d failed: %v; next attempt in %s", colour, slot.Release, err, backoff)
	if gaveUp {
		ev.Message = fmt.Sprintf("restarting live %s of #%d failed %d times (%v); giving up: %s/%s is degraded until a deploy or rollback repairs it", colour, slot.Release, attempt, err, app, env)
	}
	s.emit(ctx, ev)
}

// replaceInstances starts one new instance per dead one, waits until they
// are healthy, routes the colour to the survivors and the new ones, and
// stops the dead (which forgets them).
func (s *Service) replaceInstances(ctx context.Context, st *core.EnvState, colour core.Colour, dead []core.Instance) error {
	slot := st.Slots[colour]
	rel, err := s.cfg.Store.GetRelease(ctx, st.App, slot.Release)
	if err != nil {
		return err
	}
	r := &run{d: core.Deployment{App: st.App, Env: st.Env, Release: slot.Release, SHA: rel.SHA}, rel: rel, state: *st}
	if r.art, r.m, err = s.manifestFor(ctx, st.App, rel); err != nil {
		return err
	}
	var ok bool
	if r.env, ok = r.m.Env(st.Env); !ok {
		return fmt.Errorf("env %q is no longer in the manifest of %s", st.Env, rel.Label())
	}
	spec, err := s.groupSpec(ctx, r, colour)
	if err != nil {
		return err
	}
	spec.Count = len(dead)
	fresh, err := s.cfg.Driver.Start(ctx, spec)
	if err != nil {
		return err
	}
	if err := s.waitHealthy(ctx, r.m, fresh); err != nil {
		_ = s.cfg.Driver.Stop(context.WithoutCancel(ctx), fresh, r.m.StopGrace)
		return err
	}
	isDead := map[string]bool{}
	for _, in := range dead {
		isDead[in.ID] = true
	}
	var keep []core.Instance
	for _, in := range slot.Instances {
		if !isDead[in.ID] {
			keep = append(keep, in)
		}
	}
	slot.Instances = append(keep, fresh...)
	if err := s.putState(ctx, st); err != nil {
		_ = s.cfg.Driver.Stop(context.WithoutCancel(ctx), fresh, r.m.StopGrace)
		return err
	}
	if err := s.route(ctx, routeSpec(st.App, r.env, r.m, colour, *slot)); err != nil {
		return fmt.Errorf("route the restarted instances: %w", err)
	}
	return s.cfg.Driver.Stop(ctx, dead, r.m.StopGrace)
}
