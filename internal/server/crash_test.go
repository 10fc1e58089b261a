package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cutover/cutover/examples"
	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/deploy"
	"github.com/cutover/cutover/internal/gitx"
	"github.com/cutover/cutover/internal/testutil"
)

const crashToken = "crash-test-token-0123456789"

type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	base string
	log  *testutil.Buffer
}

// serverURL is how `cutover server` announces its API address.
var serverURL = regexp.MustCompile(`cutover server on (http://\S+)`)

// startServer runs `cutover server` on a port the kernel picks and waits
// until its API answers.
func startServer(t *testing.T, bin, data string, extra ...string) *proc {
	t.Helper()
	return startServerIn(t, "", bin, data, extra...)
}

// startServerIn is startServer from working directory dir ("" = the test's).
func startServerIn(t *testing.T, dir, bin, data string, extra ...string) *proc {
	t.Helper()
	listen := "127.0.0.1:0"
	for i, a := range extra {
		if a == "--listen" && i+1 < len(extra) {
			listen, extra = extra[i+1], append(slices.Clone(extra[:i]), extra[i+2:]...)
			break
		}
	}
	cmd := exec.Command(bin, append([]string{"server", "--data-dir", data, "--listen", listen, "--log-level", "debug"}, extra...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CUTOVER_TOKEN="+crashToken)
	log := &testutil.Buffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, log: log}
	t.Cleanup(func() { p.kill() })
	waitShowing(t, "the server to start (its URL logged, healthz answering)", 20*time.Second, func() bool {
		m := serverURL.FindStringSubmatch(log.String())
		if m == nil {
			return false
		}
		p.base = m[1]
		resp, err := http.Get(p.base + "/api/v1/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	}, func() string { return "server log:\n" + log.String() })
	return p
}

// waitShowing is testutil.WaitFor that, on a failure, also logs what last
// says: the state the condition saw last, a log.
func waitShowing(t testing.TB, what string, limit time.Duration, cond func() bool, last func() string) {
	t.Helper()
	ok := false
	defer func() {
		if !ok {
			t.Log(last())
		}
	}()
	testutil.WaitFor(t, what, limit, cond)
	ok = true
}

func (p *proc) kill() {
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		_ = p.cmd.Wait()
	}
}

// status returns env's status from the API.
func (p *proc) status(env string) deploy.EnvStatus {
	p.t.Helper()
	var sts []deploy.EnvStatus
	if code := p.call("GET", "/api/v1/apps/hello/status", nil, &sts); code != 200 {
		p.t.Fatalf("status: %d", code)
	}
	for _, s := range sts {
		if s.Env == env {
			return s
		}
	}
	p.t.Fatalf("no %s in status %+v", env, sts)
	return deploy.EnvStatus{}
}

func (p *proc) call(method, path string, body any, out any) int {
	p.t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, p.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+crashToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

func (p *proc) deployment(id int64) core.Deployment {
	p.t.Helper()
	var d core.Deployment
	if code := p.call("GET", fmt.Sprintf("/api/v1/deployments/%d", id), nil, &d); code != 200 {
		p.t.Fatalf("GET deployment %d: %d", id, code)
	}
	return d
}

func (p *proc) waitFor(id int64, done func(core.Deployment) bool, limit time.Duration) core.Deployment {
	p.t.Helper()
	var d core.Deployment
	waitShowing(p.t, fmt.Sprintf("deployment %d to reach the state waited for", id), limit, func() bool {
		d = p.deployment(id)
		return done(d)
	}, func() string {
		return fmt.Sprintf("deployment %d stuck at %s/%s\n%s", id, d.State, d.Step, p.log.String())
	})
	return d
}

func (p *proc) deploy(env string) core.Deployment {
	p.t.Helper()
	var d core.Deployment
	if code := p.call("POST", "/api/v1/apps/hello/envs/"+env+"/deployments", map[string]any{}, &d); code != 202 && code != 200 {
		p.t.Fatalf("deploy to %s: status %d\n%s", env, code, p.log.String())
	}
	return d
}

// TestServerKilledMidDeploy kills the server with SIGKILL at a step of a
// deployment, starts it again and checks that the environment ends serving
// exactly one release with no orphan process.
func TestServerKilledMidDeploy(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and the example app")
	}
	t.Parallel()
	bin := cutoverBin(t)
	for _, tc := range []struct {
		name   string
		broken string
		killAt core.Step
		serves string // after recovery
	}{
		{"during health gate", "slow", core.StepHealth, "v1"},
		{"during verification", "", core.StepVerify, "v1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			repo, data := filepath.Join(dir, "repo"), filepath.Join(dir, "data")
			staging, prod := testutil.ListenAddr(t), testutil.ListenAddr(t)
			// v1 verifies briefly; v2 verifies long enough to be killed during it.
			opts := examples.HelloOptions{StagingListen: staging, ProductionListen: prod, Verify: 300 * time.Millisecond}
			if err := examples.WriteHello(repo, opts); err != nil {
				t.Fatal(err)
			}
			e := &env{t: t, repo: repo}
			if err := gitx.Init(context.Background(), repo); err != nil {
				t.Fatal(err)
			}
			e.commit("v1")

			p := startServer(t, bin, data)
			if code := p.call("POST", "/api/v1/apps", map[string]string{"name": "hello", "repo": repo}, nil); code/100 != 2 {
				t.Fatalf("add app: %d\n%s", code, p.log.String())
			}
			d := p.deploy("staging")
			p.waitFor(d.ID, func(d core.Deployment) bool { return d.State.Terminal() }, 60*time.Second)
			e.serves(staging, "v1")

			opts.Verify = 20 * time.Second
			if err := examples.WriteHello(repo, opts); err != nil {
				t.Fatal(err)
			}
			e.version("v2", tc.broken)
			d = p.deploy("staging")
			p.waitFor(d.ID, func(d core.Deployment) bool { return d.Step == tc.killAt || d.State.Terminal() }, 60*time.Second)
			p.kill()

			p = startServer(t, bin, data)
			got := p.waitFor(d.ID, func(d core.Deployment) bool { return d.State.Terminal() }, 30*time.Second)
			if got.State == core.StateSucceeded {
				t.Errorf("deployment interrupted at %s ended %s, want failed or rolled back", tc.killAt, got.State)
			}
			if !strings.Contains(got.Reason, "restarted") {
				t.Errorf("reason = %q, want it to say the server restarted", got.Reason)
			}
			e.serves(staging, tc.serves)

			// Exactly the live and standby slots' processes run: nothing else.
			var status []struct {
				Env   string        `json:"env"`
				State core.EnvState `json:"state"`
			}
			p.call("GET", "/api/v1/apps/hello/status", nil, &status)
			known := map[int]bool{}
			for _, s := range status {
				for _, sl := range s.State.Slots {
					for _, in := range sl.Instances {
						pid, _ := strconv.Atoi(in.Data["pid"])
						known[pid] = true
					}
				}
			}
			// The old server's children are stopped asynchronously by SIGTERM; give them a moment.
			var orphans []int
			waitShowing(t, "no orphan processes after restart", 10*time.Second, func() bool {
				orphans = orphans[:0]
				for _, pid := range helloPIDs(t, data) {
					if !known[pid] {
						orphans = append(orphans, pid)
					}
				}
				return len(orphans) == 0
			}, func() string { return fmt.Sprintf("orphan processes %v after restart\n%s", orphans, p.log.String()) })
			p.kill()
			stopAllIn(t, data)
		})
	}
}

// stopAllIn kills every process left under data (test cleanup only).
func stopAllIn(t *testing.T, data string) {
	for _, pid := range helloPIDs(t, data) {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}
