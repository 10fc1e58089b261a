package server_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cutover/cutover/examples"
	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/deploy"
	"github.com/cutover/cutover/internal/gitx"
	"github.com/cutover/cutover/internal/server"
	"github.com/cutover/cutover/internal/store/sqlite"
	"github.com/cutover/cutover/internal/testutil"
)

// Knobs of the crash harness. The windows are short so that a trial is a
// few seconds and every step of an operation is wide enough to be hit.
const (
	chaosTrials        = 6                     // per proxy mode; CUTOVER_CHAOS_TRIALS overrides
	chaosVerify        = time.Second           // verification window of good releases
	chaosFailingVerify = 3 * time.Second       // of releases that fail it ("after" fails 1s after the first hit)
	chaosInvestigate   = time.Second           // investigate_for: how soon a failed colour is reverted
	chaosSettle        = 30 * time.Second      // how long recovery may take to settle an environment
	chaosLoadWorkers   = 3                     // keep-alive clients of the load generator
	chaosLoadInterval  = 10 * time.Millisecond // between two requests of one client
	chaosTick          = time.Second           // the server's default lifecycle tick
)

// chaosOp is an operation a trial interrupts.
type chaosOp string

const (
	opDeploy   chaosOp = "deploy"
	opRollback chaosOp = "rollback"
	opConfirm  chaosOp = "confirm"
	opRevert   chaosOp = "revert"
)

var chaosOps = []chaosOp{opDeploy, opRollback, opConfirm, opRevert}

// chaosSteps are the steps an operation passes through, in order: a kill
// "at a step" happens when the deployment is first seen at or after it.
var chaosSteps = map[chaosOp][]core.Step{
	opDeploy:   {core.StepGates, core.StepBuild, core.StepQueued, core.StepLock, core.StepMigrate, core.StepStart, core.StepHealth, core.StepSmoke, core.StepSwitch, core.StepVerify, core.StepLive},
	opRollback: {core.StepQueued, core.StepLock, core.StepStart, core.StepHealth, core.StepSmoke, core.StepSwitch, core.StepVerify, core.StepLive},
	opConfirm:  {core.StepQueued, core.StepStart},
	opRevert:   {core.StepStart},
}

// stepOrder ranks steps in the order a deployment passes through them.
var stepOrder = func() map[core.Step]int {
	m := map[core.Step]int{}
	for i, s := range []core.Step{core.StepGates, core.StepBuild, core.StepQueued, core.StepLock, core.StepMigrate, core.StepStart,
		core.StepHealth, core.StepSmoke, core.StepSwitch, core.StepVerify, core.StepLive, core.StepSwitchBack, core.StepDone} {
		m[s] = i
	}
	return m
}()

// TestServerChaos SIGKILLs `cutover server` at random points of random
// operations (a deploy, a rollback, a confirm, the revert of a failed
// colour), restarts it on the same data dir and checks after each trial
// that recovery kept the invariants: no orphan process, no verified
// release rolled back, exactly the live release serving, and, with the
// proxy in its own process, no failed request at all. It runs with the
// embedded proxy and with a separate one. The seed is logged; set
// CUTOVER_CHAOS_SEED to replay its choices, CUTOVER_CHAOS_TRIALS for more.
func TestServerChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts real servers")
	}
	t.Parallel()
	trials := chaosTrials
	if s := os.Getenv("CUTOVER_CHAOS_TRIALS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("CUTOVER_CHAOS_TRIALS=%q: want a positive number", s)
		}
		trials = n
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CUTOVER_CHAOS_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("CUTOVER_CHAOS_SEED=%q: want an unsigned number", s)
		}
		seed = n
	}
	t.Logf("seed %d: replay its choices with CUTOVER_CHAOS_SEED=%d", seed, seed)
	bin := cutoverBin(t)
	for i, mode := range []string{"embedded", "separate-proxy"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			c := newChaos(t, bin, i == 1, rand.New(rand.NewPCG(seed, uint64(i))))
			for n := range trials {
				c.trial(n)
			}
			c.report(seed, trials)
		})
	}
}

// chaos is one proxy mode's run: a repository, a data dir and the server
// that is killed and restarted on it.
type chaos struct {
	t        *testing.T
	rng      *rand.Rand
	bin      string
	data     string
	staging  string
	separate bool
	extra    []string // server flags
	e        *env
	opts     examples.HelloOptions
	p        *proc
	dead     *proc // the server killed last, for its log
	n        int   // versions committed
	versions map[string]string
	// deploySpan is how long an uninterrupted deploy took: the range of
	// random delays before a kill during one.
	deploySpan time.Duration

	kills              map[string]int // by "op at step when killed"
	byOp, byTrigger    map[string]int
	requests, failures int64
	strays             int // processes the killed server left that recovery stopped
	atLive             int // deployments killed at step live (invariant 2 exercised)
}

func newChaos(t *testing.T, bin string, separate bool, rng *rand.Rand) *chaos {
	t.Helper()
	dir := t.TempDir()
	c := &chaos{t: t, rng: rng, bin: bin, data: filepath.Join(dir, "data"), staging: testutil.ListenAddr(t), separate: separate,
		versions: map[string]string{}, kills: map[string]int{}, byOp: map[string]int{}, byTrigger: map[string]int{}}
	c.e = &env{t: t, repo: filepath.Join(dir, "repo")}
	c.opts = examples.HelloOptions{StagingListen: c.staging, ProductionListen: testutil.ListenAddr(t),
		Verify: chaosVerify, StandbyFor: time.Hour, InvestigateFor: chaosInvestigate}
	if err := os.MkdirAll(c.e.repo, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := gitx.Init(context.Background(), c.e.repo); err != nil {
		t.Fatal(err)
	}
	c.commit("")
	// Registered first so it runs last, once every server is dead and
	// cannot restart what it stops.
	t.Cleanup(func() { stopAllIn(t, c.data) })
	if separate {
		c.extra = []string{"--proxy-admin", startProxy(t, bin, dir, c.staging)}
	}
	c.p = startServer(t, bin, c.data, c.extra...)
	if code := c.p.call("POST", "/api/v1/apps", map[string]string{"name": "hello", "repo": c.e.repo}, nil); code != 201 {
		t.Fatalf("add app: %d\n%s", code, c.p.log.String())
	}
	// Two releases, so that a rollback has somewhere to go and the
	// standby colour something to confirm.
	c.run(c.p.deploy("staging"), core.StateSucceeded)
	c.commit("")
	began := time.Now()
	c.run(c.p.deploy("staging"), core.StateSucceeded)
	c.deploySpan = time.Since(began) * 5 / 4
	c.servesLive("after setup", c.settle())
	return c
}

// commit writes the next version of the example app ("after": it fails
// verification) and commits it.
func (c *chaos) commit(broken string) {
	c.t.Helper()
	opts := c.opts
	if broken != "" {
		opts.Verify = chaosFailingVerify
	}
	if err := examples.WriteHello(c.e.repo, opts); err != nil {
		c.t.Fatal(err)
	}
	c.n++
	v := "v" + strconv.Itoa(c.n)
	c.versions[c.e.version(v, broken)] = v
}

// run waits for a deployment the harness did not interrupt and checks how it ended.
func (c *chaos) run(d core.Deployment, want core.DeploymentState) core.Deployment {
	c.t.Helper()
	got := c.p.waitFor(d.ID, func(d core.Deployment) bool { return d.State.Terminal() }, 60*time.Second)
	if got.State != want {
		c.t.Fatalf("deployment %d (%s) ended %s %q, want %s\n%s", got.ID, got.Kind, got.State, got.Reason, want, c.p.log.String())
	}
	return got
}

func (c *chaos) trial(n int) {
	t := c.t
	op := chaosOps[c.rng.IntN(len(chaosOps))]
	var failing core.Deployment
	if op == opRevert {
		// A release that fails verification: traffic goes back and its
		// colour is kept failed until investigate_for is over.
		c.commit("after")
		failing = c.run(c.p.deploy("staging"), core.StateRolledBack)
		// The switch-back locked staging; the harness goes on deploying.
		if code := c.p.call("DELETE", "/api/v1/apps/hello/envs/staging/lock", nil, nil); code != 200 {
			t.Fatalf("unlock after the switch-back: %d", code)
		}
	}
	var ld *load
	if c.separate {
		ld = startLoad(t, c.staging)
	}
	began := time.Now()
	id, span := c.launch(&op)

	// The kill: after a random delay within the operation, or when it
	// reaches a random step.
	var trigger string
	if c.rng.IntN(2) == 0 {
		delay := time.Duration(c.rng.Int64N(int64(span)))
		trigger = "after " + delay.Round(time.Millisecond).String()
		c.byTrigger["delay"]++
		time.Sleep(time.Until(began.Add(delay))) // the experiment: kill at this moment
	} else {
		steps := chaosSteps[op]
		at := steps[c.rng.IntN(len(steps))]
		trigger = "at step " + string(at)
		c.byTrigger["step"]++
		c.untilStep(id, failing.ID, at)
	}
	c.p.kill()
	c.dead = c.p

	// What the store says at the moment of the kill.
	target, unfinished := c.persisted(id, failing.ID)
	where := "before it was recorded"
	if target.ID != 0 {
		where = string(target.Step)
		if target.State.Terminal() {
			where = "after it ended"
		}
	}
	c.kills[fmt.Sprintf("%s %s", op, where)]++
	c.byOp[string(op)]++
	t.Logf("trial %d: %s (deployment %d) killed %s, %s", n, op, target.ID, trigger, where)

	c.p = startServer(t, c.bin, c.data, c.extra...)
	for _, d := range unfinished {
		c.p.waitFor(d.ID, func(d core.Deployment) bool { return d.State.Terminal() }, chaosSettle)
	}
	if target.ID != 0 {
		c.p.waitFor(target.ID, func(d core.Deployment) bool { return d.State.Terminal() }, chaosSettle)
	}
	live := c.settle()
	if !c.separate {
		// The embedded proxy died with the server: count from here on.
		ld = startLoad(t, c.staging)
	}

	// Invariant 2: a deployment whose verification had passed and was
	// recorded (step live) is never rolled back by recovery.
	for _, d := range unfinished {
		if d.Step != core.StepLive {
			continue
		}
		c.atLive++
		if got := c.p.deployment(d.ID); got.State != core.StateSucceeded {
			c.fail("trial %d (%s %s): deployment %d was at step live when the server was killed and ended %s %q, want succeeded",
				n, op, trigger, d.ID, got.State, got.Reason)
		}
	}
	// Invariant 1: every example-app process is an instance of a slot.
	c.noOrphans(n)
	// Invariant 3: the live release, and only it, answers.
	c.servesLive(fmt.Sprintf("trial %d (%s %s)", n, op, trigger), live)
	// Invariant 4: no request failed (with the embedded proxy, since recovery).
	c.waitFor("the load generator to make 30 requests", 10*time.Second, func() bool {
		return ld.requests.Load() >= 30
	}, func() string { return fmt.Sprintf("the load generator made %d requests in 10s", ld.requests.Load()) })
	reqs, fails, samples := ld.halt()
	c.requests += reqs
	c.failures += fails
	if fails > 0 {
		c.fail("trial %d (%s %s): %d of %d requests to %s failed, first: %s", n, op, trigger, fails, reqs, c.staging, strings.Join(samples, "; "))
	}
}

// launch starts an operation and returns its deployment (0 for a revert,
// which the server's tick records itself) and the range of delays that
// covers it. A rollback with nowhere to go becomes a deploy.
func (c *chaos) launch(op *chaosOp) (int64, time.Duration) {
	t := c.t
	switch *op {
	case opRollback:
		var d core.Deployment
		code := c.p.call("POST", "/api/v1/apps/hello/envs/staging/rollback", map[string]any{}, &d)
		if code == 202 || code == 200 {
			return d.ID, chaosVerify + 500*time.Millisecond
		}
		if code/100 != 4 {
			t.Fatalf("rollback: %d\n%s", code, c.p.log.String())
		}
		*op = opDeploy // no earlier release left: deploy instead
		return c.launch(op)
	case opConfirm:
		var d core.Deployment
		if code := c.p.call("POST", "/api/v1/apps/hello/envs/staging/confirm", nil, &d); code != 202 {
			t.Fatalf("confirm: %d\n%s", code, c.p.log.String())
		}
		return d.ID, 500 * time.Millisecond
	case opRevert:
		// The tick starts it between investigate_for and a tick later; it
		// takes about half a second.
		return 0, chaosInvestigate + chaosTick + 500*time.Millisecond
	default:
		c.commit("")
		return c.p.deploy("staging").ID, c.deploySpan
	}
}

// revertAfter returns the revert deployment recorded after deployment id, if any.
func (c *chaos) revertAfter(id int64) core.Deployment {
	var ds []core.Deployment
	if code := c.p.call("GET", "/api/v1/apps/hello/deployments?env=staging&limit=20", nil, &ds); code != 200 {
		c.t.Fatalf("history: %d", code)
	}
	for _, d := range ds {
		if d.ID > id && d.Kind == core.KindRevert {
			return d
		}
	}
	return core.Deployment{}
}

// untilStep polls the operation's deployment until it is at step at or
// later, or has ended. For a revert, id is 0 and the revert recorded
// after the failing deployment is looked for.
func (c *chaos) untilStep(id, failing int64, at core.Step) {
	var d core.Deployment
	c.waitFor(fmt.Sprintf("the deployment to reach %s", at), chaosSettle, func() bool {
		if id != 0 {
			d = c.p.deployment(id)
		} else {
			d = c.revertAfter(failing)
		}
		return d.ID != 0 && (d.State.Terminal() || stepOrder[d.Step] >= stepOrder[at])
	}, func() string {
		return fmt.Sprintf("deployment %d never reached %s (at %s/%s)", d.ID, at, d.State, d.Step)
	})
}

// persisted reads the store of the dead server: the operation's deployment
// (for a revert, the one recorded after failing, if any) and every
// deployment left unfinished, with the step each was at.
func (c *chaos) persisted(id, failing int64) (target core.Deployment, unfinished []core.Deployment) {
	t := c.t
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(c.data, server.DatabaseFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if unfinished, err = st.UnfinishedDeployments(ctx); err != nil {
		t.Fatal(err)
	}
	ds, err := st.ListDeployments(ctx, "hello", "staging", 0, 20)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if (id != 0 && d.ID == id) || (id == 0 && d.ID > failing && d.Kind == core.KindRevert) {
			return d, unfinished
		}
	}
	return core.Deployment{}, unfinished
}

// settle waits until the environment is at rest: nothing unfinished, no
// colour starting, no failed colour waiting for its revert, nothing
// degraded. It returns the live release.
func (c *chaos) settle() core.Release {
	var live core.Release
	busy := ""
	c.waitFor("the environment to settle", chaosSettle, func() bool {
		st := c.status()
		busy = ""
		switch {
		case len(st.Unfinished) > 0:
			busy = fmt.Sprintf("deployment %d is %s at %s", st.Unfinished[0].ID, st.Unfinished[0].State, st.Unfinished[0].Step)
		case st.Degraded != "":
			busy = "degraded: " + st.Degraded
		case st.Live == nil:
			busy = "nothing is live"
		}
		for _, sl := range st.State.Slots {
			if sl.State == core.SlotStarting || sl.State == core.SlotFailed {
				busy = fmt.Sprintf("%s is %s", sl.Colour, sl.State)
			}
		}
		if busy == "" {
			live = *st.Live
		}
		return busy == ""
	}, func() string { return fmt.Sprintf("the environment did not settle in %s: %s", chaosSettle, busy) })
	return live
}

// servesLive checks that GET / on the environment's address answers with
// the live release's version, on a few new connections.
func (c *chaos) servesLive(when string, live core.Release) {
	want := "hello from " + c.versions[live.SHA]
	for range 5 {
		if code, body := get(c.t, c.staging); code != 200 || body != want {
			c.fail("%s: GET %s = %d %q, want 200 %q (live release %s)", when, c.staging, code, body, want, live.Label())
		}
	}
}

func (c *chaos) status() deploy.EnvStatus { return c.p.status("staging") }

// noOrphans waits until every example-app process under the data dir is an
// instance recorded in a slot: stopping is asynchronous.
func (c *chaos) noOrphans(n int) {
	first := true
	var orphans []int
	c.waitFor("every example-app process to be an instance of a slot", 10*time.Second, func() bool {
		known := map[int]bool{}
		for _, sl := range c.status().State.Slots {
			for _, in := range sl.Instances {
				if pid, _ := strconv.Atoi(in.Data["pid"]); pid > 0 {
					known[pid] = true
				}
			}
		}
		orphans = orphans[:0]
		for _, pid := range helloPIDs(c.t, c.data) {
			if !known[pid] {
				orphans = append(orphans, pid)
			}
		}
		if first {
			c.strays += len(orphans)
			first = false
		}
		return len(orphans) == 0
	}, func() string {
		var cmds []string
		for _, pid := range orphans {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
			cmds = append(cmds, fmt.Sprintf("%d %q in %s", pid, strings.ReplaceAll(string(b), "\x00", " "), cwd))
		}
		return fmt.Sprintf("trial %d: orphan processes after recovery: %s", n, strings.Join(cmds, "; "))
	})
}

// fail ends the mode's run with both servers' logs.
func (c *chaos) fail(format string, args ...any) {
	c.t.Helper()
	c.t.Fatal(fmt.Sprintf(format, args...) + c.logs())
}

// waitFor is testutil.WaitFor that, on a failure, also logs what last says
// and both servers' logs.
func (c *chaos) waitFor(what string, limit time.Duration, cond func() bool, last func() string) {
	c.t.Helper()
	waitShowing(c.t, what, limit, cond, func() string { return last() + c.logs() })
}

// logs returns the tails of both servers' logs.
func (c *chaos) logs() string {
	msg := ""
	if c.dead != nil {
		msg += "\n--- log of the killed server ---\n" + tail(c.dead.log.String(), 120)
	}
	msg += "\n--- log of the restarted server ---\n" + tail(c.p.log.String(), 200)
	return msg
}

func tail(s string, lines int) string {
	ls := strings.Split(s, "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

func (c *chaos) report(seed uint64, trials int) {
	counted := "for the whole of each trial"
	if !c.separate {
		counted = "after recovery only"
	}
	c.t.Logf("seed %d, %d trials; kills by operation: %s; by trigger: %s", seed, trials, figures(c.byOp), figures(c.byTrigger))
	c.t.Logf("kills by operation and step at the kill: %s; deployments killed at step live: %d", figures(c.kills), c.atLive)
	c.t.Logf("requests: %d, failed: %d (%s); orphans left: 0; stray processes of the killed server stopped by recovery: %d",
		c.requests, c.failures, counted, c.strays)
}

func figures(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(out, ", ")
}

// load sends GET / to a listen address from a few keep-alive clients and
// counts the answers that are not 200 and the connection errors.
type load struct {
	stop               chan struct{}
	once               sync.Once
	wg                 sync.WaitGroup
	tr                 *http.Transport
	requests, failures atomic.Int64
	mu                 sync.Mutex
	samples            []string
}

func startLoad(t *testing.T, addr string) *load {
	l := &load{stop: make(chan struct{}), tr: &http.Transport{MaxIdleConnsPerHost: chaosLoadWorkers}}
	t.Cleanup(func() { l.halt() }) // a trial that fails stops it too
	client := &http.Client{Transport: l.tr, Timeout: 10 * time.Second}
	for range chaosLoadWorkers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			pace := time.NewTicker(chaosLoadInterval)
			defer pace.Stop()
			for {
				select {
				case <-l.stop:
					return
				case <-pace.C:
				}
				l.requests.Add(1)
				resp, err := client.Get("http://" + addr + "/")
				if err != nil {
					l.failed(err.Error())
					continue
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch {
				case err != nil:
					l.failed("reading the body: " + err.Error())
				case resp.StatusCode != http.StatusOK:
					l.failed(resp.Status)
				}
			}
		}()
	}
	return l
}

func (l *load) failed(why string) {
	l.failures.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.samples) < 5 {
		l.samples = append(l.samples, time.Now().Format("15:04:05.000")+" "+why)
	}
}

// halt stops the clients, letting requests in flight finish, and returns the figures.
func (l *load) halt() (requests, failures int64, samples []string) {
	l.once.Do(func() {
		close(l.stop)
		l.wg.Wait()
		l.tr.CloseIdleConnections()
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.requests.Load(), l.failures.Load(), slices.Clone(l.samples)
}
