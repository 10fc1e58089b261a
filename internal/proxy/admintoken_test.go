package proxy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadOrCreateAdminToken_CreatesAtomically(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state", "admin-token")
	tok, err := LoadOrCreateAdminToken(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) < MinAdminTokenLen {
		t.Fatalf("token %q is too short", tok)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fi.Mode().Perm(), os.FileMode(0o600); got != want {
		t.Errorf("mode = %v, want %v", got, want)
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Errorf("state dir holds %d entries, want only the token file (no temporary left)", len(ents))
	}
	again, err := LoadOrCreateAdminToken(path)
	if err != nil || again != tok {
		t.Fatalf("second load = %q, %v; want %q", again, err, tok)
	}
}

func TestLoadOrCreateAdminToken_RefusesWeakOrOpenFile(t *testing.T) {
	for _, tc := range []struct {
		name, content string
		mode          os.FileMode
		want          string
	}{
		{"empty", "", 0o600, "delete the file"},
		{"whitespace", " \n", 0o600, "delete the file"},
		{"short", "abc\n", 0o600, "CUTOVER_PROXY_TOKEN"},
		{"readable by others", strings.Repeat("a", 32), 0o644, "want 0600"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "admin-token")
			if err := os.WriteFile(path, []byte(tc.content), tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			tok, err := LoadOrCreateAdminToken(path)
			if err == nil {
				t.Fatalf("token %q accepted", tok)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if tc.content != strings.Repeat("a", 32) && !errors.Is(err, ErrWeakToken) {
				t.Errorf("error %v is not ErrWeakToken", err)
			}
		})
	}
}

func TestWriteFileAtomic_ReplacesWholeFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("old content that is longer"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(path, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	fi, _ := os.Stat(path)
	if string(b) != "new" || fi.Mode().Perm() != 0o600 {
		t.Errorf("file = %q mode %v, want \"new\" mode 0600", b, fi.Mode().Perm())
	}
}
