package secret

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSealOpenAndKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	b, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode = %v", fi.Mode().Perm())
	}
	s1, _ := b.Seal([]byte("hunter22"))
	s2, _ := b.Seal([]byte("hunter22"))
	if s1 == s2 || strings.Contains(s1, "hunter22") {
		t.Errorf("sealed values must differ and hide the plaintext: %q %q", s1, s2)
	}
	b2, err := LoadOrCreateKey(path) // reload the same key
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := b2.Open(s1); err != nil || string(pt) != "hunter22" {
		t.Fatalf("open = %q, %v", pt, err)
	}
	for name, bad := range map[string]string{
		"tampered":  s1[:len(s1)-2] + "AA",
		"no prefix": strings.TrimPrefix(s1, "v1:"),
		"garbage":   "v1:!!!",
	} {
		if _, err := b.Open(bad); err == nil {
			t.Errorf("%s: opened", name)
		}
	}
	other, _ := LoadOrCreateKey(filepath.Join(t.TempDir(), "other"))
	if _, err := other.Open(s1); err == nil {
		t.Error("opened with the wrong key")
	}
	os.Chmod(path, 0o644)
	if _, err := LoadOrCreateKey(path); err == nil || !strings.Contains(err.Error(), "0600") {
		t.Errorf("world-readable key: err = %v", err)
	}
	short := filepath.Join(t.TempDir(), "short")
	os.WriteFile(short, []byte("abc"), 0o600)
	if _, err := LoadOrCreateKey(short); err == nil {
		t.Error("short key accepted")
	}
}

func TestRedact(t *testing.T) {
	got := Redact("token=abcd1234 and x", map[string]string{"T": "abcd1234", "S": "x"})
	if got != "token=[redacted] and x" {
		t.Errorf("got %q", got)
	}
}
