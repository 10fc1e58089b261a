// Command deploy measures the release path on the embedded default and
// prints its figures:
//
//   - deploy overhead: from the deploy request to traffic switched, minus
//     the app's own boot time (spawn to first healthy answer), for an
//     artifact that is already built;
//   - rollback to the warm previous release under load: from the request to
//     traffic switched, and the failed requests the load saw;
//   - the API's history latency (p50/p99) with 100,000 deployments stored.
//
// Usage: go run ./bench/deploy [-runs 10] [-history 100000]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/cutover/cutover/examples"
	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/demo"
	"github.com/cutover/cutover/internal/deploy"
	"github.com/cutover/cutover/internal/gitx"
	"github.com/cutover/cutover/internal/secret"
	"github.com/cutover/cutover/internal/server"
	"github.com/cutover/cutover/internal/store/sqlite"

	"github.com/cutover/cutover/bench/internal/measure"
)

func main() {
	runs := flag.Int("runs", 10, "deploys and rollbacks to time")
	history := flag.Int("history", 100000, "deployments in the store for the history benchmark")
	queries := flag.Int("queries", 2000, "history requests to time")
	flag.Parse()
	if err := run(*runs, *history, *queries); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(runs, history, queries int) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "cutover-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	repo := filepath.Join(dir, "repo")
	staging, prod := measure.FreeAddr(), measure.FreeAddr()
	if err := examples.WriteHello(repo, examples.HelloOptions{StagingListen: staging, ProductionListen: prod, Verify: 1 * time.Millisecond}); err != nil {
		return err
	}
	if err := gitx.Init(ctx, repo); err != nil {
		return err
	}
	v1, err := gitx.CommitAll(ctx, repo, "v1")
	if err != nil {
		return err
	}
	srv, err := server.Open(ctx, server.Config{DataDir: filepath.Join(dir, "data"), Listen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer srv.Close()
	defer srv.StopAll(context.Background())
	svc := srv.Deploy
	if _, err := svc.AddApp(ctx, "hello", repo); err != nil {
		return err
	}
	// Two commits, built once each, then deployed alternately.
	writeVersion(repo, "v2")
	v2, err := gitx.CommitAll(ctx, repo, "v2")
	if err != nil {
		return err
	}
	shas := []string{v1, v2}
	for _, sha := range shas {
		if _, err := svc.Build(ctx, "hello", sha, nil); err != nil {
			return err
		}
	}

	events, cancel := svc.Subscribe()
	defer cancel()
	var overhead, total, boot []time.Duration
	for i := range runs {
		// Alternate commits; a config change makes each deploy a new release.
		if _, err := svc.SetConfig(ctx, "hello", "staging", map[string]string{"RUN": fmt.Sprint(i)}, nil); err != nil {
			return err
		}
		t0 := time.Now()
		d, err := svc.Deploy(ctx, deploy.DeployRequest{App: "hello", Env: "staging", Ref: shas[i%2]})
		if err != nil {
			return err
		}
		steps := map[core.Step]time.Time{}
		for e := range events {
			if e.DeploymentID == d.ID && e.Type == "deploy.step" {
				steps[e.Step] = time.Now()
			}
			if e.DeploymentID == d.ID && e.Type == "deploy.switched" {
				break
			}
		}
		switched := time.Now()
		got, err := svc.Wait(ctx, d.ID)
		if err != nil || got.State != core.StateSucceeded {
			return fmt.Errorf("deploy %d: %s %s %v", d.ID, got.State, got.Reason, err)
		}
		// Boot: from asking the driver to start to the health gate passing.
		b := steps[core.StepSmoke].Sub(steps[core.StepStart])
		if _, ok := steps[core.StepSmoke]; !ok {
			b = steps[core.StepSwitch].Sub(steps[core.StepStart])
		}
		tot := switched.Sub(t0)
		total, boot, overhead = append(total, tot), append(boot, b), append(overhead, tot-b)
	}
	fmt.Printf("deploy (built artifact, 1 instance, runs=%d):\n", runs)
	fmt.Printf("  request -> switched      p50 %8s  max %8s\n", pct(total, 50), pct(total, 100))
	fmt.Printf("  app boot (spawn->healthy) p50 %8s  max %8s\n", pct(boot, 50), pct(boot, 100))
	fmt.Printf("  overhead (minus boot)    p50 %8s  max %8s   (target < 300ms)\n", pct(overhead, 50), pct(overhead, 100))

	// Rollback to the warm previous release, under load.
	load := demo.StartLoad("http://"+staging+"/", 16)
	var rb []time.Duration
	for range runs {
		t0 := time.Now()
		d, err := svc.Rollback(ctx, deploy.RollbackRequest{App: "hello", Env: "staging"})
		if err != nil {
			load.Stop()
			return err
		}
		for e := range events {
			if e.DeploymentID == d.ID && e.Type == "deploy.switched" {
				break
			}
		}
		rb = append(rb, time.Since(t0))
		if got, err := svc.Wait(ctx, d.ID); err != nil || got.State != core.StateSucceeded {
			load.Stop()
			return fmt.Errorf("rollback %d: %s %s %v", d.ID, got.State, got.Reason, err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	load.Stop()
	fmt.Printf("rollback to the warm previous release under load (16 workers, runs=%d):\n", runs)
	fmt.Printf("  request -> switched      p50 %8s  max %8s   (target < 100ms)\n", pct(rb, 50), pct(rb, 100))
	fmt.Printf("  load: %d requests, %d failed\n", load.OK.Load()+load.Failed(), load.Failed())

	return historyBench(ctx, dir, history, queries)
}

// historyBench fills a store with deployments and times the API's history
// call through a real server.
func historyBench(ctx context.Context, dir string, n, queries int) error {
	data := filepath.Join(dir, "history")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	box, err := secret.LoadOrCreateKey(filepath.Join(data, server.KeyFile))
	if err != nil {
		return err
	}
	st, err := sqlite.Open(ctx, filepath.Join(data, server.DatabaseFile), box)
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := st.CreateApp(ctx, core.App{Name: "hello", Repo: "/nonexistent", CreatedAt: time.Now()}); err != nil {
		return err
	}
	if err := sqlite.BulkDeployments(ctx, st, "hello", []string{"staging", "production"}, n); err != nil {
		return err
	}
	st.Close()
	fill := time.Since(t0)
	srv, err := server.Open(ctx, server.Config{DataDir: data, Listen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	lat := make([]time.Duration, 0, queries)
	for i := range queries {
		url := srv.URL() + "/api/v1/apps/hello/deployments?env=production&limit=50"
		if i%2 == 1 {
			url = srv.URL() + "/api/v1/apps/hello/deployments?limit=50&before=" + fmt.Sprint(n/2)
		}
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", "Bearer "+srv.Token)
		s := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("history: status %d", resp.StatusCode)
		}
		lat = append(lat, time.Since(s))
	}
	fmt.Printf("history API with %d deployments stored (filled in %s), %d requests of 50 rows:\n", n, fill.Round(time.Millisecond), queries)
	fmt.Printf("  p50 %8s  p99 %8s  max %8s   (target p99 < 20ms)\n", pct(lat, 50), pct(lat, 99), pct(lat, 100))
	return nil
}

func writeVersion(dir, v string) {
	if err := os.WriteFile(filepath.Join(dir, "version.go"), []byte("package main\n\nconst Version = \""+v+"\"\n"), 0o644); err != nil {
		panic(err)
	}
}

// pct is a percentile rounded for printing.
func pct(ds []time.Duration, p int) time.Duration {
	return measure.Percentile(ds, p).Round(10 * time.Microsecond)
}
