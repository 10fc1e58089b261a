package testutil

import (
	"testing"
	"time"
)

// PollEvery is how often WaitFor asks its condition again.
const PollEvery = 5 * time.Millisecond

// WaitFor polls cond on a ticker until it holds, and fails the test with
// what if it does not within limit. It is for conditions the test cannot
// be told about (another process, a store written by a goroutine); a
// channel is better where the code under test offers one.
func WaitFor(t testing.TB, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	if cond() {
		return
	}
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(PollEvery)
	defer tick.Stop()
	for {
		select {
		case <-deadline.C:
			if cond() {
				return
			}
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		case <-tick.C:
			if cond() {
				return
			}
		}
	}
}
