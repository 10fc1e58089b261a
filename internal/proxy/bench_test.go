package proxy

import (
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"
)

// BenchmarkSwitch measures a health-gated switch to an already healthy set
// (one health probe per target, the atomic swap, persisting the routes),
// idle and with slow requests in flight on the old set.
func BenchmarkSwitch(b *testing.B) {
	for _, tc := range []struct {
		name     string
		inFlight int
	}{{"idle", 0}, {"with 4 slow requests in flight", 4}} {
		b.Run(tc.name, func(b *testing.B) {
			blue := newBackend(b, "blue", 2*time.Second)
			green := newBackend(b, "green", 2*time.Second)
			p, addr := startProxy(b, b.TempDir())
			if err := p.SetService(ctx, ServiceSpec{Name: "web", Targets: []string{blue.addr}}); err != nil {
				b.Fatal(err)
			}
			for range tc.inFlight {
				go func() {
					if resp, err := http.Get("http://" + addr + "/slow"); err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				}()
			}
			waitUntil(b, "the slow requests are held on blue", func() bool { return blue.slowIn.Load() == int64(tc.inFlight) })
			i := 0
			for b.Loop() {
				target := green.addr
				if i%2 == 1 {
					target = blue.addr
				}
				i++
				if err := p.SetService(ctx, ServiceSpec{Name: "web", Targets: []string{target}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkProxy measures one small GET over a keep-alive connection,
// direct to an in-process backend and through each proxy, all on loopback
// in one process. allocs/op counts the client, the proxy and the backend:
// subtract the "direct" figure to get what the proxy path adds.
func BenchmarkProxy(b *testing.B) {
	be := newBackend(b, "blue", 0)
	p, addr := startProxy(b, "")
	if err := p.SetService(ctx, ServiceSpec{Name: "web", Targets: []string{be.addr}}); err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct{ name, addr string }{
		{"direct", be.addr},
		{"cutover", addr},
		{"reverseproxy-untuned", serveBench(b, untunedReverseProxy(be.addr))},
		{"reverseproxy-tuned", serveBench(b, tunedReverseProxy(be.addr))},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
			defer c.CloseIdleConnections()
			url := "http://" + tc.addr + "/"
			b.ReportAllocs()
			for b.Loop() {
				resp, err := c.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
}

// untunedReverseProxy is httputil.ReverseProxy as NewSingleHostReverseProxy
// makes it: http.DefaultTransport (2 idle connections per host), no buffer pool.
func untunedReverseProxy(addr string) http.Handler {
	return httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: addr})
}

// tunedReverseProxy is httputil.ReverseProxy configured as kamal-proxy
// configures it: pooled 32 KiB copy buffers and a Transport that keeps
// enough idle connections per host for the load.
func tunedReverseProxy(addr string) http.Handler {
	u := &url.URL{Scheme: "http", Host: addr}
	return &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = r.In.Host
			r.SetXForwarded()
		},
		BufferPool: benchBufferPool{},
		Transport: &http.Transport{
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
}

// benchBufferPool is an httputil.BufferPool of 32 KiB buffers.
type benchBufferPool struct{}

var benchBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (benchBufferPool) Get() []byte { return *benchBuffers.Get().(*[]byte) }

func (benchBufferPool) Put(b []byte) { benchBuffers.Put(&b) }

// serveBench serves h on a loopback port for the benchmark's lifetime.
func serveBench(b *testing.B, h http.Handler) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}
