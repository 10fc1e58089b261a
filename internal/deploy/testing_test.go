package deploy

import (
	"context"

	"github.com/cutover/cutover/internal/manifest"
)

// fakeStats is a Router that only reports counters; the real proxy is
// exercised by the end-to-end tests in internal/server.
type fakeStats struct{ cur RouteStats }

func (f *fakeStats) Route(context.Context, RouteSpec) error            { return nil }
func (f *fakeStats) Stats(context.Context, string) (RouteStats, error) { return f.cur, nil }
func (f *fakeStats) Remove(context.Context, string) error              { return nil }

func verifyCfg(min int, max float64) manifest.Verify {
	return manifest.Verify{MinRequests: min, MaxErrorRate: max}
}
