package server_test

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/server"
	"github.com/cutover/cutover/internal/testutil"
)

// openWithLimits starts a server with no app on lim.
func openWithLimits(t *testing.T, lim server.Limits) *server.Server {
	t.Helper()
	srv, err := server.Open(context.Background(), server.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func TestAPI_CutsOffSlowHeaders(t *testing.T) {
	t.Parallel()
	srv := openWithLimits(t, server.Limits{ReadHeaderTimeout: 200 * time.Millisecond})
	if err := testutil.SlowHeaders(t, strings.TrimPrefix(srv.URL(), "http://"), 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
}

func TestAPI_ClosesIdleConnections(t *testing.T) {
	t.Parallel()
	srv := openWithLimits(t, server.Limits{IdleTimeout: 200 * time.Millisecond})
	if err := testutil.IdleClosed(t, strings.TrimPrefix(srv.URL(), "http://"), "/api/v1/healthz"); err != nil {
		t.Fatal(err)
	}
}

// The event stream is one long answer: the write timeout bounds each of
// its writes, never its length.
func TestAPI_EventStreamOutlivesWriteTimeout(t *testing.T) {
	t.Parallel()
	const writeTimeout = 100 * time.Millisecond
	srv := openWithLimits(t, server.Limits{WriteTimeout: writeTimeout})
	req, _ := http.NewRequest("GET", srv.URL()+"/api/v1/events/stream?after=now", nil)
	req.Header.Set("Authorization", "Bearer "+srv.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// Let several write timeouts pass with the stream open and silent.
	<-time.After(5 * writeTimeout)
	srv.Deploy.Publish(context.Background(), core.Event{App: "late", Type: core.EventAppAdded, Reason: "after the write timeout"})
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "after the write timeout") {
			return
		}
	}
	t.Fatalf("stream ended before the event: %v", sc.Err())
}
