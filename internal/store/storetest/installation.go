package storetest

import (
	"context"
	"sync"
	"testing"
)

// InstallationStore names the installation a database belongs to.
type InstallationStore interface {
	Installation(ctx context.Context) (string, error)
}

// RunInstallation checks the installation id: made once, the same for
// every caller, concurrent first callers included, and kept across a
// reopen (reopen returns a second store on the same database).
func RunInstallation(t *testing.T, open func(t *testing.T) (InstallationStore, func() InstallationStore)) {
	t.Run("one id per database", func(t *testing.T) {
		s, reopen := open(t)
		ids := make([]string, 8)
		var wg sync.WaitGroup
		for i := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id, err := s.Installation(context.Background())
				if err != nil {
					t.Error(err)
				}
				ids[i] = id
			}()
		}
		wg.Wait()
		for _, id := range ids {
			if len(id) != 16 || id != ids[0] {
				t.Fatalf("installation ids = %q, want one 16-hex id", ids)
			}
		}
		if again, err := reopen().Installation(context.Background()); err != nil || again != ids[0] {
			t.Errorf("after a reopen: %q, %v; want %q", again, err, ids[0])
		}
	})
}
