package sqlstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"
)

// Installation returns this database's installation id: random, made by
// the first server that asks, and the same for every server sharing the
// database afterwards (whatever its data dir or database URL spelling).
func (s *Store) Installation(ctx context.Context) (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	if _, err := s.db.ExecContext(ctx, s.q(`INSERT INTO installation (singleton, id, created_at) VALUES (1, ?, ?)
		ON CONFLICT (singleton) DO NOTHING`), hex.EncodeToString(b[:]), time.Now().UnixNano()); err != nil {
		return "", fmt.Errorf("installation id: %w", err)
	}
	var id string
	if err := s.db.QueryRowContext(ctx, s.q(`SELECT id FROM installation WHERE singleton = 1`)).Scan(&id); err != nil {
		return "", fmt.Errorf("installation id: %w", err)
	}
	return id, nil
}
