// Package process is the embedded default runtime: each instance is a local
// child process in its own process group, listening on a loopback port that
// the driver picks and passes as PORT. Instances outlive a crashed server
// (their output goes to files, not to pipes into the server) and a new
// driver on the same state directory adopts them.
package process

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cutover/cutover/internal/command"
	"github.com/cutover/cutover/internal/core"
)

// Defaults.
const (
	DefaultHost        = "127.0.0.1"
	DefaultLogMaxBytes = 10 << 20
	DefaultLogKeep     = 3
	stopPoll           = 10 * time.Millisecond
	recentPorts        = 256 // ports handed out recently are not handed out again

	// DefaultLogCheckInterval is how often running instances' logs are
	// checked against LogMaxBytes.
	DefaultLogCheckInterval = time.Second
	// DefaultLogRetention is how long the logs of an instance that no
	// longer runs are kept after its last output.
	DefaultLogRetention = 7 * 24 * time.Hour
	logSweepInterval    = time.Minute // logs of every instance, running or not
)

// Config configures a Driver.
type Config struct {
	StateDir string // instance records (instances/) and logs (logs/)
	// ArtifactRoot resolves relative artifact references (APP/SHA); an
	// absolute reference is a directory already.
	ArtifactRoot string
	Logger       *slog.Logger
	LogMaxBytes  int64 // rotate a log above this size
	LogKeep      int   // rotated files kept
	// LogCheckInterval is how often running instances' logs are checked
	// (0 = DefaultLogCheckInterval).
	LogCheckInterval time.Duration
	// LogRetention is how long the logs of an instance that no longer
	// runs are kept after its last output (0 = DefaultLogRetention).
	LogRetention time.Duration
	Host         string
}

// record is what the driver persists per instance: the instance as the
// deploy machine sees it, and the process details only this driver reads.
type record struct {
	core.Instance
	PID        int    `json:"pid"`
	LogPath    string `json:"log_path"`
	StartTicks uint64 `json:"start_ticks"` // /proc/PID/stat start time: a reused PID does not match
}

// Driver starts and stops local processes.
type Driver struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	logMu   sync.Mutex     // one rotation or collection at a time
	exited  map[string]int // instance id -> exit code, for children that exited
	recent  []int
	stop    chan struct{}
	stopped sync.WaitGroup
}

// New returns a driver on cfg.StateDir, adopting the instances a previous
// driver left running there.
func New(cfg Config) (*Driver, error) {
	if cfg.StateDir == "" {
		return nil, errors.New("process driver: StateDir is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.LogMaxBytes <= 0 {
		cfg.LogMaxBytes = DefaultLogMaxBytes
	}
	if cfg.LogKeep <= 0 {
		cfg.LogKeep = DefaultLogKeep
	}
	if cfg.LogCheckInterval <= 0 {
		cfg.LogCheckInterval = DefaultLogCheckInterval
	}
	if cfg.LogRetention <= 0 {
		cfg.LogRetention = DefaultLogRetention
	}
	if cfg.Host == "" {
		cfg.Host = DefaultHost
	}
	for _, d := range []string{"instances", "logs"} {
		if err := os.MkdirAll(filepath.Join(cfg.StateDir, d), 0o700); err != nil {
			return nil, fmt.Errorf("process driver: %w", err)
		}
	}
	d := &Driver{cfg: cfg, log: cfg.Logger, exited: map[string]int{}, stop: make(chan struct{})}
	d.stopped.Add(1)
	d.adoptStrays()
	go d.rotateLoop()
	return d, nil
}

// Close stops the driver's background work. Instances keep running.
func (d *Driver) Close() {
	select {
	case <-d.stop:
	default:
		close(d.stop)
	}
	d.stopped.Wait()
}

// Start starts spec.Count instances. On any failure it stops those it
// started and returns the error.
func (d *Driver) Start(ctx context.Context, spec core.GroupSpec) ([]core.Instance, error) {
	if len(spec.Command) == 0 {
		return nil, fmt.Errorf("%w: run command is empty", core.ErrInvalid)
	}
	if spec.Count < 1 {
		return nil, fmt.Errorf("%w: instance count %d", core.ErrInvalid, spec.Count)
	}
	var started []core.Instance
	for i := range spec.Count {
		in, err := d.startOne(spec, i)
		if err != nil {
			_ = d.Stop(context.WithoutCancel(ctx), started, time.Second)
			return nil, fmt.Errorf("instance %d of %s/%s %s: %w", i, spec.App, spec.Env, spec.Colour, err)
		}
		started = append(started, in)
	}
	return started, nil
}

func (d *Driver) startOne(spec core.GroupSpec, index int) (core.Instance, error) {
	port, err := d.freePort()
	if err != nil {
		return core.Instance{}, err
	}
	id := fmt.Sprintf("%s-%s-%s-r%d-%d-%s", spec.App, spec.Env, spec.Colour, spec.Release, index, randomHex(3))
	logPath := d.logPath(core.Instance{ID: id, App: spec.App, Env: spec.Env})
	if err := os.MkdirAll(filepath.Dir(logPath), 0o700); err != nil {
		return core.Instance{}, err
	}
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return core.Instance{}, err
	}
	defer logFile.Close() // the child has its own descriptor

	dir := d.artifactDir(spec.Artifact)
	bin := spec.Command[0]
	if strings.Contains(bin, "/") && !filepath.IsAbs(bin) {
		bin = filepath.Join(dir, bin)
	}
	cmd := exec.Command(bin, spec.Command[1:]...)
	cmd.Dir = dir
	// The driver's mark: a process started but not yet recorded when a
	// server died is found by it on the next start (adoptStrays).
	cmd.Env = append(environ(spec, index, port), markDriver+"="+d.cfg.StateDir, markInstance+"="+id)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return core.Instance{}, fmt.Errorf("start %q: %w", strings.Join(spec.Command, " "), err)
	}
	pid := cmd.Process.Pid
	in := core.Instance{
		ID: id, App: spec.App, Env: spec.Env, Colour: spec.Colour, Release: spec.Release,
		Addr: net.JoinHostPort(d.cfg.Host, strconv.Itoa(port)), StartedAt: time.Now().UTC(),
		Data: map[string]string{"pid": strconv.Itoa(pid)},
	}
	ticks, _ := startTicks(pid)
	if err := d.writeRecord(record{Instance: in, PID: pid, LogPath: logPath, StartTicks: ticks}); err != nil {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = cmd.Wait()
		return core.Instance{}, err
	}
	go func() {
		// Reap the child so it never lingers as a zombie; remember how it ended.
		err := cmd.Wait()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		d.mu.Lock()
		d.exited[id] = code
		d.mu.Unlock()
		d.log.Info("instance exited", "instance", id, "code", code)
	}()
	d.log.Info("instance started", "instance", id, "addr", in.Addr, "pid", pid)
	return in, nil
}

// environ is the minimal base environment (internal/command's) plus the
// spec's; never the server's own variables, which may hold secrets.
func environ(spec core.GroupSpec, index, port int) []string {
	return command.Environ(nil, extraEnv(spec, index, port))
}

// extraEnv is what an instance or task of spec gets beside the base
// environment. A task has no port (0).
func extraEnv(spec core.GroupSpec, index, port int) []string {
	var env []string
	keys := make([]string, 0, len(spec.Environ))
	for k := range spec.Environ {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+spec.Environ[k])
	}
	for k, v := range spec.Secrets {
		env = append(env, k+"="+v)
	}
	env = append(env, "CUTOVER_APP="+spec.App, "CUTOVER_ENV="+spec.Env, "CUTOVER_RELEASE="+strconv.Itoa(spec.Release))
	if port > 0 {
		env = append(env, "PORT="+strconv.Itoa(port), "CUTOVER_COLOUR="+string(spec.Colour), "CUTOVER_INSTANCE="+strconv.Itoa(index))
	}
	return env
}

// Stop sends SIGTERM to each instance's process group, waits up to grace,
// then sends SIGKILL. Instances already gone are not an error.
func (d *Driver) Stop(ctx context.Context, instances []core.Instance, grace time.Duration) error {
	var wg sync.WaitGroup
	errs := make([]error, len(instances))
	for i, in := range instances {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = d.stopOne(ctx, in, grace)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (d *Driver) stopOne(ctx context.Context, in core.Instance, grace time.Duration) error {
	rec, err := d.readRecord(in.ID)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // already stopped and forgotten
		}
		return err
	}
	if d.alive(rec) {
		_ = syscall.Kill(-rec.PID, syscall.SIGTERM)
		deadline := time.Now().Add(grace)
		for d.alive(rec) && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(stopPoll)
		}
		if d.alive(rec) {
			d.log.Warn("instance ignored SIGTERM: killing", "instance", in.ID, "grace", grace)
		}
		// Kill whatever is left of the group (children that ignored SIGTERM too).
		_ = syscall.Kill(-rec.PID, syscall.SIGKILL)
		for d.alive(rec) && ctx.Err() == nil {
			time.Sleep(stopPoll)
		}
	}
	if err := d.forget(in.ID); err != nil {
		return err
	}
	d.log.Info("instance stopped", "instance", in.ID)
	return nil
}

// List returns the instances whose process is still running, including
// ones started by an earlier driver on the same state directory.
func (d *Driver) List(ctx context.Context) ([]core.Instance, error) {
	ents, err := os.ReadDir(filepath.Join(d.cfg.StateDir, "instances"))
	if err != nil {
		return nil, err
	}
	var out []core.Instance
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		rec, err := d.readRecord(strings.TrimSuffix(e.Name(), ".json"))
		if err != nil {
			continue
		}
		if !d.alive(rec) {
			// Gone: drop the record; its exit code stays for Exited until Stop.
			_ = os.Remove(d.recordPath(rec.ID))
			continue
		}
		out = append(out, rec.Instance)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// ExitCode reports whether an instance started by this driver has exited
// and with which code.
func (d *Driver) ExitCode(id string) (code int, exited bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	code, exited = d.exited[id]
	return code, exited
}

// Exited implements deploy.Driver: an instance this driver started that has
// exited, or whose process is gone.
func (d *Driver) Exited(ctx context.Context, in core.Instance) (string, bool) {
	if code, exited := d.ExitCode(in.ID); exited {
		return describeExit(code), true
	}
	rec, err := d.readRecord(in.ID)
	if err != nil {
		return "", false // not ours, or already stopped
	}
	if !d.alive(rec) {
		return "process gone", true
	}
	return "", false
}

func describeExit(code int) string {
	if code < 0 {
		return "killed by a signal"
	}
	return fmt.Sprintf("exit status %d", code)
}

// alive reports whether rec's process runs and is the one we started.
func (d *Driver) alive(rec record) bool {
	if rec.PID <= 0 {
		return false
	}
	if _, exited := d.ExitCode(rec.ID); exited {
		return false
	}
	ticks, err := startTicks(rec.PID)
	if err != nil {
		return false
	}
	if rec.StartTicks != 0 && ticks != rec.StartTicks {
		return false // the PID was reused by another process
	}
	return !zombie(rec.PID)
}

// forget removes an instance's record and what the driver remembers of it.
func (d *Driver) forget(id string) error {
	d.mu.Lock()
	delete(d.exited, id)
	d.mu.Unlock()
	if err := os.Remove(d.recordPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// artifactDir is the directory of an artifact reference.
func (d *Driver) artifactDir(ref string) string {
	if ref == "" || filepath.IsAbs(ref) || d.cfg.ArtifactRoot == "" {
		return ref
	}
	return filepath.Join(d.cfg.ArtifactRoot, ref)
}

// logPath is where an instance's output goes; it outlives the instance.
func (d *Driver) logPath(in core.Instance) string {
	return filepath.Join(d.cfg.StateDir, "logs", in.App, in.Env, in.ID+".log")
}

func (d *Driver) recordPath(id string) string {
	return filepath.Join(d.cfg.StateDir, "instances", id+".json")
}

func (d *Driver) writeRecord(r record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	tmp := d.recordPath(r.ID) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, d.recordPath(r.ID))
}

func (d *Driver) readRecord(id string) (record, error) {
	if strings.ContainsAny(id, "/\\") || strings.HasPrefix(id, ".") {
		return record{}, fmt.Errorf("%w: instance id %q", core.ErrInvalid, id)
	}
	b, err := os.ReadFile(d.recordPath(id))
	if err != nil {
		return record{}, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return record{}, fmt.Errorf("instance record %s: %w", id, err)
	}
	return r, nil
}

// freePort asks the kernel for a free port, avoiding ports handed out recently.
func (d *Driver) freePort() (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for range 50 {
		l, err := net.Listen("tcp", net.JoinHostPort(d.cfg.Host, "0"))
		if err != nil {
			return 0, fmt.Errorf("find a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		used := false
		for _, p := range d.recent {
			if p == port {
				used = true
				break
			}
		}
		if used {
			continue
		}
		d.recent = append(d.recent, port)
		if len(d.recent) > recentPorts {
			d.recent = d.recent[1:]
		}
		return port, nil
	}
	return 0, errors.New("find a free port: none after 50 tries")
}

// startTicks reads field 22 (starttime) of /proc/PID/stat.
func startTicks(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("bad stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, errors.New("bad stat")
	}
	return strconv.ParseUint(f[19], 10, 64)
}

func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || len(s) < i+3 || s[i+2] == 'Z'
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// The environment variables that mark the processes a driver starts.
const (
	markDriver   = "CUTOVER_DRIVER_STATE"
	markInstance = "CUTOVER_INSTANCE_ID"
)

// adoptStrays records the processes a previous driver on this state
// directory started but could not record before it died (killed between
// starting a process and writing its record), so the server's reconcile
// sees them and stops them as orphans. Only process group leaders carrying
// this driver's mark are adopted.
func (d *Driver) adoptStrays() {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	want := []byte(markDriver + "=" + d.cfg.StateDir + "\x00")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !bytes.Contains(env, want) {
			continue
		}
		id := ""
		for _, kv := range bytes.Split(env, []byte{0}) {
			if v, ok := bytes.CutPrefix(kv, []byte(markInstance+"=")); ok {
				id = string(v)
			}
		}
		if id == "" || strings.ContainsAny(id, "/\\") || pgid(pid) != pid {
			continue
		}
		if _, err := d.readRecord(id); err == nil {
			continue // recorded: List finds it
		}
		ticks, _ := startTicks(pid)
		in := core.Instance{ID: id, Data: map[string]string{"pid": strconv.Itoa(pid)}}
		if err := d.writeRecord(record{Instance: in, PID: pid, StartTicks: ticks}); err != nil {
			d.log.Warn("adopt a stray instance", "pid", pid, "instance", id, "err", err)
			continue
		}
		d.log.Warn("adopted an instance started but never recorded (its server died in between)", "pid", pid, "instance", id)
	}
}

// pgid reads a process's group from /proc/PID/stat (field 5).
func pgid(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 3 {
		return 0
	}
	g, _ := strconv.Atoi(f[2])
	return g
}
