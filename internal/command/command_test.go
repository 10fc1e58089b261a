package command

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/testutil"
)

func TestRun_ArgvIsNotShellInterpreted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	arg := "a b; touch pwned $(touch pwned2) `touch pwned3` > out"
	out, err := Run(context.Background(), Spec{Argv: []string{"printf", "%s", arg}, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(out.Stdout), arg; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		t.Errorf("a shell ran: %s was created", e.Name())
	}
}

func TestRun_EnvironmentIsAllowListed(t *testing.T) {
	t.Setenv("CUTOVER_TEST_SECRET", "s3cret")
	t.Setenv("CUTOVER_TEST_TOOL", "tool")
	t.Setenv("TZ", "UTC")
	out, err := Run(context.Background(), Spec{
		Argv:    []string{"env"},
		Inherit: []string{"CUTOVER_TEST_TOOL"},
		Env:     []string{"EXTRA=1", "TZ=Europe/Paris"},
	})
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, kv := range strings.Split(strings.TrimSpace(string(out.Stdout)), "\n") {
		k, v, _ := strings.Cut(kv, "=")
		if _, ok := env[k]; ok {
			t.Errorf("%s given twice", k)
		}
		env[k] = v
	}
	allowed := map[string]bool{"CUTOVER_TEST_TOOL": true, "EXTRA": true}
	for _, k := range BaseEnv {
		allowed[k] = true
	}
	for k := range env {
		if !allowed[k] {
			t.Errorf("%s leaked into the environment", k)
		}
	}
	for k, want := range map[string]string{"CUTOVER_TEST_TOOL": "tool", "EXTRA": "1", "TZ": "Europe/Paris", "PATH": os.Getenv("PATH")} {
		if got := env[k]; got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

func TestRun_CancelKillsProcessGroup(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	pidFile := filepath.Join(t.TempDir(), "pid")
	done := make(chan error, 1)
	go func() {
		// The grandchild holds the output pipe: without a group kill, Run
		// would wait for it (or for WaitDelay, set long here).
		_, err := Run(ctx, Spec{Argv: []string{"sh", "-c", `sleep 30 & echo $! > "$1"; wait`, "sh", pidFile}, WaitDelay: time.Minute})
		done <- err
	}()
	var pid int
	testutil.WaitFor(t, "the grandchild's pid", 10*time.Second, func() bool {
		b, _ := os.ReadFile(pidFile)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return pid != 0
	})
	cancel()
	var err error
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after cancel: the grandchild outlived the group")
	}
	var xe *ExitError
	if !errors.As(err, &xe) || !errors.Is(err, context.Canceled) || xe.Code != -1 {
		t.Errorf("err = %#v, want an ExitError wrapping context.Canceled with code -1", err)
	}
	// SIGKILL is delivered asynchronously: poll until the grandchild is gone.
	testutil.WaitFor(t, fmt.Sprintf("grandchild %d to be gone", pid), 10*time.Second, func() bool { return !alive(pid) })
}

// alive reports whether pid runs (a zombie awaiting its reaper does not).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z") && !strings.HasPrefix(rest, "X")
}

func TestRun_ExitStatusAndStderr(t *testing.T) {
	t.Parallel()
	out, err := Run(context.Background(), Spec{Argv: []string{"sh", "-c", "echo oops >&2; exit 3"}})
	var xe *ExitError
	if !errors.As(err, &xe) {
		t.Fatalf("err = %v, want *ExitError", err)
	}
	if got, want := xe.Code, 3; got != want {
		t.Errorf("code = %d, want %d", got, want)
	}
	if got, want := err.Error(), "sh: exit status 3"; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
	if got, want := string(out.Stderr), "oops\n"; got != want {
		t.Errorf("stderr = %q, want %q", got, want)
	}
	if _, err := Run(context.Background(), Spec{Argv: []string{"no-such-program-xyz"}}); err == nil || errors.As(err, &xe) {
		t.Errorf("missing program: err = %v, want a start error", err)
	}
}

// Not parallel: a program written and then run while another test forks
// can fail with "text file busy" (the fork holds the write descriptor).
func TestRun_RelativeProgramResolvesAgainstDir(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "bin"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "bin", "hi"), []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := Run(context.Background(), Spec{Argv: []string{"bin/hi"}, Dir: dir})
	if err != nil || string(out.Stdout) != "hi\n" {
		t.Errorf("out = %q, err = %v", out.Stdout, err)
	}
}

func TestRun_OutputIsBounded(t *testing.T) {
	t.Parallel()
	out, err := Run(context.Background(), Spec{Argv: []string{"sh", "-c", "i=0; while [ $i -lt 1000 ]; do echo line$i; i=$((i+1)); done"}, MaxOutput: 100})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(out.Stdout), 100; got != want {
		t.Errorf("kept %d bytes, want %d", got, want)
	}
	if !out.Truncated || !strings.HasSuffix(string(out.Stdout), "line999\n") {
		t.Errorf("truncated = %v, tail = %q", out.Truncated, out.Stdout)
	}
}

func TestBuffer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		max       int
		writes    []string
		want      string
		truncated bool
	}{
		{"fits", 5, []string{"ab", "cd"}, "abcd", false},
		{"exact", 4, []string{"ab", "cd"}, "abcd", false},
		{"drops oldest", 4, []string{"abc", "def"}, "cdef", true},
		{"one large write", 3, []string{"abcdef"}, "def", true},
		{"many small writes", 3, []string{"a", "b", "c", "d", "e", "f", "g", "h"}, "fgh", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &Buffer{Max: tc.max}
			for _, w := range tc.writes {
				if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", w, n, err)
				}
			}
			if got := b.String(); got != tc.want {
				t.Errorf("kept %q, want %q", got, tc.want)
			}
			if got := b.Truncated(); got != tc.truncated {
				t.Errorf("truncated = %v, want %v", got, tc.truncated)
			}
		})
	}
}

// A program that escapes the process group with setsid is killed with
// KillEscaped, and survives without it.
func TestRun_KillEscaped(t *testing.T) {
	t.Parallel()
	for _, kill := range []bool{true, false} {
		t.Run(map[bool]string{true: "killed", false: "escapes without"}[kill], func(t *testing.T) {
			t.Parallel()
			pidFile := filepath.Join(t.TempDir(), "pid")
			_, err := Run(context.Background(), Spec{Argv: []string{"sh", "-c",
				// The child writes its pid once it has its own session; the
				// parent waits for that, so the group kill cannot catch it.
				`setsid sh -c 'echo $$ > "$0.tmp"; mv "$0.tmp" "$0"; exec sleep 30' "$1" </dev/null >/dev/null 2>&1 & while [ ! -s "$1" ]; do sleep 0.01; done`,
				"sh", pidFile}, KillEscaped: kill})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(pidFile)
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			if pid <= 0 {
				t.Fatalf("no pid: %q", b)
			}
			t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
			if !kill {
				if !alive(pid) {
					t.Error("the setsid child died without KillEscaped: the test proves nothing")
				}
				return
			}
			testutil.WaitFor(t, fmt.Sprintf("the setsid child %d to be killed", pid), 10*time.Second, func() bool { return !alive(pid) })
		})
	}
}
