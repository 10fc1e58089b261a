package server_test

import (
	"context"
	"testing"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/deploy"
)

// TestDeployOnPostgres runs the release path with PostgreSQL as the store.
func TestDeployOnPostgres(t *testing.T) {
	e := newEnvOn(t, pgSchema(t))
	e.deploy("staging", core.StateSucceeded)
	e.version("v2", "")
	e.deploy("staging", core.StateSucceeded)
	e.serves(e.staging, "v2")
	rb, err := e.svc.Rollback(context.Background(), deploy.RollbackRequest{App: "hello", Env: "staging"})
	if err != nil {
		t.Fatal(err)
	}
	e.wait(rb, core.StateSucceeded)
	e.serves(e.staging, "v1")
	// A restart on the same database finds everything.
	e.close(false)
	e.open()
	if st := e.state("staging"); st.LiveRelease() != rb.Release {
		t.Errorf("after restart live = v%d, want v%d", st.LiveRelease(), rb.Release)
	}
}
