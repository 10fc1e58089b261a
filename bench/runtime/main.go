// Command runtime measures the Docker runtime against local processes in
// one run, side by side, on the hello example app:
//
//   - build: cold (a fresh data dir, a fresh registry and a new source
//     version: the main package is compiled and linked again and Docker
//     has no layer for the new binary; the Go build cache keeps the
//     standard library) and cached (a second commit with the same program:
//     Go's build cache and Docker's layer cache apply);
//   - a deploy's wall time, from the request to succeeded (verify window
//     1 ms for both), the part of it from the start step to the health gate
//     passing (the runtime's start of the instance: spawn or container
//     create+start, and the app's boot), and the rest: the overhead beyond
//     the start;
//   - rollback to the warm standby colour under a constant load through
//     the environment's proxy: request to switched, request to succeeded,
//     and the failed requests.
//
// Each repetition opens one server per runtime (fresh data dirs) and
// alternates them step by step, swapping which goes first every
// repetition; figures are medians with their range, and docker/process
// ratios. Without a reachable Docker engine it says so and measures
// processes only. Every container and image it creates (label
// cutover.owner=<installation>) is removed at the end of its repetition.
//
// Usage: go run ./bench/runtime [-reps 3] [-runs 3] [-workers 8]
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"time"

	"github.com/cutover/cutover/examples"
	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/demo"
	"github.com/cutover/cutover/internal/deploy"
	"github.com/cutover/cutover/internal/driver/docker"
	"github.com/cutover/cutover/internal/gitx"
	"github.com/cutover/cutover/internal/image"
	"github.com/cutover/cutover/internal/server"

	"github.com/cutover/cutover/bench/internal/measure"
)

const (
	procRT   = "process"
	dockerRT = "docker"
	verify   = time.Millisecond
)

func main() {
	reps := flag.Int("reps", 3, "repetitions (a fresh server per runtime each)")
	runs := flag.Int("runs", 3, "deploys and rollbacks per runtime per repetition")
	workers := flag.Int("workers", 8, "load workers per environment during the rollbacks")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *reps, *runs, *workers); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// samples are one figure's measurements per runtime.
type samples map[string][]time.Duration

func (s samples) add(rt string, d time.Duration) { s[rt] = append(s[rt], d) }

// results are every figure of the run, in print order.
type results struct {
	names   []string
	figures map[string]samples
	failed  map[string]int64
	total   map[string]int64
}

func (r *results) add(name, rt string, d time.Duration) {
	if r.figures[name] == nil {
		r.names = append(r.names, name)
		r.figures[name] = samples{}
	}
	r.figures[name].add(rt, d)
}

func run(ctx context.Context, reps, runs, workers int) error {
	if _, err := os.Stat("go.mod"); err != nil {
		return errors.New("run it from the repository root: go run ./bench/runtime")
	}
	rts := []string{procRT}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := docker.Available(pctx)
	cancel()
	if err != nil {
		fmt.Printf("docker: no engine reachable (%v): measuring processes only\n", err)
	} else {
		rts = append(rts, dockerRT)
	}
	res := &results{figures: map[string]samples{}, failed: map[string]int64{}, total: map[string]int64{}}
	t0 := time.Now()
	for rep := range reps {
		order := slices.Clone(rts)
		if rep%2 == 1 {
			slices.Reverse(order)
		}
		if err := repetition(ctx, rep, order, runs, workers, res); err != nil {
			return fmt.Errorf("repetition %d: %w", rep+1, err)
		}
	}
	fmt.Printf("\n%d repetitions x %d deploys and rollbacks per runtime, %s in all; median [min-max]\n\n", reps, runs, time.Since(t0).Round(time.Second))
	report(res, rts)
	return nil
}

// bed is one runtime's server and app.
type bed struct {
	rt       string
	dir      string
	repo     string
	staging  string
	srv      *server.Server
	svc      *deploy.Service
	shas     []string
	stopReg  func()
	owner    string
	lastSeen int64
}

func repetition(ctx context.Context, rep int, order []string, runs, workers int, res *results) (err error) {
	nonce := make([]byte, 4)
	_, _ = rand.Read(nonce)
	version := fmt.Sprintf("v%d-%s", rep+1, hex.EncodeToString(nonce))
	beds := make([]*bed, 0, len(order))
	defer func() {
		for _, b := range beds {
			if cerr := b.close(); cerr != nil && err == nil {
				err = cerr
			}
		}
	}()
	for _, rt := range order {
		b, err := open(ctx, rt, version)
		if err != nil {
			return err
		}
		beds = append(beds, b)
	}
	fmt.Printf("repetition %d (%s first; installations", rep+1, order[0])
	for _, b := range beds {
		fmt.Printf(" %s=%s", b.rt, b.owner)
	}
	fmt.Println("):")

	// Builds: cold, then a second commit with the same program.
	for _, b := range beds {
		t := time.Now()
		if _, err := b.svc.Build(ctx, "hello", b.shas[0], nil); err != nil {
			return fmt.Errorf("%s: cold build: %w", b.rt, err)
		}
		d := time.Since(t)
		res.add("build, cold", b.rt, d)
		fmt.Printf("  %-7s build cold   %8s\n", b.rt, d.Round(time.Millisecond))
	}
	for _, b := range beds {
		if err := os.WriteFile(filepath.Join(b.repo, "NOTES.md"), []byte("same program, another commit\n"), 0o644); err != nil {
			return err
		}
		sha, err := gitx.CommitAll(ctx, b.repo, "notes")
		if err != nil {
			return err
		}
		b.shas = append(b.shas, sha)
		t := time.Now()
		if _, err := b.svc.Build(ctx, "hello", sha, nil); err != nil {
			return fmt.Errorf("%s: cached build: %w", b.rt, err)
		}
		d := time.Since(t)
		res.add("build, cached", b.rt, d)
		fmt.Printf("  %-7s build cached %8s\n", b.rt, d.Round(time.Millisecond))
	}

	// Deploys: the first one of each (no colour yet) is not timed.
	for _, b := range beds {
		if _, err := b.deploy(ctx, 0, b.shas[0]); err != nil {
			return err
		}
	}
	for i := range runs {
		for _, b := range beds {
			st, err := b.deploy(ctx, i+1, b.shas[(i+1)%2])
			if err != nil {
				return err
			}
			start := st.at(core.StepStart)
			healthy := st.at(core.StepSmoke)
			if healthy.IsZero() {
				healthy = st.at(core.StepSwitch)
			}
			boot := healthy.Sub(start)
			res.add("deploy: request -> succeeded", b.rt, st.done.Sub(st.t0))
			res.add("deploy: start -> healthy", b.rt, boot)
			res.add("deploy: overhead beyond start", b.rt, st.done.Sub(st.t0)-boot)
			res.add("  of which migrate step", b.rt, st.at(core.StepStart).Sub(st.at(core.StepMigrate)))
			res.add("  of which smoke+switch+verify+live", b.rt, st.done.Sub(healthy))
			res.add("deploy: request -> switched", b.rt, st.switched.Sub(st.t0))
		}
	}

	// Rollbacks to the warm standby colour, under load on every bed (the
	// deploys that make the standby warm are under that load too).
	loads := map[string]*demo.Load{}
	for _, b := range beds {
		loads[b.rt] = demo.StartLoad("http://"+b.staging+"/", workers)
	}
	stopLoads := func() {
		time.Sleep(200 * time.Millisecond)
		for rt, l := range loads {
			l.Stop()
			res.failed[rt] += l.Failed()
			res.total[rt] += l.OK.Load() + l.Failed()
		}
		loads = nil
	}
	defer func() {
		if loads != nil {
			stopLoads()
		}
	}()
	time.Sleep(300 * time.Millisecond) // the load's connections are up
	for i := range runs {
		// A new release first, so that the rollback's target, the
		// previous release, is warm in the standby colour (a second
		// rollback in a row would go one release further back, to a
		// colour that is stopped: a cold start).
		for _, b := range beds {
			if _, err := b.deploy(ctx, runs+1+i, b.shas[i%2]); err != nil {
				return err
			}
		}
		for _, b := range beds {
			st, err := b.rollback(ctx)
			if err != nil {
				return err
			}
			if !st.at(core.StepStart).IsZero() {
				return fmt.Errorf("%s: rollback started instances: its target was not warm:%s", b.rt, st)
			}
			res.add("rollback under load: request -> switched", b.rt, st.switched.Sub(st.t0))
			res.add("rollback under load: request -> succeeded", b.rt, st.done.Sub(st.t0))
			if os.Getenv("BENCH_STEPS") != "" {
				fmt.Printf("  %s rollback steps: %s\n", b.rt, st.String())
			}
			if h, sw := st.at(core.StepHealth), st.at(core.StepSwitch); !h.IsZero() && !sw.IsZero() {
				res.add("  of which health+smoke of the warm colour", b.rt, sw.Sub(h))
			}
		}
	}
	stopLoads()
	for _, b := range beds {
		fmt.Printf("  %-7s deploys p50 %s, rollbacks p50 %s; load so far %d requests, %d failed\n", b.rt,
			measure.Percentile(res.figures["deploy: request -> succeeded"][b.rt], 50), measure.Percentile(res.figures["rollback under load: request -> succeeded"][b.rt], 50),
			res.total[b.rt], res.failed[b.rt])
	}
	return nil
}

// open writes the hello app for one runtime and opens a server on a fresh
// data dir (and, for Docker, a fresh in-process registry).
func open(ctx context.Context, rt, version string) (*bed, error) {
	dir, err := os.MkdirTemp("", "cutover-bench-"+rt+"-")
	if err != nil {
		return nil, err
	}
	b := &bed{rt: rt, dir: dir, repo: filepath.Join(dir, "repo"), staging: measure.FreeAddr()}
	opts := examples.HelloOptions{StagingListen: b.staging, ProductionListen: measure.FreeAddr(), Verify: verify,
		StandbyFor: time.Hour, InvestigateFor: time.Hour, Docker: rt == dockerRT}
	if err := examples.WriteHello(b.repo, opts); err != nil {
		return b, err
	}
	if err := os.WriteFile(filepath.Join(b.repo, "version.go"), []byte("package main\n\nconst Version = \""+version+"\"\n"), 0o644); err != nil {
		return b, err
	}
	if err := gitx.Init(ctx, b.repo); err != nil {
		return b, err
	}
	sha, err := gitx.CommitAll(ctx, b.repo, version)
	if err != nil {
		return b, err
	}
	b.shas = []string{sha}
	cfg := server.Config{DataDir: filepath.Join(dir, "data"), Listen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)}
	if rt == dockerRT {
		reg, stop, err := image.Serve(ctx, "")
		if err != nil {
			return b, err
		}
		b.stopReg = stop
		cfg.Docker.Registry = image.Registry{Repo: reg + "/bench-" + version}
	} else {
		cfg.Docker.Off = true
	}
	if b.srv, err = server.Open(ctx, cfg); err != nil {
		return b, err
	}
	b.svc, b.owner = b.srv.Deploy, b.srv.Installation()
	if _, err := b.svc.AddApp(ctx, "hello", b.repo); err != nil {
		return b, err
	}
	return b, nil
}

// close stops the bed's instances, closes its server and, for Docker,
// removes every container and image of its installation.
func (b *bed) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var errs []error
	if b.srv != nil {
		errs = append(errs, b.srv.StopAll(ctx))
		errs = append(errs, b.srv.Close())
	}
	if b.rt == dockerRT && b.owner != "" {
		// After the server is closed, so that nothing it was doing (a
		// restart of an instance StopAll stopped) creates a container
		// behind the cleanup; twice, for a create the engine finished late.
		d, err := docker.New(ctx, docker.Config{Owner: b.owner, Logger: slog.New(slog.DiscardHandler)})
		for i := 0; err == nil && i < 2; i++ {
			if i > 0 {
				time.Sleep(time.Second)
			}
			var left []core.Instance
			if left, err = d.List(ctx); err == nil && len(left) > 0 {
				err = d.Stop(ctx, left, time.Second)
			}
			if err == nil {
				_, err = d.Prune(ctx, "hello", func(string) bool { return false })
			}
		}
		if d != nil {
			d.Close()
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("docker cleanup of installation %s: %w (docker ps -a --filter label=%s=%s)", b.owner, err, docker.LabelOwner, b.owner))
		}
	}
	if b.stopReg != nil {
		b.stopReg()
	}
	errs = append(errs, os.RemoveAll(b.dir))
	return errors.Join(errs...)
}

// timeline is one deployment's times: the request, its steps (as stored
// in its events), the switch and the end.
type timeline struct {
	t0, switched, done time.Time
	steps              map[core.Step]time.Time
}

func (t timeline) at(s core.Step) time.Time { return t.steps[s] }

func (t timeline) String() string {
	type st struct {
		s  core.Step
		at time.Time
	}
	var l []st
	for s, at := range t.steps {
		l = append(l, st{s, at})
	}
	slices.SortFunc(l, func(a, b st) int { return a.at.Compare(b.at) })
	out := ""
	for _, x := range l {
		out += fmt.Sprintf(" %s@+%s", x.s, x.at.Sub(t.t0).Round(time.Millisecond))
	}
	return out + fmt.Sprintf(" switched@+%s done@+%s", t.switched.Sub(t.t0).Round(time.Millisecond), t.done.Sub(t.t0).Round(time.Millisecond))
}

func (b *bed) deploy(ctx context.Context, i int, sha string) (timeline, error) {
	// A config change makes each deploy a new release.
	if _, err := b.svc.SetConfig(ctx, "hello", "staging", map[string]string{"RUN": fmt.Sprint(i)}, nil); err != nil {
		return timeline{}, err
	}
	if err := b.skipEvents(ctx); err != nil {
		return timeline{}, err
	}
	t0 := time.Now()
	d, err := b.svc.Deploy(ctx, deploy.DeployRequest{App: "hello", Env: "staging", Ref: sha})
	if err != nil {
		return timeline{}, fmt.Errorf("%s: deploy: %w", b.rt, err)
	}
	return b.follow(ctx, d, t0)
}

func (b *bed) rollback(ctx context.Context) (timeline, error) {
	if err := b.skipEvents(ctx); err != nil {
		return timeline{}, err
	}
	t0 := time.Now()
	d, err := b.svc.Rollback(ctx, deploy.RollbackRequest{App: "hello", Env: "staging"})
	if err != nil {
		return timeline{}, fmt.Errorf("%s: rollback: %w", b.rt, err)
	}
	return b.follow(ctx, d, t0)
}

// skipEvents moves past the app's events so far.
func (b *bed) skipEvents(ctx context.Context) error {
	for {
		evs, err := b.svc.Events(ctx, "hello", b.lastSeen, 1000)
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			return nil
		}
		b.lastSeen = evs[len(evs)-1].ID
	}
}

// follow waits for d to end and reads its timeline from its events.
func (b *bed) follow(ctx context.Context, d core.Deployment, t0 time.Time) (timeline, error) {
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	got, err := b.svc.Wait(wctx, d.ID)
	if err != nil || got.State != core.StateSucceeded {
		return timeline{}, fmt.Errorf("%s: deployment %d: %s %s %v", b.rt, d.ID, got.State, got.Reason, err)
	}
	tl := timeline{t0: t0, steps: map[core.Step]time.Time{}}
	for {
		evs, err := b.svc.Events(ctx, "hello", b.lastSeen, 1000)
		if err != nil {
			return tl, err
		}
		if len(evs) == 0 {
			break
		}
		for _, e := range evs {
			b.lastSeen = e.ID
			if e.DeploymentID != d.ID {
				continue
			}
			switch e.Type {
			case core.EventDeployStep:
				if _, ok := tl.steps[e.Step]; !ok {
					tl.steps[e.Step] = e.Time
				}
			case core.EventDeploySwitched:
				tl.switched = e.Time
			case core.EventDeploySucceeded:
				tl.done = e.Time
			}
		}
	}
	if tl.done.IsZero() || tl.switched.IsZero() || tl.steps[core.StepStart].IsZero() && d.Kind != core.KindRollback {
		return tl, fmt.Errorf("%s: deployment %d: events incomplete: %+v", b.rt, d.ID, tl)
	}
	return tl, nil
}

func report(res *results, rts []string) {
	both := len(rts) == 2
	head := "| figure | process | "
	sep := "| --- | --- | "
	if both {
		head += "docker | docker / process (ratio of medians [range of same-repetition pairs]) |"
		sep += "--- | --- |"
	}
	fmt.Println(head)
	fmt.Println(sep)
	for _, name := range res.names {
		s := res.figures[name]
		line := fmt.Sprintf("| %s | %s | ", name, summary(s[procRT]))
		if both {
			line += fmt.Sprintf("%s | %s |", summary(s[dockerRT]), ratio(s[dockerRT], s[procRT]))
		}
		fmt.Println(line)
	}
	for _, rt := range rts {
		fmt.Printf("load during the rollbacks (%s): %d requests, %d failed\n", rt, res.total[rt], res.failed[rt])
	}
}

func summary(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	return fmt.Sprintf("%s [%s-%s]", ms(measure.Percentile(ds, 50)), ms(measure.Percentile(ds, 0)), ms(measure.Percentile(ds, 100)))
}

// ratio is median(a)/median(b), with the range of the pairwise ratios
// (the i-th sample of each was taken next to each other).
func ratio(a, b []time.Duration) string {
	if len(a) == 0 || len(b) == 0 || measure.Percentile(b, 50) <= 0 {
		return "-"
	}
	var rs []float64
	for i := range min(len(a), len(b)) {
		if b[i] > 0 {
			rs = append(rs, float64(a[i])/float64(b[i]))
		}
	}
	slices.Sort(rs)
	r := float64(measure.Percentile(a, 50)) / float64(measure.Percentile(b, 50))
	if len(rs) == 0 {
		return fmt.Sprintf("**%.2f**", r)
	}
	return fmt.Sprintf("**%.2f** [%.2f-%.2f]", r, rs[0], rs[len(rs)-1])
}

func ms(d time.Duration) string {
	f := float64(d) / float64(time.Millisecond)
	switch {
	case f >= 100:
		return fmt.Sprintf("%.0f ms", f)
	case f >= 10:
		return fmt.Sprintf("%.1f ms", f)
	}
	return fmt.Sprintf("%.2f ms", f)
}
