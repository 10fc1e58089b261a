package deploy

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/testutil"
)

func TestEnvQueueRunsInOrderAndRefusesWhenBusy(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	q := newEnvQueue(ctx, &wg)
	defer func() { q.close(); wg.Wait() }()

	started, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var order []int
	done := make(chan struct{})
	for i := range 5 {
		holder := "deployment " + string(rune('1'+i))
		_, ok := q.push(task{holder: holder, run: func(context.Context) {
			if i == 0 {
				close(started)
				<-release
			}
			mu.Lock()
			order = append(order, i)
			if len(order) == 5 {
				close(done)
			}
			mu.Unlock()
		}}, false)
		if !ok {
			t.Fatalf("push %d refused", i)
		}
	}
	<-started
	busy, ok := q.push(task{holder: "deployment 9", run: func(context.Context) {}}, true)
	if ok || busy != "deployment 1" {
		t.Errorf("no-wait push while busy = %q, %v; want refused naming deployment 1", busy, ok)
	}
	close(release)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("tasks did not finish")
	}
	for i, v := range order {
		if v != i {
			t.Fatalf("order = %v, want FIFO", order)
		}
	}
	// The queue goes idle once the last task has returned; a refused
	// no-wait push changes nothing, so ask until it is accepted.
	testutil.WaitFor(t, "a no-wait push on the idle queue to be accepted", 5*time.Second, func() bool {
		_, ok := q.push(task{holder: "deployment 10", run: func(context.Context) {}}, true)
		return ok
	})
}

func TestErrorRate(t *testing.T) {
	s := &Service{}
	for _, tc := range []struct {
		name      string
		base, cur RouteStats
		min       int
		max       float64
		fail      bool
	}{
		{"too few requests to judge", RouteStats{}, RouteStats{Requests: 5, Errors5xx: 5}, 0, 0.01, false},
		{"healthy", RouteStats{Requests: 100}, RouteStats{Requests: 1100, Errors5xx: 5}, 0, 0.01, false},
		{"5xx above the limit", RouteStats{}, RouteStats{Requests: 100, Errors5xx: 2}, 0, 0.01, true},
		{"connection errors count", RouteStats{}, RouteStats{Requests: 100, ConnErrors: 3}, 0, 0.02, true},
		{"min requests raised", RouteStats{}, RouteStats{Requests: 100, Errors5xx: 50}, 200, 0.01, false},
		{"only the window counts", RouteStats{Requests: 1000, Errors5xx: 900}, RouteStats{Requests: 2000, Errors5xx: 900}, 0, 0.01, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &fakeStats{cur: tc.cur}
			s.cfg.Router = r
			err := s.errorRate(context.Background(), "svc", tc.base, verifyCfg(tc.min, tc.max), false)
			if (err != nil) != tc.fail {
				t.Errorf("err = %v, want failure %v", err, tc.fail)
			}
		})
	}
}

func TestValidateEnvKey(t *testing.T) {
	for key, ok := range map[string]bool{
		"DATABASE_URL": true, "_x": true, "a1": true,
		"": false, "1A": false, "A-B": false, "A B": false, "PORT": false, "CUTOVER_APP": false, "A=B": false,
	} {
		if err := validateEnvKey(key); (err == nil) != ok {
			t.Errorf("%q: err = %v, want ok=%v", key, err, ok)
		}
	}
}

// A keyed task (the tick's scale-in or revert) is queued once however
// often it is asked for while the environment is busy, and can be queued
// again once it has run. Without a key, every push queues.
func TestEnvQueueKeyedTaskQueuedOnce(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	q := newEnvQueue(ctx, &wg)
	defer func() { q.close(); wg.Wait() }()

	release := make(chan struct{})
	started := make(chan struct{})
	q.push(task{holder: "deployment 1", run: func(context.Context) { close(started); <-release }}, false)
	<-started
	var mu sync.Mutex
	runs := map[string]int{}
	done := make(chan struct{}, 16)
	for range 5 {
		for _, key := range []string{"scale-in of blue v1", ""} {
			q.push(task{holder: "tick", key: key, run: func(context.Context) {
				mu.Lock()
				runs[key]++
				mu.Unlock()
				done <- struct{}{}
			}}, false)
		}
	}
	close(release)
	for range 6 { // one keyed run, five unkeyed ones
		<-done
	}
	if _, queued := q.push(task{holder: "tick", key: "scale-in of blue v1", run: func(context.Context) { done <- struct{}{} }}, false); !queued {
		t.Error("a keyed task that has run could not be queued again")
	}
	<-done
	mu.Lock()
	defer mu.Unlock()
	if runs["scale-in of blue v1"] != 1 || runs[""] != 5 {
		t.Errorf("runs = %v, want the keyed task once and the unkeyed one 5 times", runs)
	}
}
