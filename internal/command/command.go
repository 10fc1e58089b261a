// Package command runs programs without a shell: argv as given, an explicit
// environment that never carries the server's own variables, a process
// group of its own that is killed whole when the run is cancelled, and
// bounded captured output.
package command

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Defaults.
const (
	// DefaultWaitDelay is how long Run waits for the output pipes to close
	// after the process group was killed or the program exited.
	DefaultWaitDelay = 2 * time.Second
	// DefaultMaxOutput bounds each captured stream.
	DefaultMaxOutput = 1 << 20
)

// BaseEnv names the variables every program inherits from the server.
var BaseEnv = []string{"PATH", "HOME", "TMPDIR", "LANG", "TZ"}

// Spec says what to run and how.
type Spec struct {
	// Argv is the program and its arguments, never a shell line. A
	// relative program path with a slash (bin/app) is resolved against Dir;
	// a bare name is looked up in PATH.
	Argv []string
	// Dir is the working directory ("" = the server's).
	Dir string
	// Inherit names variables, beyond BaseEnv, copied from the server's
	// environment when set (toolchain settings such as GOCACHE).
	Inherit []string
	// Env holds KEY=VALUE pairs added last; they win over inherited ones.
	Env []string
	// Stdin is the program's input (nil = none).
	Stdin io.Reader
	// Stdout and Stderr receive the output. When nil, it is captured into
	// the Output, each stream bounded by MaxOutput. Passing the same
	// *Buffer as both gives combined output.
	Stdout, Stderr io.Writer
	// MaxOutput bounds each captured stream (0 = DefaultMaxOutput).
	MaxOutput int
	// WaitDelay bounds the wait for pipes after the program ended or was
	// killed (0 = DefaultWaitDelay).
	WaitDelay time.Duration
	// KillEscaped also kills, once the program has ended, every process it
	// left that moved out of its process group (setsid, a daemon): they
	// are found by a mark in their environment, which they inherit.
	KillEscaped bool
}

// Output is what Run captured; a stream given a writer in Spec is empty here.
type Output struct {
	Stdout, Stderr []byte
	// Truncated says a captured stream exceeded MaxOutput: only its last
	// MaxOutput bytes are kept.
	Truncated bool
}

// ExitError is returned when the program started but did not succeed:
// it exited non-zero, was killed, or ctx ended the run.
type ExitError struct {
	// Program is the base name of Argv[0]; arguments are left out since
	// they may be long or sensitive.
	Program string
	// Code is the exit status, or -1 when the program was killed by a signal.
	Code int
	// Err is ctx's error when the context ended the run, otherwise the
	// error from waiting for the program.
	Err error
}

func (e *ExitError) Error() string {
	if e.Code > 0 {
		return fmt.Sprintf("%s: exit status %d", e.Program, e.Code)
	}
	if e.Code == 0 { // exited, but left its output pipes open past WaitDelay
		return fmt.Sprintf("%s: %v", e.Program, e.Err)
	}
	return fmt.Sprintf("%s: killed: %v", e.Program, e.Err)
}

func (e *ExitError) Unwrap() error { return e.Err }

// Environ returns the environment a program gets: BaseEnv and inherit
// from the server's environment when set, then extra.
func Environ(inherit, extra []string) []string {
	var env []string
	for _, names := range [][]string{BaseEnv, inherit} {
		for _, k := range names {
			if v, ok := os.LookupEnv(k); ok {
				env = append(env, k+"="+v)
			}
		}
	}
	return append(env, extra...)
}

// Run runs spec and waits for it. The program runs in its own process
// group; when ctx ends, the whole group gets SIGKILL, and whatever the
// program left running in its group is killed once it exits. A program
// that leaves the group (setsid, a double-forking daemon) is killed too
// when spec.KillEscaped is set, unless it also cleared its environment
// (only a cgroup or a PID namespace could contain that).
func Run(ctx context.Context, spec Spec) (Output, error) {
	if len(spec.Argv) == 0 || spec.Argv[0] == "" {
		return Output{}, errors.New("command: empty argv")
	}
	maxOut := spec.MaxOutput
	if maxOut <= 0 {
		maxOut = DefaultMaxOutput
	}
	bin := spec.Argv[0]
	if strings.Contains(bin, "/") && !filepath.IsAbs(bin) && spec.Dir != "" {
		bin = filepath.Join(spec.Dir, bin)
	}
	cmd := exec.CommandContext(ctx, bin, spec.Argv[1:]...)
	cmd.Dir = spec.Dir
	cmd.Env = Environ(spec.Inherit, spec.Env)
	var mark string
	if spec.KillEscaped {
		var b [8]byte
		_, _ = rand.Read(b[:])
		mark = runMark + "=" + hex.EncodeToString(b[:])
		cmd.Env = append(cmd.Env, mark)
	}
	cmd.Stdin = spec.Stdin
	var stdout, stderr *Buffer
	cmd.Stdout, cmd.Stderr = spec.Stdout, spec.Stderr
	if cmd.Stdout == nil {
		stdout = &Buffer{Max: maxOut}
		cmd.Stdout = stdout
	}
	if cmd.Stderr == nil {
		stderr = &Buffer{Max: maxOut}
		cmd.Stderr = stderr
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = spec.WaitDelay
	if cmd.WaitDelay <= 0 {
		cmd.WaitDelay = DefaultWaitDelay
	}

	if err := cmd.Start(); err != nil {
		return Output{}, fmt.Errorf("start %s: %w", filepath.Base(spec.Argv[0]), err)
	}
	err := cmd.Wait()
	// The group outlives its leader only through programs it left behind.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if mark != "" {
		killMarked(mark)
	}

	var out Output
	if stdout != nil {
		out.Stdout, out.Truncated = stdout.Bytes(), stdout.Truncated()
	}
	if stderr != nil {
		out.Stderr = stderr.Bytes()
		out.Truncated = out.Truncated || stderr.Truncated()
	}
	if err == nil {
		return out, nil
	}
	xe := &ExitError{Program: filepath.Base(spec.Argv[0]), Code: -1, Err: err}
	if ctxErr := ctx.Err(); ctxErr != nil {
		xe.Err = ctxErr
	} else if ps := cmd.ProcessState; ps != nil {
		xe.Code = ps.ExitCode()
	}
	return out, xe
}

// Buffer keeps the last Max bytes written to it (DefaultMaxOutput when
// Max is 0), so a chatty program cannot grow the server's memory; the end
// of the output is where programs say what went wrong.
type Buffer struct {
	Max int

	buf     []byte // holds up to 2*Max bytes between compactions
	dropped bool
}

func (b *Buffer) max() int {
	if b.Max <= 0 {
		return DefaultMaxOutput
	}
	return b.Max
}

// Write keeps p, dropping the oldest bytes beyond Max.
func (b *Buffer) Write(p []byte) (int, error) {
	m := b.max()
	if len(p) >= m {
		b.dropped = b.dropped || len(b.buf) > 0 || len(p) > m
		b.buf = append(b.buf[:0], p[len(p)-m:]...)
		return len(p), nil
	}
	b.buf = append(b.buf, p...)
	if len(b.buf) > 2*m {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-m:]...)
	}
	if len(b.buf) > m {
		b.dropped = true
	}
	return len(p), nil
}

// Bytes returns the kept output.
func (b *Buffer) Bytes() []byte {
	if m := b.max(); len(b.buf) > m {
		return b.buf[len(b.buf)-m:]
	}
	return b.buf
}

// String returns the kept output.
func (b *Buffer) String() string { return string(b.Bytes()) }

// Truncated says earlier output was dropped.
func (b *Buffer) Truncated() bool { return b.dropped }

// runMark names the environment variable that marks a run's processes.
const runMark = "CUTOVER_RUN"

// killMarked kills every process whose environment carries mark: what a
// run left behind outside its process group.
func killMarked(mark string) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	want := []byte(mark + "\x00")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !bytes.Contains(env, want) {
			continue
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}
