// Command proxy measures cutover's proxy the way the project judges it, in
// one run on this machine:
//
//   - throughput with `wrk -t2 -c64` direct to the shared bench backend and
//     through `cutover proxy run`, and the ratio proxy/direct (also for a
//     plain httputil.ReverseProxy, as a yardstick);
//   - the time `cutover proxy set` takes to switch to an already healthy set,
//     idle and with slow requests in flight (the admin API's own timing).
//
// It needs wrk (Debian package) and Go. The backend is ../shared/bench/backend
// when it exists beside the repository, else bench/proxy/backend.
//
// Usage: go run ./bench/proxy [-d 10s] [-switches 200]
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
	"slices"
	"strconv"
	"time"

	"github.com/cutover/cutover/internal/proxy"
)

func main() {
	dur := flag.Duration("d", 10*time.Second, "wrk duration per run")
	switches := flag.Int("switches", 200, "switches to time")
	flag.Parse()
	if err := run(*dur, *switches); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(dur time.Duration, switches int) error {
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
	blue, green, listen := freeAddr(), freeAddr(), freeAddr()
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

	// The yardstick: Go's ReverseProxy with no tuning, in this process.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	u, _ := url.Parse("http://" + blue)
	rproxy := httputil.NewSingleHostReverseProxy(u)
	rproxy.ErrorLog = log.New(io.Discard, "", 0) // wrk cancels requests at its end
	go http.Serve(ln, rproxy)

	fmt.Printf("throughput, wrk -t2 -c64 -d%s, same run (2 cores shared by wrk, proxy and backend):\n", dur)
	direct, err := wrk("http://"+blue+"/", dur)
	if err != nil {
		return err
	}
	through, err := wrk("http://"+listen+"/", dur)
	if err != nil {
		return err
	}
	rp, err := wrk("http://"+ln.Addr().String()+"/", dur)
	if err != nil {
		return err
	}
	fmt.Printf("  direct to backend          %9.0f req/s\n", direct)
	fmt.Printf("  through cutover proxy      %9.0f req/s   ratio %.2f (target >= 0.35)\n", through, through/direct)
	fmt.Printf("  through httputil.ReverseProxy %6.0f req/s   ratio %.2f\n", rp, rp/direct)

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

var rpsRE = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)

func wrk(url string, d time.Duration) (float64, error) {
	out, err := exec.Command("wrk", "-t2", "-c64", "-d"+d.String(), url).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("wrk %s: %v %s", url, err, out)
	}
	m := rpsRE.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("wrk output: %s", out)
	}
	return strconv.ParseFloat(string(m[1]), 64)
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

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}
