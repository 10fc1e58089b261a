package proxy

import (
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/testutil"
)

// startAdmin serves the admin API of a fresh proxy with lim.
func startAdmin(t *testing.T, lim AdminLimits) string {
	t.Helper()
	p, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := ServeAdmin(ln, p.AdminHandler("s3cret-token-0123456789"), lim)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func TestServeAdmin_CutsOffSlowHeaders(t *testing.T) {
	t.Parallel()
	addr := startAdmin(t, AdminLimits{ReadHeaderTimeout: 200 * time.Millisecond})
	if err := testutil.SlowHeaders(t, addr, 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
}

func TestServeAdmin_ClosesIdleConnections(t *testing.T) {
	t.Parallel()
	addr := startAdmin(t, AdminLimits{IdleTimeout: 200 * time.Millisecond})
	if err := testutil.IdleClosed(t, addr, "/services"); err != nil {
		t.Fatal(err)
	}
}

func TestServeAdmin_BoundsConnections(t *testing.T) {
	t.Parallel()
	addr := startAdmin(t, AdminLimits{MaxConns: 1, ReadHeaderTimeout: 300 * time.Millisecond})
	// The first connection takes the only slot (the kernel hands out
	// connections in order) and says nothing until it is cut off.
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + addr + "/services")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// Served only after the first was closed: its end is already here.
	_ = first.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := first.Read(make([]byte, 512)); !errors.Is(err, io.EOF) {
		t.Fatalf("first connection: %v; a second connection was served while the first held the only slot", err)
	}
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("status %d, want 401 without a token", resp.StatusCode)
	}
}
