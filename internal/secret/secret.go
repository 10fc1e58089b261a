// Package secret encrypts secret config values at rest (AES-256-GCM with a
// random nonce per value) and redacts them from text.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

const (
	keySize = 32
	prefix  = "v1:"
	// Redacted replaces a secret value in text.
	Redacted = "[redacted]"
	// minRedactLen: shorter values would redact ordinary words.
	minRedactLen = 4
)

// Box seals and opens values with one key.
type Box struct{ aead cipher.AEAD }

// NewBox returns a Box for a 32-byte key.
func NewBox(key []byte) (*Box, error) {
	if len(key) != keySize {
		return nil, fmt.Errorf("secret key: %d bytes, want %d", len(key), keySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Box{aead: aead}, nil
}

// LoadOrCreateKey reads the key file at path, creating it with a random key
// and mode 0600 on first use. A key file readable by others is refused.
func LoadOrCreateKey(path string) (*Box, error) {
	key, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key = make([]byte, keySize)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create secret key %s: %w", path, err)
		}
		if _, err := f.Write(key); err != nil {
			f.Close()
			return nil, err
		}
		if err := f.Close(); err != nil {
			return nil, err
		}
		return NewBox(key)
	}
	if err != nil {
		return nil, fmt.Errorf("read secret key %s: %w", path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("secret key %s has mode %v: want 0600 (chmod 600 %s)", path, fi.Mode().Perm(), path)
	}
	if len(key) != keySize {
		return nil, fmt.Errorf("secret key %s: %d bytes, want %d", path, len(key), keySize)
	}
	return NewBox(key)
}

// Seal encrypts plaintext into a printable, versioned string.
func (b *Box) Seal(plaintext []byte) (string, error) {
	nonce := make([]byte, b.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	out := b.aead.Seal(nonce, nonce, plaintext, nil)
	return prefix + base64.RawStdEncoding.EncodeToString(out), nil
}

// Open decrypts a string made by Seal.
func (b *Box) Open(sealed string) ([]byte, error) {
	if !strings.HasPrefix(sealed, prefix) {
		return nil, errors.New("secret: unknown encoding")
	}
	raw, err := base64.RawStdEncoding.DecodeString(sealed[len(prefix):])
	if err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	n := b.aead.NonceSize()
	if len(raw) < n {
		return nil, errors.New("secret: too short")
	}
	pt, err := b.aead.Open(nil, raw[:n], raw[n:], nil)
	if err != nil {
		return nil, errors.New("secret: cannot decrypt (wrong key or tampered value)")
	}
	return pt, nil
}

// Redact replaces every secret value that occurs in s.
func Redact(s string, secrets map[string]string) string {
	for _, v := range secrets {
		if len(v) >= minRedactLen {
			s = strings.ReplaceAll(s, v, Redacted)
		}
	}
	return s
}
