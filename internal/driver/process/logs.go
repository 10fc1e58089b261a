package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Instances write their output straight to files (so it survives a server
// restart), which the driver bounds from the outside:
//
//   - a running instance's log above LogMaxBytes is copy-truncated: its
//     newest LogMaxBytes go to LOG.1 (older ones are dropped, and LOG.1 says
//     how many), the live file is truncated, and at most LogKeep rotated
//     files are kept. Copy-truncate works with the children's O_APPEND
//     descriptors; output written during the copy window can be lost.
//   - the log of an instance that no longer runs is trimmed in place to its
//     newest LogMaxBytes (Driver.Logs reads it after the instance exited)
//     and deleted, with its rotated files, LogRetention after its last
//     output.
//
// Copies go file to file (copy_file_range where the kernel has it), never
// through a buffer the size of the log.

// rotateLoop checks running instances' logs every LogCheckInterval and
// every instance's log every logSweepInterval.
func (d *Driver) rotateLoop() {
	defer d.stopped.Done()
	check := time.NewTicker(d.cfg.LogCheckInterval)
	defer check.Stop()
	sweep := time.NewTicker(logSweepInterval)
	defer sweep.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-check.C:
			d.RotateLogs()
		case <-sweep.C:
			d.CollectLogs(time.Now())
		}
	}
}

// RotateLogs rotates every running instance's log above the size limit now.
func (d *Driver) RotateLogs() {
	d.logMu.Lock()
	defer d.logMu.Unlock()
	insts, err := d.List(context.Background())
	if err != nil {
		return
	}
	for _, in := range insts {
		if err := rotate(d.logPath(in), d.cfg.LogMaxBytes, d.cfg.LogKeep); err != nil {
			d.log.Warn("rotate log", "instance", in.ID, "err", err)
		}
	}
}

// CollectLogs bounds the logs of instances that no longer run: it trims
// each to LogMaxBytes, deletes rotated files beyond LogKeep, and deletes
// the logs whose last output is older than LogRetention at now.
func (d *Driver) CollectLogs(now time.Time) {
	d.logMu.Lock()
	defer d.logMu.Unlock()
	insts, err := d.List(context.Background())
	if err != nil {
		return
	}
	running := make(map[string]bool, len(insts))
	for _, in := range insts {
		running[in.ID] = true
	}
	logs, err := filepath.Glob(filepath.Join(d.cfg.StateDir, "logs", "*", "*", "*.log"))
	if err != nil {
		return
	}
	for _, path := range logs {
		id := strings.TrimSuffix(filepath.Base(path), ".log")
		if running[id] {
			continue
		}
		if err := d.collect(path, now); err != nil {
			d.log.Warn("collect log", "instance", id, "err", err)
		}
	}
}

func (d *Driver) collect(path string, now time.Time) error {
	fi, err := os.Stat(path)
	if err != nil {
		return nil // removed meanwhile
	}
	rotated, _ := filepath.Glob(globEscape(path) + ".*")
	if now.Sub(fi.ModTime()) > d.cfg.LogRetention {
		var errs []error
		for _, p := range append(rotated, path) {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	for _, p := range rotated {
		if n, err := strconv.Atoi(strings.TrimPrefix(p, path+".")); err == nil && n > d.cfg.LogKeep {
			_ = os.Remove(p) // LogKeep was lowered
		}
	}
	if fi.Size() > d.cfg.LogMaxBytes {
		return trim(path, d.cfg.LogMaxBytes)
	}
	return nil
}

// rotate copy-truncates path when it holds more than max bytes.
func rotate(path string, max int64, keep int) error {
	src, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil || fi.Size() <= max {
		return err
	}
	tmp, err := copyTail(src, fi.Size(), path+".1", max)
	if err != nil {
		return err
	}
	// Truncate right after the copy: what the instance writes in between
	// is lost, so the window is kept short.
	if err := os.Truncate(path, 0); err != nil {
		os.Remove(tmp)
		return err
	}
	for i := keep - 1; i >= 1; i-- {
		_ = os.Rename(fmt.Sprintf("%s.%d", path, i), fmt.Sprintf("%s.%d", path, i+1))
	}
	return os.Rename(tmp, path+".1")
}

// trim replaces path, which nobody writes any more, by its newest max bytes.
func trim(path string, max int64) error {
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil || fi.Size() <= max {
		return err
	}
	tmp, err := copyTail(src, fi.Size(), path, max)
	if err != nil {
		return err
	}
	// Keep the time of the last output: retention counts from it.
	_ = os.Chtimes(tmp, fi.ModTime(), fi.ModTime())
	return os.Rename(tmp, path)
}

// copyTail writes the newest max bytes of src (of size bytes, though it may
// have grown since) to a new temporary file beside dst and returns its
// name. When it drops older bytes, the file starts with a line saying so.
func copyTail(src *os.File, size int64, dst string, max int64) (string, error) {
	out, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-*")
	if err != nil {
		return "", err
	}
	ok := false
	defer func() {
		if !ok {
			out.Close()
			os.Remove(out.Name())
		}
	}()
	if drop := size - max; drop > 0 {
		if _, err := fmt.Fprintf(out, "[cutover: %d earlier bytes dropped: the log grew past its limit of %d bytes between two rotations]\n", drop, max); err != nil {
			return "", err
		}
		if _, err := src.Seek(drop, io.SeekStart); err != nil {
			return "", err
		}
	}
	// Bytes appended since the size was read are copied too, up to max
	// more: a fast writer cannot keep the copy going.
	if _, err := io.Copy(out, io.LimitReader(src, 2*max)); err != nil {
		return "", err
	}
	if err := out.Close(); err != nil {
		return "", err
	}
	ok = true
	return out.Name(), nil
}

// globEscape quotes the glob metacharacters in a path.
func globEscape(p string) string {
	var b strings.Builder
	for _, r := range p {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
