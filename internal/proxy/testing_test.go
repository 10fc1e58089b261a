package proxy

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// backend is a real HTTP server on a loopback port, like the shared bench
// backend: GET / answers "hello from VERSION", /up is healthy, /slow waits,
// /sse streams, /ws echoes over WebSocket.
type backend struct {
	addr    string
	version string
	srv     *http.Server
	mu      sync.Mutex
	isUp    bool

	slowIn      atomic.Int64  // /slow requests being held
	release     chan struct{} // closed by releaseSlow: held /slow requests answer
	releaseOnce sync.Once
}

// untilReleased as a backend's slow time holds each /slow request until the
// test calls releaseSlow, so a test decides when a slow request ends.
const untilReleased = time.Duration(math.MaxInt64)

func newBackend(t testing.TB, version string, slow time.Duration) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{addr: ln.Addr().String(), version: version, isUp: true, release: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("/up", func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		up := b.isUp
		b.mu.Unlock()
		if !up {
			w.WriteHeader(503)
			return
		}
		w.WriteHeader(200)
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		b.slowIn.Add(1)
		defer b.slowIn.Add(-1)
		select {
		case <-time.After(slow): // a slow upstream
		case <-b.release:
		}
		w.Header().Set("X-Version", version)
		fmt.Fprintf(w, "slow %s\n", version)
	})
	mux.HandleFunc("/sse", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("X-Version", version)
		fl := w.(http.Flusher)
		for i := 0; ; i++ {
			if _, err := fmt.Fprintf(w, "data: %s %d\n\n", version, i); err != nil {
				return
			}
			fl.Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(context.Background())
			if err != nil {
				return
			}
			if err := c.Write(context.Background(), typ, append([]byte(version+":"), msg...)); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen-XFF", r.Header.Get("X-Forwarded-For"))
		w.Header().Set("X-Seen-Proto", r.Header.Get("X-Forwarded-Proto"))
		w.Header().Set("X-Seen-Host", r.Header.Get("X-Forwarded-Host"))
		w.Header().Set("X-Seen-Request-Id", r.Header.Get("X-Request-Id"))
		w.Header().Set("X-Seen-Hop", r.Header.Get("X-Hop"))
		w.Header().Set("Connection", "X-Backend-Hop")
		w.Header().Set("X-Backend-Hop", "secret")
		body, _ := io.ReadAll(r.Body)
		w.Write(body)
	})
	mux.HandleFunc("/trailers", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body) // r.Trailer is filled at the end of the body
		w.Header().Set("Trailer", "X-Echo-Trailer")
		w.Write(body)
		w.Header().Set("X-Echo-Trailer", r.Trailer.Get("X-Client-Trailer"))
		w.Header().Set(http.TrailerPrefix+"X-Unannounced", "late")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Version", version)
		fmt.Fprintf(w, "hello from %s\n", version)
	})
	b.srv = &http.Server{Handler: mux}
	go b.srv.Serve(ln)
	t.Cleanup(func() {
		b.releaseSlow()
		b.srv.Close()
	})
	return b
}

// releaseSlow answers the /slow requests held now and every later one at once.
func (b *backend) releaseSlow() {
	b.releaseOnce.Do(func() { close(b.release) })
}

func (b *backend) setUp(up bool) {
	b.mu.Lock()
	b.isUp = up
	b.mu.Unlock()
}

// startProxy runs a proxy on a loopback port.
func startProxy(t testing.TB, stateDir string) (*Proxy, string) {
	t.Helper()
	p, err := New(Config{StateDir: stateDir})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Shutdown(ctx)
	})
	return p, ln.Addr().String()
}

func get(t testing.TB, c *http.Client, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), resp.Header
}
