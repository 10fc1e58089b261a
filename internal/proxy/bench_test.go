package proxy

import (
	"io"
	"net/http"
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
			time.Sleep(50 * time.Millisecond)
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

// BenchmarkProxyRequest measures one small GET through the proxy over a
// keep-alive connection (client, proxy and backend in one process).
func BenchmarkProxyRequest(b *testing.B) {
	be := newBackend(b, "blue", 0)
	p, addr := startProxy(b, "")
	if err := p.SetService(ctx, ServiceSpec{Name: "web", Targets: []string{be.addr}}); err != nil {
		b.Fatal(err)
	}
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.Get("http://" + addr + "/")
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
