// Command proxy measures cutover's proxy the way the project judges it, in
// one run on this machine:
//
//   - throughput with `wrk -t2 -c64` direct to the shared bench backend,
//     through `cutover proxy run` (its own process, as deployed), and, in
//     this process, through cutover's proxy, an untuned
//     httputil.ReverseProxy and one tuned as kamal-proxy tunes it (pooled
//     32 KiB buffers, MaxIdleConnsPerHost 256): each as a share of direct,
//     and for the in-process ones the heap allocations per request
//     (runtime.MemStats deltas over the wrk run; this process serves only
//     the proxy under test while wrk runs);
//   - the time `cutover proxy set` takes to switch to an already healthy set,
//     idle and with slow requests in flight (the admin API's own timing).
//
// Every listener is on 127.0.0.1, and each wrk run lasts -d.
//
// It needs wrk (Debian package) and Go. The backend is ../shared/bench/backend
// when it exists beside the repository, else bench/proxy/backend.
//
// Usage: go run ./bench/proxy [-d 10s] [-rounds 1] [-switches 200]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/cutover/cutover/internal/proxy"

	"github.com/cutover/cutover/bench/internal/measure"
)

func main() {
	dur := flag.Duration("d", 10*time.Second, "wrk duration per run")
	rounds := flag.Int("rounds", 1, "rounds of throughput runs (each runs every path once)")
	switches := flag.Int("switches", 200, "switches to time")
	flag.Parse()
	if err := run(*dur, *rounds, *switches); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(dur time.Duration, rounds, switches int) error {
	if _, err := exec.LookPath("wrk"); err != nil {
		return fmt.Errorf("wrk is not installed (apt-get install wrk)")
	}
	tmp, err := os.MkdirTemp("", "cutover-bench-proxy-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	cutover := filepath.Join(tmp, "cutover")
	if out, err := exec.Command("go", "build", "-o", cutover, "github.com/cutover/cutover/cmd/cutover").CombinedOutput(); err != nil {
		return fmt.Errorf("build cutover: %v %s", err, out)
	}
	backend := filepath.Join(tmp, "backend")
	src := "../shared/bench/backend"
	if _, err := os.Stat(src); err == nil {
		cmd := exec.Command("go", "build", "-o", backend, ".")
		cmd.Dir = src
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build shared backend: %v %s", err, out)
		}
	} else if out, err := exec.Command("go", "build", "-o", backend, "github.com/cutover/cutover/bench/proxy/backend").CombinedOutput(); err != nil {
		return fmt.Errorf("build backend: %v %s", err, out)
	}
	blue, green, listen := measure.FreeAddr(), measure.FreeAddr(), measure.FreeAddr()
	for _, b := range []struct{ addr, v string }{{blue, "blue"}, {green, "green"}} {
		cmd := exec.Command(backend, "-addr", b.addr, "-version", b.v, "-slow", "2s")
		if err := cmd.Start(); err != nil {
			return err
		}
		defer cmd.Process.Kill()
	}
	sock := filepath.Join(tmp, "admin.sock")
	px := exec.Command(cutover, "proxy", "run", "--listen", listen, "--admin", sock, "--state", filepath.Join(tmp, "state"), "--log-level", "error")
	if err := px.Start(); err != nil {
		return err
	}
	defer px.Process.Kill()
	admin, err := proxy.NewAdminClient(sock, "")
	if err != nil {
		return err
	}
	ctx := context.Background()
	if err := waitFor(func() error { return admin.Do(ctx, "GET", "/services", nil, nil) }); err != nil {
		return err
	}
	if err := waitFor(func() error {
		return admin.Do(ctx, "PUT", "/services/web", proxy.AdminRequest{Targets: []string{blue}}, nil)
	}); err != nil {
		return err
	}

	// The in-process proxies: cutover's (to count its allocations) and the
	// two yardsticks. While wrk runs against one, the others are idle.
	inproc, err := proxy.New(proxy.Config{})
	if err != nil {
		return err
	}
	defer inproc.Shutdown(ctx)
	if err := inproc.SetService(ctx, proxy.ServiceSpec{Name: "web", Targets: []string{blue}}); err != nil {
		return err
	}
	inprocAddr, err := serve(inproc.Serve)
	if err != nil {
		return err
	}
	untunedAddr, err := serveHandler(untunedReverseProxy(blue))
	if err != nil {
		return err
	}
	tunedAddr, err := serveHandler(tunedReverseProxy(blue))
	if err != nil {
		return err
	}

	paths := []benchPath{
		{name: "direct to backend", addr: blue},
		{name: "cutover proxy run (own process)", addr: listen},
		{name: "cutover proxy, in-process", addr: inprocAddr, inProcess: true},
		{name: "httputil.ReverseProxy, tuned", addr: tunedAddr, inProcess: true},
		// Last in a round: with 2 idle connections per host it opens and
		// closes a connection per request or so, and the sockets it leaves
		// in TIME_WAIT would slow whichever path ran next.
		{name: "httputil.ReverseProxy, untuned", addr: untunedAddr, inProcess: true},
	}
	fmt.Printf("throughput, wrk -t2 -c64 -d%s, %d round(s), every path once per round (2 cores shared by wrk, proxies and backend):\n", dur, rounds)
	ratios := make([][]float64, len(paths))
	for round := range rounds {
		var direct float64
		for i, pth := range paths {
			res, err := measurePath(pth, dur)
			if err != nil {
				return err
			}
			if i == 0 {
				direct = res.rps
			}
			ratios[i] = append(ratios[i], res.rps/direct)
			line := fmt.Sprintf("  round %d  %-33s %9.0f req/s  share %.2f", round+1, pth.name, res.rps, res.rps/direct)
			if pth.inProcess {
				line += fmt.Sprintf("  %6.1f allocs/req  %7.0f B/req", res.allocsPerReq, res.bytesPerReq)
			}
			if res.errors > 0 {
				line += fmt.Sprintf("  (%d errors or non-2xx, not counted)", res.errors)
			}
			fmt.Println(line)
		}
	}
	if rounds > 1 {
		fmt.Println("  share of direct over the rounds (min / median / max):")
		for i, pth := range paths[1:] {
			r := slices.Clone(ratios[i+1])
			slices.Sort(r)
			fmt.Printf("    %-33s %.2f / %.2f / %.2f\n", pth.name, r[0], r[len(r)/2], r[len(r)-1])
		}
	}

	fmt.Printf("switch to an already healthy set (%d switches, timed inside the proxy):\n", switches)
	for _, inFlight := range []int{0, 4} {
		stop := make(chan struct{})
		for range inFlight {
			go func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if resp, err := http.Get("http://" + listen + "/slow"); err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				}
			}()
		}
		time.Sleep(100 * time.Millisecond)
		var ds []time.Duration
		for i := range switches {
			t := green
			if i%2 == 1 {
				t = blue
			}
			start := time.Now()
			if err := admin.Do(ctx, "PUT", "/services/web", proxy.AdminRequest{Targets: []string{t}}, nil); err != nil {
				close(stop)
				return err
			}
			ds = append(ds, time.Since(start))
		}
		close(stop)
		slices.Sort(ds)
		fmt.Printf("  %d slow requests in flight: p50 %s  p99 %s  max %s (admin round trip; target < 10ms)\n",
			inFlight, ds[len(ds)/2].Round(time.Microsecond), ds[len(ds)*99/100].Round(time.Microsecond), ds[len(ds)-1].Round(time.Microsecond))
	}
	return nil
}

// benchPath is one URL measured with wrk.
type benchPath struct {
	name      string
	addr      string
	inProcess bool // served by this process: count its allocations
}

type result struct {
	rps          float64 // 2xx/3xx responses per second
	errors       int64   // socket errors and non-2xx/3xx responses
	allocsPerReq float64
	bytesPerReq  float64
}

// measurePath runs wrk against pth; for an in-process path it reads the heap
// allocation counters around the run.
func measurePath(pth benchPath, d time.Duration) (result, error) {
	var before, after runtime.MemStats
	if pth.inProcess {
		runtime.GC()
		runtime.ReadMemStats(&before)
	}
	w, err := wrk("http://"+pth.addr+"/", d)
	if err != nil {
		return result{}, err
	}
	res := result{rps: w.rps * float64(w.requests-w.bad) / float64(w.requests), errors: w.bad + w.socketErrors}
	if pth.inProcess {
		runtime.ReadMemStats(&after)
		res.allocsPerReq = float64(after.Mallocs-before.Mallocs) / float64(w.requests)
		res.bytesPerReq = float64(after.TotalAlloc-before.TotalAlloc) / float64(w.requests)
	}
	return res, nil
}

var (
	rpsRE      = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	requestsRE = regexp.MustCompile(`(\d+) requests in`)
	non2xxRE   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	socketRE   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

type wrkResult struct {
	rps           float64
	requests, bad int64
	socketErrors  int64
}

func wrk(url string, d time.Duration) (wrkResult, error) {
	out, err := exec.Command("wrk", "-t2", "-c64", "-d"+d.String(), url).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %v %s", url, err, out)
	}
	m, n := rpsRE.FindSubmatch(out), requestsRE.FindSubmatch(out)
	if m == nil || n == nil {
		return wrkResult{}, fmt.Errorf("wrk output: %s", out)
	}
	var r wrkResult
	r.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	r.requests, _ = strconv.ParseInt(string(n[1]), 10, 64)
	if r.requests == 0 {
		return wrkResult{}, fmt.Errorf("wrk made no requests: %s", out)
	}
	if b := non2xxRE.FindSubmatch(out); b != nil {
		r.bad, _ = strconv.ParseInt(string(b[1]), 10, 64)
	}
	if s := socketRE.FindSubmatch(out); s != nil {
		for _, x := range s[1:] {
			v, _ := strconv.ParseInt(string(x), 10, 64)
			r.socketErrors += v
		}
	}
	return r, nil
}

// untunedReverseProxy is httputil.ReverseProxy as NewSingleHostReverseProxy
// makes it: http.DefaultTransport (2 idle connections per host), no buffer pool.
func untunedReverseProxy(addr string) http.Handler {
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: addr})
	rp.ErrorLog = log.New(io.Discard, "", 0) // wrk cancels requests at its end
	return rp
}

// tunedReverseProxy is httputil.ReverseProxy configured as kamal-proxy
// configures it: pooled 32 KiB copy buffers and a Transport that keeps
// enough idle connections per host for 64 concurrent clients.
func tunedReverseProxy(addr string) http.Handler {
	u := &url.URL{Scheme: "http", Host: addr}
	return &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = r.In.Host
			r.SetXForwarded()
		},
		BufferPool: bufferPool{},
		Transport: &http.Transport{
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
}

// bufferPool is an httputil.BufferPool of 32 KiB buffers.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte { return *buffers.Get().(*[]byte) }

func (bufferPool) Put(b []byte) { buffers.Put(&b) }

// serve runs serveFn on a new loopback listener for the life of the program.
func serve(serveFn func(net.Listener) error) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	go serveFn(ln)
	return ln.Addr().String(), nil
}

func serveHandler(h http.Handler) (string, error) {
	srv := &http.Server{Handler: h, ErrorLog: log.New(io.Discard, "", 0)}
	return serve(srv.Serve)
}

func waitFor(f func() error) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}
