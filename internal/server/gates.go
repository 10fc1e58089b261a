package server

import (
	"context"
	"errors"
	"strings"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/deploy"
	"github.com/cutover/cutover/internal/release"
)

// compatGate adapts release management's backwards-compatibility check to
// a deploy.Gate: before a commit is promoted, the oldest compatible
// version's tests run against it where it is live.
type compatGate struct{ rel *release.Service }

var _ deploy.Gate = compatGate{}

func (compatGate) Name() string { return release.CompatCheck }

func (g compatGate) Decide(ctx context.Context, in deploy.GateInput) (deploy.Decision, error) {
	if in.From == nil {
		return deploy.Allowed(), nil
	}
	err := g.rel.BeforePromotion(ctx, in.App, in.Deployment.SHA, in.Manifest, *in.From)
	switch {
	case err == nil:
		return deploy.Allowed(), nil
	case errors.Is(err, core.ErrInvalid), errors.Is(err, core.ErrConflict):
		msg := strings.TrimPrefix(err.Error(), core.ErrInvalid.Error()+": ")
		msg = strings.TrimPrefix(msg, "refused by the backwards-compatibility gate: ")
		return deploy.Denied(msg), nil
	default:
		return deploy.Decision{}, err
	}
}
