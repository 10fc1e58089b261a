package process

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/deploy"
	"github.com/cutover/cutover/internal/driver/drivertest"
	"github.com/cutover/cutover/internal/testutil"
)

var helloBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cutover-process-test-")
	if err != nil {
		panic(err)
	}
	helloBin = filepath.Join(dir, "hello")
	if out, err := exec.Command("go", "build", "-o", helloBin, "github.com/cutover/cutover/examples/hello").CombinedOutput(); err != nil {
		panic(string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func newDriver(t *testing.T, dir string) *Driver {
	t.Helper()
	// Rotation runs when a test asks for it.
	d, err := New(Config{StateDir: dir, LogMaxBytes: 64, LogCheckInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

func spec(count int) core.GroupSpec {
	return core.GroupSpec{App: "hello", Env: "staging", Colour: core.Blue, Release: 3, Count: count,
		Artifact: filepath.Dir(helloBin), Command: []string{helloBin},
		Environ: map[string]string{"GREETING": "hey"}, Secrets: map[string]string{"API_KEY": "s3cret-value"}}
}

func waitUp(t *testing.T, addr string) string {
	t.Helper()
	var body string
	testutil.WaitFor(t, addr+" to answer GET /", 10*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		return true
	})
	return body
}

func TestStartStopAdopt(t *testing.T) {
	dir := t.TempDir()
	d := newDriver(t, dir)
	ctx := context.Background()
	insts, err := d.Start(ctx, spec(2))
	if err != nil {
		t.Fatal(err)
	}
	if len(insts) != 2 || insts[0].Addr == insts[1].Addr {
		t.Fatalf("instances = %+v", insts)
	}
	for _, in := range insts {
		if body := waitUp(t, in.Addr); !strings.Contains(body, "hey from") {
			t.Errorf("GET / = %q: PORT or env not honoured", body)
		}
		rec, _ := os.ReadFile(filepath.Join(dir, "instances", in.ID+".json"))
		if strings.Contains(string(rec), "s3cret-value") {
			t.Error("a secret was written to the instance record")
		}
		env, _ := os.ReadFile("/proc/" + itoa(pidOf(in)) + "/environ")
		if !strings.Contains(string(env), "API_KEY=s3cret-value") || !strings.Contains(string(env), "CUTOVER_COLOUR=blue") {
			t.Error("secret or cutover variables missing from the instance environment")
		}
	}

	// A new driver on the same state directory (a restarted server) adopts them.
	d2 := newDriver(t, dir)
	got, err := d2.List(ctx)
	if err != nil || len(got) != 2 {
		t.Fatalf("adopted = %+v, %v", got, err)
	}
	if err := d2.Stop(ctx, got, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, in := range insts {
		if syscall.Kill(pidOf(in), 0) == nil && !zombie(pidOf(in)) {
			t.Errorf("pid %d still running after stop", pidOf(in))
		}
	}
	if got, _ := d2.List(ctx); len(got) != 0 {
		t.Errorf("list after stop = %+v", got)
	}
	// Stopping again is not an error.
	if err := d2.Stop(ctx, insts, time.Second); err != nil {
		t.Errorf("second stop: %v", err)
	}
}

func TestStopEscalatesToKillAndKillsGroup(t *testing.T) {
	d := newDriver(t, t.TempDir())
	s := spec(1)
	// A process that ignores SIGTERM and has a child: sh is the instance here,
	// the driver itself never uses a shell.
	s.Command = []string{"/bin/sh", "-c", "trap '' TERM; sleep 300 & echo ready; wait"}
	insts, err := d.Start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	waitLog(t, d, insts[0], "ready") // the trap is set and the child runs
	start := time.Now()
	if err := d.Stop(context.Background(), insts, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < 200*time.Millisecond {
		t.Error("stop returned before the grace period for a process ignoring SIGTERM")
	}
	// The killed members may take a moment to be reaped.
	testutil.WaitFor(t, "the process group to be gone after stop", 3*time.Second, func() bool {
		return syscall.Kill(-pidOf(insts[0]), 0) != nil
	})
}

func TestFailedStartLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	d := newDriver(t, dir)
	s := spec(2)
	s.Command = []string{"./no-such-binary"}
	if _, err := d.Start(context.Background(), s); err == nil || !strings.Contains(err.Error(), "no-such-binary") {
		t.Fatalf("err = %v", err)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "instances"))
	if len(ents) != 0 {
		t.Errorf("records left: %d", len(ents))
	}
}

func TestDeadInstanceLeavesListAndLogsRotate(t *testing.T) {
	d := newDriver(t, t.TempDir())
	s := spec(1)
	s.Command = []string{"/bin/sh", "-c", "echo long-enough-to-rotate-the-tiny-log-limit-of-sixty-four-bytes-line-one; sleep 0.3"}
	insts, err := d.Start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	waitLog(t, d, insts[0], "line-one")
	d.RotateLogs()
	if b, err := os.ReadFile(d.logPath(insts[0]) + ".1"); err != nil || !strings.Contains(string(b), "line-one") {
		t.Errorf("rotated log = %q, %v", b, err)
	}
	testutil.WaitFor(t, "the exited instance to leave the list", 5*time.Second, func() bool {
		got, _ := d.List(context.Background())
		return len(got) == 0
	})
	if code, exited := d.ExitCode(insts[0].ID); !exited || code != 0 {
		t.Errorf("exited = %v code %d", exited, code)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestConformance(t *testing.T) {
	bad := spec(2)
	bad.Command = []string{"./does-not-exist"}
	exits := spec(1)
	exits.Command = []string{helloBin, "migrate"} // prints and exits 0
	task := core.TaskSpec{App: "hello", Env: "staging", Release: 3, Name: "migrate", Artifact: filepath.Dir(helloBin), Command: []string{helloBin, "migrate"}}
	failing := task
	failing.Environ = map[string]string{"MIGRATIONS_LOG": "/nonexistent-dir/migrations.log"}
	drivertest.Run(t, drivertest.Suite{
		New:  func(t *testing.T) deploy.Driver { return newDriver(t, t.TempDir()) },
		Spec: spec, Want: "hey from", Bad: bad, Exits: exits,
		Task: task, FailingTask: failing, TaskOutput: "migrate: nothing to do",
	})
}

func pidOf(in core.Instance) int {
	pid, _ := strconv.Atoi(in.Data["pid"])
	return pid
}

// waitLog polls an instance's log until it contains want.
func waitLog(t *testing.T, d *Driver, in core.Instance, want string) {
	t.Helper()
	testutil.WaitFor(t, fmt.Sprintf("the log of %s to show %q", in.ID, want), 10*time.Second, func() bool {
		var b strings.Builder
		return d.Logs(context.Background(), in, 0, &b) == nil && strings.Contains(b.String(), want)
	})
}

// A process started but never recorded (the server died in between) is
// adopted by the next driver on the state directory, so the server's
// reconcile can stop it as an orphan; a process of another driver is not.
func TestStrayInstanceIsAdopted(t *testing.T) {
	t.Parallel()
	dir, other := t.TempDir(), t.TempDir()
	start := func(state, id string) *exec.Cmd {
		cmd := exec.Command("/bin/sh", "-c", "exec sleep 60")
		cmd.Env = append(os.Environ(), markDriver+"="+state, markInstance+"="+id)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() })
		return cmd
	}
	stray := start(dir, "hello-staging-blue-r3-0-abcdef")
	foreign := start(other, "hello-staging-blue-r3-0-fedcba")
	d := newDriver(t, dir)
	listed, err := d.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, in := range listed {
		found = found || in.ID == "hello-staging-blue-r3-0-abcdef"
		if in.ID == "hello-staging-blue-r3-0-fedcba" {
			t.Error("adopted another driver's process")
		}
	}
	if !found {
		t.Fatalf("the stray process (pid %d) is not listed: %+v", stray.Process.Pid, listed)
	}
	if err := d.Stop(context.Background(), []core.Instance{{ID: "hello-staging-blue-r3-0-abcdef"}}, time.Second); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the adopted stray to stop running after Stop", 10*time.Second, func() bool {
		return syscall.Kill(stray.Process.Pid, 0) != nil || zombie(stray.Process.Pid)
	})
	if syscall.Kill(foreign.Process.Pid, 0) != nil {
		t.Error("another driver's process was stopped")
	}
}
