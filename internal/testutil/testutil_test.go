package testutil

import (
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestListenAddr_OutsideEphemeralRangeAndFree(t *testing.T) {
	lo := ephemeralLowest()
	seen := map[string]bool{}
	for range 20 {
		addr := ListenAddr(t)
		if seen[addr] {
			t.Fatalf("%s handed out twice", addr)
		}
		seen[addr] = true
		_, port, _ := net.SplitHostPort(addr)
		if p, _ := strconv.Atoi(port); lo-lowestPort >= 1000 && (p < lowestPort || p >= lo) {
			t.Errorf("port %d is not in [%d, %d)", p, lowestPort, lo)
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("listen on %s: %v", addr, err)
		}
		l.Close()
	}
}

func TestWaitFor_ReturnsOnceTheConditionHolds(t *testing.T) {
	t.Parallel()
	n := 0
	WaitFor(t, "three polls", 10*time.Second, func() bool { n++; return n >= 3 })
	if n != 3 {
		t.Errorf("cond asked %d times, want 3", n)
	}
}

// fatalTB records a Fatalf and ends its goroutine, as testing.T does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestWaitFor_FailsWhenTheConditionNeverHolds(t *testing.T) {
	t.Parallel()
	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		WaitFor(f, "never", 20*time.Millisecond, func() bool { return false })
	}()
	<-done
	if !strings.Contains(f.msg, "waiting for never") {
		t.Errorf("Fatalf = %q, want a timeout naming the condition", f.msg)
	}
}
