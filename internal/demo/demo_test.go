package demo

import (
	"context"
	"strings"
	"testing"

	"github.com/cutover/cutover/internal/testutil"
)

// TestDemo runs `cutover demo` end to end: it must finish with no failed
// request across its deploys, automatic switch-back and rollbacks.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole demo")
	}
	var out strings.Builder
	res, err := Run(context.Background(), Options{Out: &out, Workers: 4,
		StagingListen: testutil.ListenAddr(t), ProductionListen: testutil.ListenAddr(t)})
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	if res.Failed != 0 || res.Requests == 0 {
		t.Fatalf("load: %d requests, %d failed\n%s", res.Requests, res.Failed, out.String())
	}
	for _, want := range []string{"rolled_back", "rollback", "production refuses v3", "0 failed requests",
		"requested by auto-deploy", ">> notification deploy.rolled_back", ">> notification rollback", ">> notification override"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if len(res.Versions) < 2 {
		t.Errorf("load saw versions %v, want answers from several releases", res.Versions)
	}
}
