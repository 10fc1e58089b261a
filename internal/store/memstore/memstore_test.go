package memstore

import (
	"testing"

	"github.com/cutover/cutover/internal/deploy"
	"github.com/cutover/cutover/internal/store/storetest"
)

var _ deploy.Store = (*Store)(nil)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) deploy.Store { return New() })
}
