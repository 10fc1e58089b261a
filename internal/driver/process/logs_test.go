package process

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/testutil"
)

// burstLog writes a log of size bytes whose last line is last. The file is
// sparse: making it costs no time, reading it into memory still would.
func burstLog(t *testing.T, path string, size int64, last string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size - int64(len(last))); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(last), size-int64(len(last))); err != nil {
		t.Fatal(err)
	}
}

// heapAllocated returns the bytes fn allocated on the heap (every
// goroutine's, so the test does not run in parallel).
func heapAllocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// A burst far above the limit: the live log ends empty, the rotated file
// holds the newest LogMaxBytes, and rotating never holds the log in memory.
func TestRotate_BurstIsBoundedOnDiskAndInMemory(t *testing.T) {
	const (
		max   = 1 << 20
		burst = 100 << 20
	)
	path := filepath.Join(t.TempDir(), "app", "env", "i.log")
	burstLog(t, path, burst, "last line\n")
	var err error
	alloc := heapAllocated(func() { err = rotate(path, max, 3) })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rotating a %d MiB log allocated %d KiB", burst>>20, alloc>>10)
	if alloc > max/4 {
		t.Errorf("rotating a %d-byte log allocated %d bytes: it must stream, not read the file", burst, alloc)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 0 {
		t.Fatalf("live log after rotation: %v, %v", fi.Size(), err)
	}
	b, err := os.ReadFile(path + ".1")
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > max+200 {
		t.Errorf("rotated log holds %d bytes, limit %d", len(b), max)
	}
	if !bytes.HasPrefix(b, []byte(fmt.Sprintf("[cutover: %d earlier bytes dropped", burst-max))) || !bytes.HasSuffix(b, []byte("last line\n")) {
		t.Errorf("rotated log starts %q, ends %q", b[:80], b[len(b)-20:])
	}
}

func TestRotate_KeepsAtMostLogKeep(t *testing.T) {
	path := filepath.Join(t.TempDir(), "i.log")
	for i := range 6 {
		burstLog(t, path, 100, fmt.Sprintf("round %d\n", i))
		if err := rotate(path, 10, 3); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range []string{"round 5", "round 4", "round 3"} {
		b, err := os.ReadFile(fmt.Sprintf("%s.%d", path, i+1))
		if err != nil || !strings.Contains(string(b), want) {
			t.Errorf("%s.%d = %q, %v; want %q", path, i+1, b, err, want)
		}
	}
	if _, err := os.Stat(path + ".4"); !os.IsNotExist(err) {
		t.Errorf("%s.4 exists: more than LogKeep rotated files", path)
	}
}

// A real child writing far more than the limit, as fast as it can: once it
// is done and the driver has checked, nothing is far above the limit.
func TestDriver_BurstFromInstance(t *testing.T) {
	const max = 256 << 10
	d, err := New(Config{StateDir: t.TempDir(), LogMaxBytes: max, LogKeep: 2, LogCheckInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	s := spec(1)
	s.Command = []string{"/bin/sh", "-c", "head -c 32000000 /dev/zero | tr '\\0' x; echo; echo burst-done; exec sleep 60"}
	insts, err := d.Start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Stop(context.Background(), insts, time.Second) })
	path := d.logPath(insts[0])
	// The burst is over when the shell has exec'd sleep (the log itself
	// may have lost the marker line: copy-truncate can drop what is written
	// between the copy and the truncate).
	comm := "/proc/" + insts[0].Data["pid"] + "/comm"
	testutil.WaitFor(t, "the burst to finish (the shell to exec sleep)", 60*time.Second, func() bool {
		b, _ := os.ReadFile(comm)
		return strings.TrimSpace(string(b)) == "sleep"
	})
	d.RotateLogs()
	files, _ := filepath.Glob(path + "*")
	if len(files) > 3 {
		t.Errorf("%d log files, want the live one and at most LogKeep=2: %v", len(files), files)
	}
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil && fi.Size() > 2*max+200 {
			t.Errorf("%s holds %d bytes, limit %d", f, fi.Size(), max)
		}
	}
}

func TestCollectLogs_TrimsThenDeletesStoppedInstancesLogs(t *testing.T) {
	const max = 1 << 10
	dir := t.TempDir()
	d, err := New(Config{StateDir: dir, LogMaxBytes: max, LogCheckInterval: time.Hour, LogRetention: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	// A running instance whose last output is old keeps its log.
	insts, err := d.Start(context.Background(), spec(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Stop(context.Background(), insts, time.Second) })
	waitUp(t, insts[0].Addr)
	running := d.logPath(insts[0])

	now := time.Now()
	old := now.Add(-48 * time.Hour)
	stoppedOld := d.logPath(core.Instance{ID: "web-prod-blue-r1-0-aaaaaa", App: "web", Env: "prod"})
	stoppedNew := d.logPath(core.Instance{ID: "web-prod-green-r2-0-bbbbbb", App: "web", Env: "prod"})
	burstLog(t, stoppedOld, 100, "old\n")
	burstLog(t, stoppedOld+".1", 100, "old rotated\n")
	burstLog(t, stoppedNew, 10*max, "why it failed\n")
	burstLog(t, stoppedNew+".7", 100, "beyond LogKeep\n")
	for _, p := range []string{stoppedOld, stoppedOld + ".1", running} {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}

	d.CollectLogs(now)

	for _, p := range []string{stoppedOld, stoppedOld + ".1", stoppedNew + ".7"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s kept: %v", filepath.Base(p), err)
		}
	}
	if _, err := os.Stat(running); err != nil {
		t.Errorf("running instance's log: %v", err)
	}
	// The recently failed instance's log stays readable, trimmed.
	var b strings.Builder
	if err := d.Logs(context.Background(), core.Instance{ID: "web-prod-green-r2-0-bbbbbb", App: "web", Env: "prod"}, 0, &b); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(b.String(), "why it failed\n") || b.Len() > max+200 {
		t.Errorf("stopped instance's log: %d bytes ending %q", b.Len(), b.String()[b.Len()-min(b.Len(), 20):])
	}

	d.CollectLogs(now.Add(48 * time.Hour))
	if _, err := os.Stat(stoppedNew); !os.IsNotExist(err) {
		t.Errorf("log kept past its retention: %v", err)
	}
}
