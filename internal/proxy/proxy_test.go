package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/cutover/cutover/internal/testutil"
)

var ctx = context.Background()

// TestSwitchUnderLoadDropsNothing switches 100 times between blue and green
// under load: no request fails, and four slow requests held on blue through
// every switch are answered by blue once released.
func TestSwitchUnderLoadDropsNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	t.Parallel()
	blue := newBackend(t, "blue", untilReleased)
	green := newBackend(t, "green", untilReleased)
	p, addr := startProxy(t, "")
	// A drain timeout longer than the test: only the held requests end the drain.
	spec := func(target string) ServiceSpec {
		return ServiceSpec{Name: "web", Targets: []string{target}, DrainTimeout: time.Hour}
	}
	if err := p.SetService(ctx, spec(blue.addr)); err != nil {
		t.Fatal(err)
	}
	const workers, slowWorkers = 32, 4
	var ok, non2xx, connErr, slowBlue, slowOther, slowFail atomic.Int64
	versions := sync.Map{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 5 * time.Minute}
	// worker sends requests to path until stop, reporting each outcome.
	worker := func(path string, done func(resp *http.Response, err error)) {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := client.Get("http://" + addr + path)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			done(resp, err)
		}
	}
	for range workers {
		wg.Add(1)
		go worker("/", func(resp *http.Response, err error) {
			switch {
			case err != nil:
				connErr.Add(1)
			case resp.StatusCode/100 != 2:
				non2xx.Add(1)
			default:
				ok.Add(1)
				v, _ := versions.LoadOrStore(resp.Header.Get("X-Version"), new(atomic.Int64))
				v.(*atomic.Int64).Add(1)
			}
		})
	}
	for range slowWorkers {
		wg.Add(1)
		go worker("/slow", func(resp *http.Response, err error) {
			switch {
			case err != nil || resp.StatusCode != 200:
				slowFail.Add(1)
			case resp.Header.Get("X-Version") == "blue":
				slowBlue.Add(1)
			default:
				slowOther.Add(1)
			}
		})
	}
	answered := func() int64 { return ok.Load() + non2xx.Load() + connErr.Load() }
	waitUntil(t, "the slow requests are held on blue", func() bool { return blue.slowIn.Load() == slowWorkers })
	for i := range 100 {
		target := green.addr
		if i%2 == 1 {
			target = blue.addr
		}
		if err := p.SetService(ctx, spec(target)); err != nil {
			t.Fatal(err)
		}
		// Pace by load, not by the clock: at most one request per worker was
		// in flight at the switch, so twice as many answers after it include
		// at least one request per worker routed by the new table.
		want := answered() + 2*workers
		waitUntil(t, "the load moves on after a switch", func() bool { return answered() >= want })
	}
	if n := blue.slowIn.Load(); n != slowWorkers {
		t.Errorf("slow requests held on blue after the switches = %d, want %d", n, slowWorkers)
	}
	// Stop the load, then let the held requests finish; each slow worker
	// ends with its held request.
	close(stop)
	blue.releaseSlow()
	green.releaseSlow()
	wg.Wait()
	t.Logf("ok=%d non2xx=%d connErr=%d slowBlue=%d slowOther=%d slowFail=%d", ok.Load(), non2xx.Load(), connErr.Load(), slowBlue.Load(), slowOther.Load(), slowFail.Load())
	if non2xx.Load() != 0 || connErr.Load() != 0 || slowFail.Load() != 0 {
		t.Fatalf("dropped requests: non2xx=%d connErr=%d slowFail=%d", non2xx.Load(), connErr.Load(), slowFail.Load())
	}
	if slowBlue.Load() != slowWorkers || slowOther.Load() != 0 {
		t.Errorf("slow requests answered by blue = %d, by green = %d; want %d by blue", slowBlue.Load(), slowOther.Load(), slowWorkers)
	}
	for _, v := range []string{"blue", "green"} {
		n, _ := versions.Load(v)
		if n == nil || n.(*atomic.Int64).Load() == 0 {
			t.Errorf("no answers from %s", v)
		}
	}
}

// TestSwitchReturnsBeforeDrainAndStatusShowsIt: a switch returns while a
// request is still in flight on the old set, which the status then shows
// draining; the request is answered by the old set once its backend lets it
// go, and only then does the drain end.
func TestSwitchReturnsBeforeDrainAndStatusShowsIt(t *testing.T) {
	t.Parallel()
	blue := newBackend(t, "blue", untilReleased)
	green := newBackend(t, "green", 0)
	p, addr := startProxy(t, "")
	t.Cleanup(blue.releaseSlow) // before the proxy's shutdown, should the test stop early
	// The slow request is held until the test releases it and the drain
	// timeout is longer than the test, so a switch that waited for the drain
	// would not return.
	spec := func(target string) ServiceSpec {
		return ServiceSpec{Name: "web", Targets: []string{target}, DrainTimeout: time.Hour}
	}
	if err := p.SetService(ctx, spec(blue.addr)); err != nil {
		t.Fatal(err)
	}
	done := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/slow")
		if err != nil {
			done <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		done <- strings.TrimSpace(string(b))
	}()
	waitUntil(t, "the slow request is in flight", func() bool {
		st, err := p.StatusOf("web")
		return err == nil && st.Active.InFlight == 1
	})

	switched := make(chan error, 1)
	go func() { switched <- p.SetService(ctx, spec(green.addr)) }()
	select {
	case err := <-switched:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the switch did not return while a request was in flight on the old set: it waits for the drain")
	}
	st, _ := p.StatusOf("web")
	if len(st.Draining) != 1 || st.Draining[0].InFlight != 1 || st.Standby == nil || st.Standby.Targets[0].Addr != blue.addr {
		t.Errorf("status right after the switch = %+v; want blue draining with 1 in flight", st)
	}
	if _, body, _ := get(t, http.DefaultClient, "http://"+addr+"/"); body != "hello from green" {
		t.Errorf("new request went to %q", body)
	}
	// Switching back to the standby and forth again.
	if err := p.SwitchToStandby(ctx, "web", false); err != nil {
		t.Fatal(err)
	}
	if _, body, _ := get(t, http.DefaultClient, "http://"+addr+"/"); body != "hello from blue" {
		t.Errorf("after switching to the standby: %q", body)
	}
	if err := p.SwitchToStandby(ctx, "web", false); err != nil {
		t.Fatal(err)
	}
	select {
	case body := <-done:
		t.Fatalf("the slow request was answered (%q) before its backend released it", body)
	default:
	}
	if st, _ := p.StatusOf("web"); !drainsWithInFlight(st, blue.addr, 1) {
		t.Errorf("before the release: draining %+v, want blue with 1 in flight", st.Draining)
	}

	blue.releaseSlow()
	if body := <-done; body != "slow blue" {
		t.Errorf("in-flight request = %q, want it finished by blue", body)
	}
	waitUntil(t, "the drain ends after the in-flight request", func() bool {
		st, _ := p.StatusOf("web")
		return len(st.Draining) == 0
	})
}

// drainsWithInFlight reports whether st shows a drain of exactly addr with n requests in flight.
func drainsWithInFlight(st ServiceStatus, addr string, n int64) bool {
	for _, d := range st.Draining {
		if len(d.Targets) == 1 && d.Targets[0] == addr && d.InFlight == n {
			return true
		}
	}
	return false
}

// longLived is an SSE stream and a WebSocket opened through the proxy.
type longLived struct {
	ctx     context.Context // bounds both, so a proxy that never closes them fails the test instead of hanging it
	sse     io.ReadCloser
	sseRead *bufio.Reader
	ws      *websocket.Conn
}

// openLongLived opens an SSE stream and a WebSocket through the proxy at
// addr and checks that both are served by version.
func openLongLived(t *testing.T, addr, version string) *longLived {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(c, "GET", "http://"+addr+"/sse", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	l := &longLived{ctx: c, sse: resp.Body, sseRead: bufio.NewReader(resp.Body)}
	if ev, err := l.event(); err != nil || !strings.HasPrefix(ev, version) {
		t.Fatalf("first SSE event = %q, %v; want it from %s", ev, err, version)
	}
	l.ws, _, err = websocket.Dial(c, "ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.ws.CloseNow() })
	if got, err := l.echo(); got != version+":ping" {
		t.Fatalf("first ws echo = %q, %v; want it from %s", got, err, version)
	}
	return l
}

// event reads the next SSE event's data.
func (l *longLived) event() (string, error) {
	for {
		line, err := l.sseRead.ReadString('\n')
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(line, "data: ") {
			return strings.TrimSpace(strings.TrimPrefix(line, "data: ")), nil
		}
	}
}

// echo sends "ping" over the WebSocket and returns the answer.
func (l *longLived) echo() (string, error) {
	if err := l.ws.Write(l.ctx, websocket.MessageText, []byte("ping")); err != nil {
		return "", err
	}
	_, b, err := l.ws.Read(l.ctx)
	return string(b), err
}

// TestLongLivedConnectionsSurviveSwitch: an SSE stream and a WebSocket
// opened on blue keep running on blue after a switch, counted in blue's
// drain, while new connections go to green; the drain ends when they do.
func TestLongLivedConnectionsSurviveSwitch(t *testing.T) {
	t.Parallel()
	blue := newBackend(t, "blue", 0)
	green := newBackend(t, "green", 0)
	p, addr := startProxy(t, "")
	// A drain timeout longer than the test: only the connections ending end the drain.
	spec := func(target string) ServiceSpec {
		return ServiceSpec{Name: "web", Targets: []string{target}, DrainTimeout: time.Hour}
	}
	if err := p.SetService(ctx, spec(blue.addr)); err != nil {
		t.Fatal(err)
	}
	l := openLongLived(t, addr, "blue")

	if err := p.SetService(ctx, spec(green.addr)); err != nil {
		t.Fatal(err)
	}
	// Both keep running on blue...
	if got, err := l.echo(); got != "blue:ping" {
		t.Errorf("ws after switch = %q, %v; want it still on blue", got, err)
	}
	if ev, err := l.event(); err != nil || !strings.HasPrefix(ev, "blue") {
		t.Errorf("SSE after switch = %q, %v", ev, err)
	}
	// ...while new connections go to green.
	ws2, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws2.CloseNow()
	ws2.Write(ctx, websocket.MessageText, []byte("hi"))
	if _, b, _ := ws2.Read(ctx); string(b) != "green:hi" {
		t.Errorf("new ws = %q", b)
	}
	st, _ := p.StatusOf("web")
	if len(st.Draining) != 1 || st.Draining[0].Tunnels != 1 || st.Draining[0].InFlight != 2 {
		t.Errorf("draining = %+v, want blue holding the tunnel and the stream (2 in flight)", st.Draining)
	}
	if got, err := l.echo(); got != "blue:ping" {
		t.Errorf("ws while draining = %q, %v; want it still on blue", got, err)
	}
	// The clients close them: the drain is over, well before its timeout.
	l.ws.Close(websocket.StatusNormalClosure, "")
	l.sse.Close()
	waitUntil(t, "the drain ends with the connections", func() bool {
		st, _ := p.StatusOf("web")
		return len(st.Draining) == 0
	})
}

// TestDrainTimeoutClosesLongLivedConnections: at the drain timeout the proxy
// closes what still runs on the old set, cleanly: the WebSocket with 1001
// going away, the SSE stream with the end of the stream.
func TestDrainTimeoutClosesLongLivedConnections(t *testing.T) {
	t.Parallel()
	blue := newBackend(t, "blue", 0)
	green := newBackend(t, "green", 0)
	p, addr := startProxy(t, "")
	spec := func(target string) ServiceSpec {
		return ServiceSpec{Name: "web", Targets: []string{target}, DrainTimeout: 50 * time.Millisecond}
	}
	if err := p.SetService(ctx, spec(blue.addr)); err != nil {
		t.Fatal(err)
	}
	l := openLongLived(t, addr, "blue")

	if err := p.SetService(ctx, spec(green.addr)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.ws.Read(l.ctx); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Errorf("ws close = %v, want 1001 going away", err)
	}
	for {
		ev, err := l.event()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Errorf("SSE ended with %v, want a clean end of stream", err)
			}
			break
		}
		if !strings.HasPrefix(ev, "blue") {
			t.Errorf("SSE event %q after the switch, want it from blue until the stream ends", ev)
		}
	}
	waitUntil(t, "the drain ends", func() bool {
		st, _ := p.StatusOf("web")
		return len(st.Draining) == 0
	})
}

func TestHeadersAndBodies(t *testing.T) {
	t.Parallel()
	b := newBackend(t, "blue", 0)
	p, addr := startProxy(t, "")
	if err := p.SetService(ctx, ServiceSpec{Name: "web", Targets: []string{b.addr}}); err != nil {
		t.Fatal(err)
	}
	body := strings.Repeat("x", 100_000)
	req, _ := http.NewRequest("POST", "http://"+addr+"/echo", strings.NewReader(body))
	req.Header.Set("X-Forwarded-For", "10.0.0.1")
	req.Header.Set("Connection", "X-Hop")
	req.Header.Set("X-Hop", "should-not-pass")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != body {
		t.Errorf("body of %d bytes came back as %d", len(body), len(got))
	}
	h := resp.Header
	if h.Get("X-Seen-Xff") != "10.0.0.1, 127.0.0.1" || h.Get("X-Seen-Proto") != "http" || h.Get("X-Seen-Host") != addr || h.Get("X-Seen-Request-Id") == "" {
		t.Errorf("forwarded headers = %v", h)
	}
	if h.Get("X-Seen-Hop") != "" || h.Get("X-Backend-Hop") != "" {
		t.Errorf("hop-by-hop headers passed: %v", h)
	}
	// Chunked request body.
	pr, pw := io.Pipe()
	go func() { pw.Write([]byte("chunk-1 ")); pw.Write([]byte("chunk-2")); pw.Close() }()
	resp, err = http.Post("http://"+addr+"/echo", "text/plain", pr)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != "chunk-1 chunk-2" {
		t.Errorf("chunked body = %q", got)
	}
	// Body limit.
	p.cfg.MaxBodyBytes = 10
	resp, err = http.Post("http://"+addr+"/echo", "text/plain", strings.NewReader(strings.Repeat("y", 100)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body status = %d", resp.StatusCode)
	}
}

func TestErrorPagesAndHostRouting(t *testing.T) {
	t.Parallel()
	a := newBackend(t, "a", 0)
	bb := newBackend(t, "b", 0)
	p, addr := startProxy(t, "")
	if err := p.SetService(ctx, ServiceSpec{Name: "a", Hosts: []string{"a.test"}, Targets: []string{a.addr}}); err != nil {
		t.Fatal(err)
	}
	if err := p.SetService(ctx, ServiceSpec{Name: "b", Hosts: []string{"b.test"}, Targets: []string{bb.addr}}); err != nil {
		t.Fatal(err)
	}
	do := func(host string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	if _, body := do("a.test"); body != "hello from a" {
		t.Errorf("a.test -> %q", body)
	}
	if _, body := do("B.test:80"); body != "hello from b" {
		t.Errorf("b.test -> %q", body)
	}
	if code, _ := do("c.test"); code != 404 {
		t.Errorf("unrouted host -> %d", code)
	}
	// A dead target gives a clear 502.
	bb.srv.Close()
	if code, body := do("b.test"); code != 502 || !strings.Contains(body, "could not be reached") {
		t.Errorf("dead target -> %d %q", code, body)
	}
	// Maintenance gives 503 with the message.
	if err := p.Pause("a", PauseMaintenance, "back at ten", 0); err != nil {
		t.Fatal(err)
	}
	if code, body := do("a.test"); code != 503 || !strings.Contains(body, "back at ten") {
		t.Errorf("paused -> %d %q", code, body)
	}
}

// TestPauseQueue_HoldsUntilResume shows a request waiting while the service
// is paused (it is counted as queued and has no answer), then served once
// resumed.
func TestPauseQueue_HoldsUntilResume(t *testing.T) {
	t.Parallel()
	be := newBackend(t, "a", 0)
	p, addr := startProxy(t, "")
	if err := p.SetService(ctx, ServiceSpec{Name: "a", Targets: []string{be.addr}}); err != nil {
		t.Fatal(err)
	}
	// Long enough never to expire in this test: it ends by Resume.
	if err := p.Pause("a", PauseQueue, "", time.Hour); err != nil {
		t.Fatal(err)
	}
	type answer struct {
		code int
		body string
	}
	res := make(chan answer, 1)
	go func() {
		code, body, _ := get(t, http.DefaultClient, "http://"+addr+"/")
		res <- answer{code, body}
	}()
	waitUntil(t, "the request is queued", func() bool {
		st, err := p.StatusOf("a")
		return err == nil && st.Queued == 1
	})
	select {
	case a := <-res:
		t.Fatalf("answered while paused: %d %q", a.code, a.body)
	default:
	}
	if err := p.Resume("a"); err != nil {
		t.Fatal(err)
	}
	if a := <-res; a.code != 200 || a.body != "hello from a" {
		t.Errorf("queued request after resume -> %d %q", a.code, a.body)
	}
	if st, _ := p.StatusOf("a"); st.Queued != 0 || st.Paused != "" {
		t.Errorf("after resume: queued %d, paused %q", st.Queued, st.Paused)
	}
}

// TestPauseQueue_TimesOutWithoutResume shows a queued request answered 503
// by the pause's timeout when nobody resumes the service.
func TestPauseQueue_TimesOutWithoutResume(t *testing.T) {
	t.Parallel()
	be := newBackend(t, "a", 0)
	p, addr := startProxy(t, "")
	if err := p.SetService(ctx, ServiceSpec{Name: "a", Targets: []string{be.addr}}); err != nil {
		t.Fatal(err)
	}
	if err := p.Pause("a", PauseQueue, "", 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	code, body, h := get(t, http.DefaultClient, "http://"+addr+"/")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "waited too long") || h.Get("Retry-After") == "" {
		t.Errorf("unresumed queued request -> %d %q Retry-After %q", code, body, h.Get("Retry-After"))
	}
	if st, _ := p.StatusOf("a"); st.Queued != 0 || st.Paused != string(PauseQueue) {
		t.Errorf("after the timeout: queued %d, paused %q", st.Queued, st.Paused)
	}
}

// waitUntil polls cond until it holds, failing the test after 10 s.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, what, 10*time.Second, cond)
}

func TestCanarySplit(t *testing.T) {
	t.Parallel()
	blue := newBackend(t, "blue", 0)
	green := newBackend(t, "green", 0)
	p, addr := startProxy(t, "")
	p.SetService(ctx, ServiceSpec{Name: "web", Targets: []string{blue.addr}})
	if err := p.SetCanary(ctx, "web", []string{green.addr}, 20, false); err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for range 200 {
		_, body, _ := get(t, http.DefaultClient, "http://"+addr+"/")
		n[body]++
	}
	if n["hello from green"] != 40 || n["hello from blue"] != 160 {
		t.Errorf("split = %v, want 40 green / 160 blue", n)
	}
	// Sticky: a client with the cookie stays on its side.
	p.SetCanary(ctx, "web", []string{green.addr}, 50, true)
	jar := &cookieJar{}
	c := &http.Client{Jar: jar}
	_, first, _ := get(t, c, "http://"+addr+"/")
	for range 20 {
		if _, body, _ := get(t, c, "http://"+addr+"/"); body != first {
			t.Fatalf("sticky client moved from %q to %q", first, body)
		}
	}
}

type cookieJar struct {
	mu sync.Mutex
	c  []*http.Cookie
}

func (j *cookieJar) SetCookies(_ *url.URL, cs []*http.Cookie) {
	j.mu.Lock()
	j.c = append(j.c, cs...)
	j.mu.Unlock()
}
func (j *cookieJar) Cookies(_ *url.URL) []*http.Cookie { j.mu.Lock(); defer j.mu.Unlock(); return j.c }

func TestBadAdminInputChangesNothing(t *testing.T) {
	t.Parallel()
	good := newBackend(t, "good", 0)
	sick := newBackend(t, "sick", 0)
	sick.setUp(false)
	dir := t.TempDir()
	p, addr := startProxy(t, dir)
	if err := p.SetService(ctx, ServiceSpec{Name: "web", Targets: []string{good.addr}}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, stateFile))
	for _, tc := range []struct {
		name string
		do   func() error
		want error
		text string
	}{
		{"unknown service weight", func() error { return p.SetCanary(ctx, "nope", []string{good.addr}, 5, false) }, ErrNotFound, `service "nope"`},
		{"unknown service pause", func() error { return p.Pause("nope", PauseMaintenance, "", 0) }, ErrNotFound, "nope"},
		{"malformed address", func() error { return p.SetService(ctx, ServiceSpec{Name: "web", Targets: []string{"localhost"}}) }, ErrInvalid, `target "localhost"`},
		{"port out of range", func() error { return p.SetService(ctx, ServiceSpec{Name: "web", Targets: []string{"127.0.0.1:70000"}}) }, ErrInvalid, "70000"},
		{"no targets", func() error { return p.SetService(ctx, ServiceSpec{Name: "web"}) }, ErrInvalid, "at least one"},
		{"bad name", func() error { return p.SetService(ctx, ServiceSpec{Name: "a b/c", Targets: []string{good.addr}}) }, ErrInvalid, `"a b/c"`},
		{"bad host", func() error {
			return p.SetService(ctx, ServiceSpec{Name: "web", Hosts: []string{"x.test/path"}, Targets: []string{good.addr}})
		}, ErrInvalid, "x.test/path"},
		{"weight out of range", func() error { return p.SetCanary(ctx, "web", []string{good.addr}, 101, false) }, ErrInvalid, "percent 101"},
		{"negative weight", func() error { return p.SetCanary(ctx, "web", []string{good.addr}, -1, false) }, ErrInvalid, "percent -1"},
		{"unhealthy target without force", func() error {
			c, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
			return p.SetService(c, ServiceSpec{Name: "web", Targets: []string{sick.addr}})
		}, ErrUnhealthy, sick.addr},
		{"pause mode", func() error { return p.Pause("web", "sleep", "", 0) }, ErrInvalid, `"sleep"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("err = %v, want %v naming %q", err, tc.want, tc.text)
			}
			if _, body, _ := get(t, http.DefaultClient, "http://"+addr+"/"); body != "hello from good" {
				t.Errorf("traffic changed: %q", body)
			}
			after, _ := os.ReadFile(filepath.Join(dir, stateFile))
			if string(after) != string(before) {
				t.Errorf("persisted state changed:\n%s\n---\n%s", before, after)
			}
		})
	}
	// With force the unhealthy set is accepted.
	if err := p.SetService(ctx, ServiceSpec{Name: "web", Targets: []string{sick.addr}, Force: true}); err != nil {
		t.Errorf("forced switch: %v", err)
	}
}

func TestAdminAPIAndToken(t *testing.T) {
	t.Parallel()
	b := newBackend(t, "blue", 0)
	p, _ := startProxy(t, "")
	srv := &http.Server{Handler: p.AdminHandler("s3cret-token")}
	ln, _ := netListen(t)
	go srv.Serve(ln)
	defer srv.Close()
	c, _ := NewAdminClient(ln.Addr().String(), "wrong")
	if err := c.Do(ctx, "GET", "/services", nil, nil); err == nil || !strings.Contains(err.Error(), "token") {
		t.Errorf("wrong token: %v", err)
	}
	c, _ = NewAdminClient(ln.Addr().String(), "s3cret-token")
	var st ServiceStatus
	if err := c.Do(ctx, "PUT", "/services/web", AdminRequest{Targets: []string{b.addr}}, &st); err != nil || st.Active.Targets[0].Addr != b.addr {
		t.Fatalf("set = %+v, %v", st, err)
	}
	err := c.Do(ctx, "PUT", "/services/web", map[string]any{"targets": []string{b.addr}, "bogus": 1}, nil)
	var ae *AdminError
	if !errors.As(err, &ae) || ae.Status != 400 || !strings.Contains(ae.Message, "bogus") {
		t.Errorf("unknown field: %v", err)
	}
	if err := c.Do(ctx, "GET", "/services/nope", nil, nil); !errors.As(err, &ae) || ae.Status != 404 {
		t.Errorf("unknown service: %v", err)
	}
	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("metrics without token: %d", resp.StatusCode)
		}
	}
}

// TestRestartAfterSIGKILLRestoresRoutes runs `cutover proxy run` as a real
// process, kills it with SIGKILL and starts it again.
func TestRestartAfterSIGKILLRestoresRoutes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "cutover")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/cutover/cutover/cmd/cutover").CombinedOutput(); err != nil {
		t.Fatalf("build: %v %s", err, out)
	}
	b := newBackend(t, "blue", 0)
	state := t.TempDir()
	sock := filepath.Join(t.TempDir(), "admin.sock")
	listen := testutil.ListenAddr(t) // bound later by the child process: outside the ephemeral range
	run := func() *exec.Cmd {
		cmd := exec.Command(bin, "proxy", "run", "--listen", listen, "--admin", sock, "--state", state)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		waitUntil(t, "the proxy answers on its admin socket", func() bool {
			c, err := NewAdminClient(sock, "")
			return err == nil && c.Do(ctx, "GET", "/services", nil, nil) == nil
		})
		return cmd
	}
	cmd := run()
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("admin socket mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	out, err := exec.Command(bin, "proxy", "set", "web", "--target", b.addr, "--admin", sock).CombinedOutput()
	if err != nil {
		t.Fatalf("proxy set: %v %s", err, out)
	}
	if _, body, _ := get(t, http.DefaultClient, "http://"+listen+"/"); body != "hello from blue" {
		t.Fatalf("before kill: %q", body)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	run()
	if _, body, _ := get(t, http.DefaultClient, "http://"+listen+"/"); body != "hello from blue" {
		t.Errorf("after restart: %q", body)
	}
	out, err = exec.Command(bin, "proxy", "status", "--admin", sock, "--output", "json").CombinedOutput()
	if err != nil || !strings.Contains(string(out), b.addr) {
		t.Errorf("status after restart: %v %s", err, out)
	}
	// Bad usage exits 2 and names the value.
	c := exec.Command(bin, "proxy", "weight", "web", "--canary", b.addr, "--percent", "150", "--admin", sock)
	out, _ = c.CombinedOutput()
	if c.ProcessState.ExitCode() != 2 || !strings.Contains(string(out), "150") {
		t.Errorf("bad percent: exit %d %s", c.ProcessState.ExitCode(), out)
	}
}

func netListen(t *testing.T) (net.Listener, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln, nil
}

func TestHealthEjectsFailingTargets(t *testing.T) {
	t.Parallel()
	good := newBackend(t, "good", 0)
	dead := newBackend(t, "dead", 0)
	p, addr := startProxy(t, "")
	if err := p.SetService(ctx, ServiceSpec{Name: "web", Targets: []string{good.addr, dead.addr},
		Health: HealthCheck{Interval: 50 * time.Millisecond, UnhealthyThreshold: 2}}); err != nil {
		t.Fatal(err)
	}
	// Active checks: a target failing its health path stops getting requests.
	dead.setUp(false)
	waitUntil(t, "the active check marks the target unhealthy", func() bool {
		st, _ := p.StatusOf("web")
		return !st.Active.Targets[1].Healthy
	})
	for range 20 {
		if _, body, _ := get(t, http.DefaultClient, "http://"+addr+"/"); body != "hello from good" {
			t.Fatalf("request went to an unhealthy target: %q", body)
		}
	}
	// Passive: a target that passes its health check but answers 5xx is
	// ejected after consecutive failures.
	bad := http.NewServeMux()
	bad.HandleFunc("/up", func(w http.ResponseWriter, r *http.Request) {})
	bad.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) })
	bln, _ := netListen(t)
	go http.Serve(bln, bad)
	defer bln.Close()
	if err := p.SetService(ctx, ServiceSpec{Name: "web", Targets: []string{good.addr, bln.Addr().String()}}); err != nil {
		t.Fatal(err)
	}
	fails := 0
	for range 12 {
		if code, _, _ := get(t, http.DefaultClient, "http://"+addr+"/"); code != 200 {
			fails++
		}
	}
	if fails != DefaultPassiveFailures {
		t.Errorf("%d failed requests before ejection, want %d", fails, DefaultPassiveFailures)
	}
	for range 20 {
		if code, _, _ := get(t, http.DefaultClient, "http://"+addr+"/"); code != 200 {
			t.Fatal("a request went to an ejected target")
		}
	}
	st, _ := p.StatusOf("web")
	if !st.Active.Targets[1].Ejected || st.Active.Targets[1].Errors5xx != uint64(DefaultPassiveFailures) {
		t.Errorf("bad target: %+v", st.Active.Targets[1])
	}
	// Counters and the latency histogram are exported for Prometheus.
	srv := &http.Server{Handler: p.AdminHandler("")}
	ln, _ := netListen(t)
	go srv.Serve(ln)
	defer srv.Close()
	_, metrics, _ := get(t, http.DefaultClient, "http://"+ln.Addr().String()+"/metrics")
	for _, m := range []string{`cutover_proxy_requests_total{service="web",target="` + good.addr + `"}`, "cutover_proxy_connection_errors_total", "cutover_proxy_request_duration_seconds_bucket", "cutover_proxy_target_healthy"} {
		if !strings.Contains(metrics, m) {
			t.Errorf("metrics lack %s", m)
		}
	}
}

// TestSetCanaryReadsSpecUnderLock changes a service's spec while canaries
// are set on it; run under -race it catches a read of the spec without the
// proxy's lock.
func TestSetCanaryReadsSpecUnderLock(t *testing.T) {
	t.Parallel()
	blue := newBackend(t, "blue", 0)
	green := newBackend(t, "green", 0)
	p, _ := startProxy(t, "")
	if err := p.SetService(ctx, ServiceSpec{Name: "web", Targets: []string{blue.addr}}); err != nil {
		t.Fatal(err)
	}
	const rounds = 50
	errc := make(chan error, 1)
	go func() {
		for i := range rounds {
			path := "/up"
			if i%2 == 1 {
				path = "/healthz"
			}
			spec := ServiceSpec{Name: "web", Targets: []string{blue.addr}, Health: HealthCheck{Path: path}}
			if err := p.SetService(ctx, spec); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for i := range rounds {
		if err := p.SetCanary(ctx, "web", []string{green.addr}, 10+i%2, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// TestClientGoneStopsUpstream: when the client disconnects, the proxy
// closes the upstream connection (the backend's request context ends) and
// does not pool it, whether the upstream holds the request without an
// answer or has started a response and stalls mid-stream.
func TestClientGoneStopsUpstream(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		sendHead bool
	}{{"upstream holds the request", false}, {"upstream stalls mid-stream", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			arrived := make(chan struct{})
			upstreamDone := make(chan struct{})
			var once sync.Once
			up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/up" {
					return
				}
				if tc.sendHead {
					w.Header().Set("Content-Type", "text/event-stream")
					w.Write([]byte("data: first\n\n"))
					w.(http.Flusher).Flush()
				}
				once.Do(func() { close(arrived) })
				<-r.Context().Done() // the proxy closed the upstream connection
				close(upstreamDone)
			})}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go up.Serve(ln)
			t.Cleanup(func() { up.Close() })
			p, addr := startProxy(t, "")
			if err := p.SetService(ctx, ServiceSpec{Name: "web", Targets: []string{ln.Addr().String()}}); err != nil {
				t.Fatal(err)
			}

			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write([]byte("GET /stream HTTP/1.1\r\nHost: web\r\n\r\n")); err != nil {
				t.Fatal(err)
			}
			if tc.sendHead {
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode != 200 {
					t.Fatalf("status %d", resp.StatusCode)
				}
			}
			<-arrived
			c.Close() // the client goes away

			select {
			case <-upstreamDone:
			case <-time.After(10 * time.Second):
				t.Fatal("the upstream connection stayed open after the client went away")
			}
			tg := p.services["web"].active.Load().targets[0]
			waitUntil(t, "the upstream connection is dropped, not pooled", func() bool {
				tg.mu.Lock()
				defer tg.mu.Unlock()
				return len(tg.all) == 0 && len(tg.idle) == 0
			})
		})
	}
}

// TestTrailersForwarded: request trailers reach the upstream, and response
// trailers (announced or not) reach the client, after the body.
func TestTrailersForwarded(t *testing.T) {
	t.Parallel()
	be := newBackend(t, "blue", 0)
	p, addr := startProxy(t, "")
	if err := p.SetService(ctx, ServiceSpec{Name: "web", Targets: []string{be.addr}}); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest("POST", "http://"+addr+"/trailers", io.MultiReader(strings.NewReader("chunked "), strings.NewReader("body")))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = -1
	req.Trailer = http.Header{"X-Client-Trailer": {"from-client"}}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), "chunked body"; got != want {
		t.Errorf("body = %q, want %q", got, want)
	}
	if got, want := resp.Trailer.Get("X-Echo-Trailer"), "from-client"; got != want {
		t.Errorf("announced trailer X-Echo-Trailer = %q, want %q (trailers %v)", got, want, resp.Trailer)
	}
	if got, want := resp.Trailer.Get("X-Unannounced"), "late"; got != want {
		t.Errorf("unannounced trailer X-Unannounced = %q, want %q (trailers %v)", got, want, resp.Trailer)
	}
}
