package deploy

import (
	"context"
	"sync"
)

// task is one unit of work on an environment: a deployment, a confirm, a
// revert or a scale-in. Tasks on the same environment run one at a time, in
// the order they were queued, which is what "one deploy per environment"
// means inside one server; the store lock extends it across servers.
type task struct {
	holder string // who holds the environment while this runs, e.g. "deployment 42"
	run    func(ctx context.Context)
}

// envQueue is the FIFO worker of one environment.
type envQueue struct {
	mu      sync.Mutex
	cond    *sync.Cond
	pending []task
	current string // holder of the running task, "" when idle
	closed  bool
}

func newEnvQueue(ctx context.Context, wg *sync.WaitGroup) *envQueue {
	q := &envQueue{}
	q.cond = sync.NewCond(&q.mu)
	wg.Add(1)
	go func() {
		defer wg.Done()
		q.loop(ctx)
	}()
	return q
}

func (q *envQueue) loop(ctx context.Context) {
	for {
		q.mu.Lock()
		for len(q.pending) == 0 && !q.closed {
			q.cond.Wait()
		}
		if q.closed {
			q.mu.Unlock()
			return
		}
		t := q.pending[0]
		q.pending = q.pending[1:]
		q.current = t.holder
		q.mu.Unlock()

		t.run(ctx)

		q.mu.Lock()
		q.current = ""
		q.mu.Unlock()
	}
}

// push queues t. When noWait is set and the environment is busy, nothing is
// queued and the current holder is returned instead.
func (q *envQueue) push(t task, noWait bool) (busyWith string, queued bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return "server shutting down", false
	}
	if noWait && (q.current != "" || len(q.pending) > 0) {
		if q.current != "" {
			return q.current, false
		}
		return q.pending[0].holder, false
	}
	q.pending = append(q.pending, t)
	q.cond.Signal()
	return "", true
}

func (q *envQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
}

// queue returns the worker for app/env, creating it on first use.
func (s *Service) queue(app, env string) *envQueue {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := envKey(app, env)
	q := s.queues[k]
	if q == nil {
		q = newEnvQueue(s.ctx, &s.wg)
		s.queues[k] = q
	}
	return q
}
