package proxy

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// MinAdminTokenLen is the shortest admin token a TCP admin endpoint accepts.
const MinAdminTokenLen = 16

// ErrWeakToken says a token file or variable holds no usable token.
var ErrWeakToken = errors.New("admin token is empty or too short")

// LoadOrCreateAdminToken returns the admin token kept in path, or a new
// random one written there atomically with mode 0600. An empty or short
// file (a crash while an older version wrote it leaves one) is an error,
// never "no token": an empty token would open the admin API to everyone.
func LoadOrCreateAdminToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		fi, err := os.Stat(path)
		if err != nil {
			return "", err
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return "", fmt.Errorf("admin token file %s has mode %v: want 0600 (chmod 600 %s)", path, fi.Mode().Perm(), path)
		}
		t := strings.TrimSpace(string(b))
		if len(t) < MinAdminTokenLen {
			return "", fmt.Errorf("%w: admin token file %s holds %d characters, at least %d are required: delete the file to have a new token created, or set CUTOVER_PROXY_TOKEN",
				ErrWeakToken, path, len(t), MinAdminTokenLen)
		}
		return t, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("read admin token file: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	t := hex.EncodeToString(raw)
	if err := WriteFileAtomic(path, []byte(t+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write admin token file: %w", err)
	}
	return t, nil
}

// WriteFileAtomic replaces path with data: readers see the old content or
// all of the new, never a partial file, even after a crash. It writes a
// temporary file in the same directory, syncs it, renames it over path and
// syncs the directory.
func WriteFileAtomic(path string, data []byte, perm fs.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // the rename itself is durable only once the directory is
		d.Close()
	}
	return nil
}
