package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadOrCreateToken_EmptyFileSaysHowToFix(t *testing.T) {
	path := filepath.Join(t.TempDir(), TokenFile)
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tok, _, err := loadOrCreateToken(path, "")
	if err == nil {
		t.Fatalf("token %q accepted from an empty file", tok)
	}
	for _, want := range []string{path, "delete the file", "CUTOVER_TOKEN"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestLoadOrCreateToken_WritesAtomically(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, TokenFile)
	tok, created, err := loadOrCreateToken(path, "")
	if err != nil || !created {
		t.Fatalf("created = %v, err = %v", created, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("mode = %v, want 0600", got)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("data dir holds %d entries, want only the token file (no temporary left)", len(ents))
	}
	again, created, err := loadOrCreateToken(path, "")
	if err != nil || created || again != tok {
		t.Fatalf("second load = %q created=%v err=%v, want %q", again, created, err, tok)
	}
}
