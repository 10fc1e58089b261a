package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutover/cutover/internal/proxy"
)

// An empty token file (left by a crash while it was written) must stop
// the proxy from starting, never open the TCP admin API to everyone.
func TestAdminListener_RefusesEmptyTokenFile(t *testing.T) {
	t.Setenv("CUTOVER_PROXY_TOKEN", "")
	state := t.TempDir()
	if err := os.WriteFile(filepath.Join(state, proxyTokenFile), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ln, token, err := adminListener("127.0.0.1:0", state)
	if err == nil {
		ln.Close()
		t.Fatalf("started with token %q from an empty token file", token)
	}
	if !errors.Is(err, proxy.ErrWeakToken) || !strings.Contains(err.Error(), "delete the file") {
		t.Errorf("error %q does not say how to fix it", err)
	}
}

func TestAdminListener_RefusesShortTokenVariable(t *testing.T) {
	t.Setenv("CUTOVER_PROXY_TOKEN", "short")
	ln, _, err := adminListener("127.0.0.1:0", t.TempDir())
	if err == nil {
		ln.Close()
		t.Fatal("started with a 5-character token")
	}
	if !errors.Is(err, proxy.ErrWeakToken) {
		t.Errorf("error %v is not ErrWeakToken", err)
	}
}

func TestAdminListener_CreatesToken(t *testing.T) {
	t.Setenv("CUTOVER_PROXY_TOKEN", "")
	state := t.TempDir()
	ln, token, err := adminListener("127.0.0.1:0", state)
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	b, err := os.ReadFile(filepath.Join(state, proxyTokenFile))
	if err != nil || strings.TrimSpace(string(b)) != token || len(token) < proxy.MinAdminTokenLen {
		t.Fatalf("token file %q (%v), token %q", b, err, token)
	}
}
