// Package testutil holds helpers shared by cutover's end-to-end tests.
package testutil

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
)

// Ports outside the kernel's ephemeral range are never handed out for a
// bind to port 0 (the process driver's instances) or for an outgoing
// connection, so an address picked here for a manifest's listen stays free
// until the proxy binds it, even with many tests running at once.
const (
	lowestPort     = 10000
	fallbackLowest = 32768 // Linux's default ephemeral range starts here
)

var ports struct {
	mu         sync.Mutex
	next       int
	low, limit int // [low, limit) is outside the ephemeral range
}

// ListenAddr returns a free loopback address for a listener the code under
// test opens later by itself (an environment's proxy listen in cutover.yml).
// Listeners a test opens itself should use 127.0.0.1:0 instead.
func ListenAddr(t testing.TB) string {
	t.Helper()
	ports.mu.Lock()
	defer ports.mu.Unlock()
	if ports.limit == 0 {
		ports.low, ports.limit = lowestPort, ephemeralLowest()
		if ports.limit-ports.low < 1000 {
			ports.limit = 0
		} else {
			// Test binaries of several packages run at once: start each at
			// its own place in the range.
			ports.next = ports.low + rand.IntN(ports.limit-ports.low)
		}
	}
	if ports.limit == 0 {
		return kernelAddr(t) // no room below the ephemeral range
	}
	for range ports.limit - ports.low {
		p := ports.next
		ports.next++
		if ports.next == ports.limit {
			ports.next = ports.low
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue // in use by something else
		}
		addr := l.Addr().String()
		l.Close()
		return addr
	}
	t.Fatal("no free port below the ephemeral range")
	return ""
}

// ephemeralLowest is the first port of the kernel's ephemeral range.
func ephemeralLowest() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return fallbackLowest
	}
	var lo, hi int
	if _, err := fmt.Sscan(string(b), &lo, &hi); err != nil {
		return fallbackLowest
	}
	return lo
}

func kernelAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Buffer collects what goroutines (a child process's output copier, a
// build, a command) write while a test reads it.
type Buffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
