package outbox_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/outbox"
	"github.com/cutover/cutover/internal/store/sqlite"
	"github.com/cutover/cutover/internal/testutil"
)

// Every event reaches the consumer at least once and in order, across a
// failing handler and a restart of the consumer on a reopened store.
func TestAtLeastOnceAcrossRestarts(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "db")
	ctx := context.Background()
	st, err := sqlite.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if _, err := st.AppendEvent(ctx, core.Event{App: "hello", Type: core.EventDeployStep, Time: time.Now(), Message: string(rune('a' + i))}); err != nil {
			t.Fatal(err)
		}
	}

	var mu sync.Mutex
	var got []string
	failedOnce := false
	stopAfter := make(chan struct{})
	runCtx, cancel := context.WithCancel(ctx)
	c := &outbox.Consumer{Store: st, Name: "notify", Poll: 5 * time.Millisecond, Batch: 2, RetryFirst: time.Millisecond,
		Handle: func(ctx context.Context, e core.Event) error {
			mu.Lock()
			defer mu.Unlock()
			if e.Message == "c" && !failedOnce {
				failedOnce = true
				return errors.New("webhook answered 502")
			}
			got = append(got, e.Message)
			if e.Message == "d" {
				close(stopAfter) // "crash" after handling d, before its cursor is surely written
			}
			return nil
		}}
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	<-stopAfter
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("run = %v", err)
	}
	st.Close()

	// Restart on the reopened store: it resumes from the cursor.
	st, err = sqlite.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.AppendEvent(ctx, core.Event{App: "other", Type: core.EventDeployStep, Time: time.Now(), Message: "g"}); err != nil {
		t.Fatal(err)
	}
	all := make(chan struct{})
	runCtx, cancel = context.WithCancel(ctx)
	defer cancel()
	mu.Lock()
	firstRun := len(got)
	mu.Unlock()
	resumeAt, err := st.GetCursor(ctx, "notify")
	if err != nil {
		t.Fatal(err)
	}
	c.Store = st
	c.Handle = func(ctx context.Context, e core.Event) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, e.Message)
		if e.Message == "g" {
			close(all)
		}
		return nil
	}
	go func() { done <- c.Run(runCtx) }()
	select {
	case <-all:
	case <-time.After(10 * time.Second):
		t.Fatal("the restarted consumer did not reach the last event")
	}
	// The cursor is written after the last event is handled.
	testutil.WaitFor(t, "the cursor to reach 7", 10*time.Second, func() bool {
		pos, _ := st.GetCursor(ctx, "notify")
		return pos == 7
	})
	cancel()
	<-done

	mu.Lock()
	defer mu.Unlock()
	// Each run hands events over in order; the restarted run may hand over
	// again what the first handled after its last cursor write (at least
	// once), never skip one.
	want := map[string]bool{"a": true, "b": true, "c": true, "d": true, "e": true, "f": true, "g": true}
	for _, run := range [][]string{got[:firstRun], got[firstRun:]} {
		for i, m := range run {
			if i > 0 && m <= run[i-1] {
				t.Errorf("out of order within a run: %v (all: %v)", run, got)
			}
			delete(want, m)
		}
	}
	if len(want) != 0 {
		t.Errorf("events never delivered: %v (got %v)", want, got)
	}
	// Event N carries the N-th letter: the restart begins right after the cursor.
	if second := got[firstRun:]; len(second) == 0 || second[0] != string(rune('a'+resumeAt)) {
		t.Errorf("the restart did not resume right after the cursor (%d): %v", resumeAt, got)
	}
}
