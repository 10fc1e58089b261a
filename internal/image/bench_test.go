package image

import (
	"context"
	"io"
	"testing"
)

// BenchmarkBuild measures one build of the example image (a static Go
// binary FROM scratch): cold (no layer cached), cached (a new commit with
// the same files: every step from the cache but the labels) and cached
// with the push to an in-process registry.
//
//	go test -run '^$' -bench Build -benchtime 5x ./internal/image/
func BenchmarkBuild(b *testing.B) {
	ctx := context.Background()
	b.Run("cold", func(b *testing.B) {
		im := newImages(b, Registry{})
		app := uniqueName("bench-cold")
		cleanupRepo(b, im, app)
		for b.Loop() {
			b.StopTimer()
			dir := appContext(b, "cold", "") // a new variant.txt: nothing cached
			b.StartTimer()
			if _, err := im.Build(ctx, BuildRequest{App: app, SHA: fakeSHA(), ContextDir: dir}, io.Discard); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, bc := range []struct {
		name string
		push bool
	}{{"cached", false}, {"cached+push", true}} {
		b.Run(bc.name, func(b *testing.B) {
			reg := Registry{}
			if bc.push {
				reg.Repo = serveRegistry(b) + "/bench"
			}
			im := newImages(b, reg)
			app := uniqueName("bench-cached")
			cleanupRepo(b, im, app)
			dir := appContext(b, "cached", "")
			// The first build fills the cache and keeps it alive.
			if _, err := im.Build(ctx, BuildRequest{App: app, SHA: fakeSHA(), ContextDir: dir}, io.Discard); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := im.Build(ctx, BuildRequest{App: app, SHA: fakeSHA(), ContextDir: dir}, io.Discard); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
