package deploy

import (
	"context"
	"sync"
)

// task is one unit of work on an environment: a deployment, a confirm, a
// revert or a scale-in. Tasks on the same environment run one at a time, in
// the order they were queued, which is what "one deploy per environment"
// means inside one server; the store lock and the server lease extend it
// across servers.
type task struct {
	holder string // who holds the environment while this runs, e.g. "deployment 42"
	// key, when set, makes the task unique: a push while a task with the
	// same key is queued or running is dropped (the tick loop asks for the
	// same scale-in every second while a deployment runs).
	key string
	run func(ctx context.Context)
}

// envQueue is the FIFO worker of one environment.
type envQueue struct {
	mu      sync.Mutex
	cond    *sync.Cond
	pending []task
	keys    map[string]bool // keys of queued and running tasks
	current string          // holder of the running task, "" when idle
	closed  bool
}

func newEnvQueue(ctx context.Context, wg *sync.WaitGroup) *envQueue {
	q := &envQueue{keys: map[string]bool{}}
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
		if t.key != "" {
			delete(q.keys, t.key)
		}
		q.mu.Unlock()
	}
}

// busy returns the holder of the running or first queued task, "" when idle.
func (q *envQueue) busy() string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.busyLocked()
}

func (q *envQueue) busyLocked() string {
	if q.current != "" {
		return q.current
	}
	if len(q.pending) > 0 {
		return q.pending[0].holder
	}
	return ""
}

// push queues t. When noWait is set and the environment is busy, nothing is
// queued and the current holder is returned instead. A keyed task already
// queued or running is not queued again (queued is false, busyWith "").
func (q *envQueue) push(t task, noWait bool) (busyWith string, queued bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return "server shutting down", false
	}
	if noWait {
		if b := q.busyLocked(); b != "" {
			return b, false
		}
	}
	if t.key != "" {
		if q.keys[t.key] {
			return "", false
		}
		q.keys[t.key] = true
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
