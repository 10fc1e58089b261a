// Package demo runs cutover's whole release path on the embedded default
// (git, local processes, SQLite, the built-in proxy) in a throwaway
// directory: `cutover demo`. With Runtime "docker" the app runs as
// containers on the local Docker engine (named as two hosts), its images
// pushed to an in-process registry; `cutover demo --runtime docker`.
package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cutover/cutover/examples"
	"github.com/cutover/cutover/internal/client"
	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/deploy"
	"github.com/cutover/cutover/internal/driver/docker"
	"github.com/cutover/cutover/internal/gitx"
	"github.com/cutover/cutover/internal/image"
	"github.com/cutover/cutover/internal/notify"
	"github.com/cutover/cutover/internal/server"
)

// Options tune the demo.
type Options struct {
	Out  io.Writer
	Keep bool // keep the throwaway directory for inspection
	// Workers is the number of load workers against production.
	Workers int
	// StagingListen and ProductionListen are the environments' addresses;
	// when empty, free loopback ports are picked.
	StagingListen, ProductionListen string
	// Runtime runs the app as local processes (RuntimeProcess, the
	// default when empty) or as containers on the local Docker engine
	// (RuntimeDocker).
	Runtime string
}

// The runtimes the demo runs the app on.
const (
	RuntimeProcess = core.RuntimeProcess
	RuntimeDocker  = core.RuntimeDocker
)

// Runtimes are the accepted values of Options.Runtime.
var Runtimes = []string{RuntimeProcess, RuntimeDocker}

// CheckRuntime refuses a runtime the demo does not know, naming the ones
// it accepts.
func CheckRuntime(rt string) error {
	switch rt {
	case "", RuntimeProcess, RuntimeDocker:
		return nil
	}
	return fmt.Errorf("runtime %q: want %s", rt, strings.Join(Runtimes, " or "))
}

// dockerHosts are the names the demo gives the local engine: production
// runs on both.
var dockerHosts = []string{"host-a", "host-b"}

// dockerReachable checks that the local engine answers, before the demo
// creates anything.
func dockerReachable(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := docker.Available(ctx); err != nil {
		return fmt.Errorf("cutover demo --runtime docker: no Docker engine reachable at %s: %v; start Docker or run the demo without --runtime", docker.LocalAddress(), err)
	}
	return nil
}

// Result is what the demo measured.
type Result struct {
	Requests int64
	Failed   int64
	Versions map[string]int64
	// Image is the first build's image reference (REPO/hello@sha256:…);
	// empty on the process runtime.
	Image string
	// Removed counts the containers and images removed from the engine at
	// the end (docker runtime).
	Removed int
}

const appName = "hello"

// Run executes the demo and returns an error when any step does not end as
// expected or the load saw a failed request.
func Run(ctx context.Context, opt Options) (result Result, retErr error) {
	if opt.Out == nil {
		opt.Out = io.Discard
	}
	if err := CheckRuntime(opt.Runtime); err != nil {
		return Result{}, err
	}
	onDocker := opt.Runtime == RuntimeDocker
	if onDocker {
		if err := dockerReachable(ctx); err != nil {
			return Result{}, err
		}
	}
	if opt.Workers <= 0 {
		opt.Workers = 8
	}
	// Events are printed from another goroutine: serialise writes.
	out := &syncWriter{w: opt.Out}
	dir, err := os.MkdirTemp("", "cutover-demo-")
	if err != nil {
		return Result{}, err
	}
	if opt.Keep {
		fmt.Fprintf(out, "keeping the demo directory %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	repo := filepath.Join(dir, "repo")
	stagingAddr, prodAddr := opt.StagingListen, opt.ProductionListen
	if stagingAddr == "" || prodAddr == "" {
		if stagingAddr, prodAddr, err = freeAddrs(); err != nil {
			return Result{}, err
		}
	}
	d := &demo{out: out, repo: repo, start: time.Now(), docker: onDocker}
	hello := examples.HelloOptions{StagingListen: stagingAddr, ProductionListen: prodAddr, Verify: 1500 * time.Millisecond}
	var dockerCfg server.Docker
	var imageRepo string
	if onDocker {
		// The images go to a registry of the demo's own, under a
		// repository of this run's own.
		reg, stopRegistry, err := image.Serve(ctx, "")
		if err != nil {
			return Result{}, err
		}
		defer stopRegistry()
		suffix := make([]byte, 4)
		_, _ = rand.Read(suffix)
		imageRepo = reg + "/demo-" + hex.EncodeToString(suffix)
		dockerCfg = server.Docker{Registry: image.Registry{Repo: imageRepo}}
		for _, h := range dockerHosts {
			dockerCfg.Hosts = append(dockerCfg.Hosts, docker.Host{Name: h, Address: docker.LocalAddress()})
		}
		// verify long enough for the broken release's errors (from 1 s
		// after its first request) to be seen through a published port.
		hello.Docker, hello.DockerHosts, hello.Verify = true, dockerHosts, 2*time.Second
		d.say("1. a git repository with the example app, its cutover.yml (runtime: docker) and a Dockerfile\n   (FROM scratch: the static binary alone) (%s)", repo)
	} else {
		d.say("1. a git repository with the example app and its cutover.yml (%s)", repo)
	}
	if err := examples.WriteHello(repo, hello); err != nil {
		return Result{}, err
	}
	if err := gitx.Init(ctx, repo); err != nil {
		return Result{}, err
	}
	if err := d.commit("v1: first release"); err != nil {
		return Result{}, err
	}

	srv, err := server.Open(ctx, server.Config{
		DataDir: filepath.Join(dir, "data"), Listen: "127.0.0.1:0",
		Logger: slog.New(slog.DiscardHandler), TickInterval: 200 * time.Millisecond,
		AllowPrivateNotify: true, // the demo's receiver is on loopback
		Docker:             dockerCfg,
	})
	if err != nil {
		return Result{}, err
	}
	defer srv.Close()
	defer func() {
		// The deploy machine first: it would replace the live instances
		// StopAll stops.
		srv.Deploy.Close()
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		defer cancel()
		stopErr := srv.StopAll(stopCtx)
		if !onDocker {
			return
		}
		// Leave nothing on the engine: the stopped containers and the
		// images of every commit.
		rmCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		n, err := srv.RemoveRuntimeLeftovers(rmCtx, appName)
		result.Removed = n
		err = errors.Join(stopErr, err)
		if err != nil {
			fmt.Fprintf(out, "\ncleaning the Docker engine up failed: %v\n", err)
			if retErr == nil {
				retErr = fmt.Errorf("clean the Docker engine up: %w", err)
			}
			return
		}
		fmt.Fprintf(out, "\nremoved the demo's %d containers and images from the Docker engine (%s): nothing of it is left\n", n, docker.LocalAddress())
	}()
	d.svc = srv.Deploy
	if onDocker {
		d.say("2. cutover server on %s (SQLite, the Docker engine at %s named twice, as %s,\n   images pushed to the in-process registry %s, embedded proxy); staging on %s, production on %s",
			srv.URL(), docker.LocalAddress(), strings.Join(dockerHosts, " and "), imageRepo, stagingAddr, prodAddr)
	} else {
		d.say("2. cutover server on %s (SQLite, local processes, embedded proxy); staging on %s, production on %s", srv.URL(), stagingAddr, prodAddr)
	}
	events, cancel := d.svc.Subscribe()
	printed := make(chan struct{})
	go func() {
		defer close(printed)
		d.printEvents(events)
	}()
	defer func() {
		cancel()
		<-printed
	}()

	if _, err := d.svc.AddApp(ctx, appName, repo); err != nil {
		return Result{}, err
	}
	cl := client.New(srv.URL(), srv.Token)
	recv, err := startReceiver(d)
	if err != nil {
		return Result{}, err
	}
	defer recv.close()
	notifyKinds := []string{notify.KindDeployFailed, notify.KindDeployRolledBack, notify.KindRollback, notify.KindOverride}
	if err := recv.subscribe(ctx, cl, notifyKinds...); err != nil {
		return Result{}, err
	}
	hook, err := cl.NewHookSecret(ctx, appName)
	if err != nil {
		return Result{}, err
	}
	d.say("   a notification receiver on %s is subscribed to %s (signed webhooks);\n   the app's GitHub webhook is %s%s", recv.url, strings.Join(notifyKinds, ", "), srv.URL(), hook.GitHub)
	if onDocker {
		d.say("3. build v1 once into an image, pushed as %s/%s:SHA, and deploy it by digest to staging, then\n   promote the same digest to production, which spans two hosts (%s); each commit is built once\n   (release numbers #N count every release of the app across environments; the app's own\n   version, vN, is what GET / answers)", imageRepo, appName, strings.Join(dockerHosts, ", "))
	} else {
		d.say("3. build v1 once and deploy the same artifact to staging, then promote it to production\n   (release numbers #N count every release of the app across environments; the app's own\n   version, vN, is what GET / answers)")
	}
	if err := d.deploy(ctx, "staging", "", core.StateSucceeded); err != nil {
		return Result{}, err
	}
	var firstImage string
	if onDocker {
		if firstImage, err = d.firstImage(ctx); err != nil {
			return Result{}, err
		}
	}
	if err := d.deploy(ctx, "production", "", core.StateSucceeded); err != nil {
		return Result{}, err
	}
	if onDocker {
		if err := d.sameDigest(ctx); err != nil {
			return Result{}, err
		}
	}

	d.say("4. load on production: %d keep-alive workers on http://%s/ for the rest of the demo", opt.Workers, prodAddr)
	load := StartLoad("http://"+prodAddr+"/", opt.Workers)
	res := func() Result {
		return Result{Requests: load.OK.Load() + load.Failed(), Failed: load.Failed(), Versions: load.Versions(), Image: firstImage}
	}

	steps := []func() error{
		func() error {
			d.say("5. v2, healthy, is pushed to main: a signed GitHub push webhook makes cutover deploy it to staging\n   on its own (auto_deploy in the policy), then production under load (blue/green, old colour kept warm)")
			if _, err := d.svc.SetPolicy(ctx, appName, []byte(cdPolicy), "root"); err != nil {
				return err
			}
			if err := d.write("version.go", "package main\n\n// Version is what GET / reports.\nconst Version = \"v2\"\n"); err != nil {
				return err
			}
			sha, err := d.commitSHA("feat: v2 greets differently")
			if err != nil {
				return err
			}
			if err := push(ctx, srv.URL(), hook.Secret, sha); err != nil {
				return err
			}
			auto, err := d.autoDeployed(ctx, "staging", sha)
			if err != nil {
				return err
			}
			d.say("   the push started deployment %d, requested by %s", auto.ID, auto.RequestedBy)
			if err := d.wait(ctx, auto, core.StateSucceeded); err != nil {
				return err
			}
			return d.deploy(ctx, "production", "", core.StateSucceeded)
		},
		func() error {
			d.say("6. a config-only change in production (a new release of the same %s)", d.artifactWord())
			if _, err := d.svc.SetConfig(ctx, appName, "production", map[string]string{"GREETING": "hi"}, map[string]string{"API_KEY": "demo-secret-value"}); err != nil {
				return err
			}
			return d.deploy(ctx, "production", "", core.StateSucceeded)
		},
		func() error {
			d.say("7. v3 is broken (starts failing right after it gets traffic): staging switches back on its own")
			if err := d.write("broken.go", "package main\n\n// Broken selects a failure mode for demos and tests.\nconst Broken = \"after\"\n"); err != nil {
				return err
			}
			if err := d.write("version.go", "package main\n\n// Version is what GET / reports.\nconst Version = \"v3\"\n"); err != nil {
				return err
			}
			if err := d.commit("fix: v3 (not really)"); err != nil {
				return err
			}
			if err := d.deploy(ctx, "staging", "", core.StateRolledBack); err != nil {
				return err
			}
			dep, err := d.svc.Deploy(ctx, deploy.DeployRequest{App: appName, Env: "production", RequestedBy: "demo"})
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			defer cancel()
			if dep, err = d.svc.Wait(ctx, dep.ID); err != nil {
				return err
			}
			if dep.State != core.StateFailed || dep.SwitchedAt != nil || dep.Release != 0 {
				return errors.New("v3 was accepted for production although it failed in staging")
			}
			d.say("   production refuses v3 (deployment %d, recorded): %s", dep.ID, dep.Reason)
			return nil
		},
		func() error {
			d.say("8. the policy at work: production requires ci && (cd || review); ann asks for a v4 that never ran in staging")
			if _, err := d.svc.SetPolicy(ctx, appName, []byte(demoPolicy), "root"); err != nil {
				return err
			}
			if err := d.write("broken.go", "package main\n\n// Broken selects a failure mode for demos and tests.\nconst Broken = \"\"\n"); err != nil {
				return err
			}
			if err := d.write("version.go", "package main\n\n// Version is what GET / reports.\nconst Version = \"v4\"\n"); err != nil {
				return err
			}
			sha, err := d.commitSHA("fix: v4")
			if err != nil {
				return err
			}
			if _, err := d.svc.ReportCheck(ctx, core.CommitStatus{App: appName, SHA: sha, Name: "test", State: core.CheckSuccess, By: "ci"}); err != nil {
				return err
			}
			refused, err := d.deployAs(ctx, "production", sha, "ann", core.DeployOptions{})
			if err != nil {
				return err
			}
			if refused.State != core.StateFailed {
				return fmt.Errorf("v4 reached production without staging or a review: %s", refused.State)
			}
			d.say("   refused (deployment %d): %s", refused.ID, indent(refused.Reason))
			d.say("   bob reviews v4 (he is neither ann nor an author of its commits), and ann deploys again")
			if _, err := d.svc.ReviewCommit(ctx, appName, sha, "bob"); err != nil {
				return err
			}
			ok, err := d.deployAs(ctx, "production", sha, "ann", core.DeployOptions{})
			if err != nil {
				return err
			}
			if ok.State != core.StateSucceeded {
				return fmt.Errorf("v4 with a review ended %s: %s", ok.State, ok.Reason)
			}
			return nil
		},
		func() error {
			today := time.Now().UTC().Format("2006-01-02")
			d.say("9. a freeze: production denies deploys today (%s, UTC); a config recycle is refused, then overridden by root", today)
			if _, err := d.svc.SetPolicy(ctx, appName, []byte(demoPolicy+"    windows:\n      timezone: UTC\n      deny: [\""+today+" - "+today+"\"]\n"), "root"); err != nil {
				return err
			}
			if _, err := d.svc.SetConfig(ctx, appName, "production", map[string]string{"GREETING": "hello again"}, nil); err != nil {
				return err
			}
			rec, err := d.svc.Recycle(ctx, appName, "production", "ann")
			if err != nil {
				return err
			}
			if rec, err = d.svc.Wait(ctx, rec.ID); err != nil {
				return err
			}
			if rec.State != core.StateFailed {
				return fmt.Errorf("a recycle during the freeze ended %s", rec.State)
			}
			d.say("   refused (deployment %d): %s", rec.ID, indent(rec.Reason))
			over, err := d.svc.Deploy(ctx, deploy.DeployRequest{App: appName, Env: "production", Ref: rec.SHA, RequestedBy: "root",
				Options: core.DeployOptions{Override: true, Reason: "config fix for incident 7"}})
			if err != nil {
				return err
			}
			return d.wait(ctx, over, core.StateSucceeded)
		},
		func() error {
			if d.docker {
				d.say("10. roll production back to v1 under load, v1's image by its digest on both hosts (rollbacks pass every gate and lock)")
			} else {
				d.say("10. roll production back to v1 under load (rollbacks pass every gate and lock)")
			}
			target, err := d.firstRelease(ctx, "production")
			if err != nil {
				return err
			}
			dep, err := d.svc.Rollback(ctx, deploy.RollbackRequest{App: appName, Env: "production", To: target, RequestedBy: "ann"})
			if err != nil {
				return err
			}
			return d.wait(ctx, dep, core.StateSucceeded)
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			load.Stop()
			return res(), err
		}
	}
	time.Sleep(300 * time.Millisecond) // let requests issued after the last switch land
	load.Stop()
	r := res()

	if !recv.waitFor(notify.KindRollback) {
		return r, errors.New("the receiver got no rollback notification within 15s")
	}
	d.say("   the receiver got %d notifications, every signature verified", recv.count())

	d.say("11. timeline")
	if err := d.timeline(ctx); err != nil {
		return r, err
	}
	versions := make([]string, 0, len(r.Versions))
	for v, n := range r.Versions {
		versions = append(versions, fmt.Sprintf("%s=%d", v, n))
	}
	sort.Strings(versions)
	fmt.Fprintf(out, "\nload on production: %d requests, %d failed (answers by version: %s)\n", r.Requests, r.Failed, strings.Join(versions, " "))
	if r.Failed > 0 {
		return r, fmt.Errorf("the load saw %d failed requests (last: %s)", r.Failed, load.LastError())
	}
	fmt.Fprintf(out, "demo finished in %s: 0 failed requests\n", time.Since(d.start).Round(100*time.Millisecond))
	return r, nil
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

type demo struct {
	out    io.Writer
	repo   string
	svc    *deploy.Service
	start  time.Time
	docker bool // the app runs on the docker runtime
}

// artifactWord is what one build makes.
func (d *demo) artifactWord() string {
	if d.docker {
		return "image"
	}
	return "artifact"
}

// firstImage prints and returns the image staging's first release runs.
func (d *demo) firstImage(ctx context.Context) (string, error) {
	rels, err := d.svc.Releases(ctx, appName, 10)
	if err != nil {
		return "", err
	}
	if len(rels) == 0 {
		return "", errors.New("staging has no release after its first deploy")
	}
	art, err := d.svc.Build(ctx, appName, rels[0].SHA, nil) // built already: the stored artifact
	if err != nil {
		return "", err
	}
	if !strings.Contains(art.Ref, "@sha256:") {
		return "", fmt.Errorf("v1's artifact is %q, want an image reference by digest", art.Ref)
	}
	d.say("   v1's image: %s (built from %s, tagged :%s in the registry)", art.Ref, core.ShortSHA(rels[0].SHA), rels[0].SHA)
	return art.Ref, nil
}

// sameDigest checks that production's first release runs staging's image
// and prints where its instances run.
func (d *demo) sameDigest(ctx context.Context) error {
	rels, err := d.svc.Releases(ctx, appName, 10)
	if err != nil {
		return err
	}
	var staging, prod *core.Release
	for i := range rels {
		switch {
		case rels[i].Env == "staging" && staging == nil:
			staging = &rels[i]
		case rels[i].Env == "production" && prod == nil:
			prod = &rels[i]
		}
	}
	if staging == nil || prod == nil || staging.Digest == "" || staging.Digest != prod.Digest {
		return fmt.Errorf("production did not get staging's image: %+v", rels)
	}
	sts, err := d.svc.Status(ctx, appName)
	if err != nil {
		return err
	}
	var where []string
	for _, st := range sts {
		if st.Env != "production" {
			continue
		}
		if sl := st.State.Slots[st.State.Live]; sl != nil {
			for _, in := range sl.Instances {
				where = append(where, fmt.Sprintf("%s on %s at %s", in.ID, in.Data["host"], in.Addr))
			}
		}
	}
	sort.Strings(where)
	d.say("   production got the same digest as staging (%s), no second build; its containers:\n     %s", prod.Digest, strings.Join(where, "\n     "))
	return nil
}

func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, "\n"+format+"\n", args...)
}

func (d *demo) printEvents(ch <-chan core.Event) {
	for e := range ch {
		if e.Type == "deploy.output" {
			continue
		}
		where := e.App
		if e.Env != "" {
			where += "/" + e.Env
		}
		fmt.Fprintf(d.out, "   %6.2fs  %-18s %s\n", time.Since(d.start).Seconds(), where, e.Message)
	}
}

func (d *demo) deploy(ctx context.Context, env, ref string, want core.DeploymentState) error {
	dep, err := d.svc.Deploy(ctx, deploy.DeployRequest{App: appName, Env: env, Ref: ref, RequestedBy: "demo"})
	if err != nil {
		return fmt.Errorf("deploy to %s: %w", env, err)
	}
	return d.wait(ctx, dep, want)
}

func (d *demo) wait(ctx context.Context, dep core.Deployment, want core.DeploymentState) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	got, err := d.svc.Wait(ctx, dep.ID)
	if err != nil {
		return fmt.Errorf("wait for deployment %d: %w", dep.ID, err)
	}
	if got.State != want {
		return fmt.Errorf("deployment %d to %s ended %s (%s), expected %s", got.ID, got.Env, got.State, got.Reason, want)
	}
	return nil
}

func (d *demo) timeline(ctx context.Context) error {
	ds, err := d.svc.History(ctx, appName, "", 0, 100)
	if err != nil {
		return err
	}
	fmt.Fprintf(d.out, "   %-4s %-11s %-9s %-8s %-12s %s\n", "id", "env", "kind", "release", "state", "reason")
	for i := len(ds) - 1; i >= 0; i-- {
		x := ds[i]
		fmt.Fprintf(d.out, "   %-4d %-11s %-9s %-8s %-12s %s\n", x.ID, x.Env, x.Kind, releaseLabel(x.Release), x.State, firstLine(x.Reason))
	}
	return nil
}

func (d *demo) write(name, content string) error {
	return os.WriteFile(filepath.Join(d.repo, name), []byte(content), 0o644)
}

// cdPolicy is the demo's first server-side policy: continuous delivery of
// main to staging (production is not named: the promotion chain applies).
const cdPolicy = `environments:
  staging:
    auto_deploy: {branch: main}
`

// demoPolicy adds production's rule (last: step 9 appends a window).
const demoPolicy = cdPolicy + `  production:
    from: staging
    checks: [test]
    require: ci && (cd || review)
`

// commitSHA commits everything and returns the new commit.
func (d *demo) commitSHA(msg string) (string, error) {
	return gitx.CommitAll(context.Background(), d.repo, msg)
}

// deployAs deploys sha to env as user and waits for the outcome.
func (d *demo) deployAs(ctx context.Context, env, sha, user string, opts core.DeployOptions) (core.Deployment, error) {
	dep, err := d.svc.Deploy(ctx, deploy.DeployRequest{App: appName, Env: env, Ref: sha, RequestedBy: user, Options: opts})
	if err != nil {
		return dep, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return d.svc.Wait(ctx, dep.ID)
}

// firstRelease is the release of env's first successful deployment.
func (d *demo) firstRelease(ctx context.Context, env string) (int, error) {
	ds, err := d.svc.History(ctx, appName, env, 0, 100)
	if err != nil {
		return 0, err
	}
	for i := len(ds) - 1; i >= 0; i-- {
		if ds[i].State == core.StateSucceeded {
			return ds[i].Release, nil
		}
	}
	return 0, errors.New("production never had a release")
}

func indent(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n   ") }

// commit commits everything in the demo repository.
func (d *demo) commit(msg string) error {
	_, err := gitx.CommitAll(context.Background(), d.repo, msg)
	return err
}

// freeAddrs picks two free loopback addresses for the environments' proxies.
func freeAddrs() (string, string, error) {
	var out []string
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for range 2 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", "", err
		}
		lns = append(lns, l)
		out = append(out, l.Addr().String())
	}
	return out[0], out[1], nil
}

// releaseLabel shows a release number, or "-" for a deployment refused
// before it had one.
func releaseLabel(n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("#%d", n)
}

// firstLine is the first line of a reason (a policy verdict has a tree under it).
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}
