package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/api"
	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/deploy"
	"github.com/cutover/cutover/internal/manifest"
	"github.com/cutover/cutover/internal/store/memstore"
)

// The event stream is tested on a deploy machine whose runtime parts are
// never reached: only its timeline is.
type unused struct{}

// noBuilder is the builder such a machine never calls.
type noBuilder struct{}

func (unused) Start(context.Context, core.GroupSpec) ([]core.Instance, error) { return nil, nil }
func (unused) Stop(context.Context, []core.Instance, time.Duration) error     { return nil }
func (unused) List(context.Context) ([]core.Instance, error)                  { return nil, nil }
func (unused) RunTask(context.Context, core.TaskSpec, io.Writer) error        { return nil }
func (unused) Logs(context.Context, core.Instance, int64, io.Writer) error    { return nil }
func (unused) Probe(context.Context, core.Instance, core.ProbeRequest) (core.ProbeResult, error) {
	return core.ProbeResult{}, nil
}
func (unused) Exited(context.Context, core.Instance) (string, bool) { return "", false }
func (unused) Route(context.Context, deploy.RouteSpec) error        { return nil }
func (unused) Remove(context.Context, string) error                 { return nil }
func (unused) Stats(context.Context, string) (deploy.RouteStats, error) {
	return deploy.RouteStats{}, nil
}
func (unused) ResolveCommit(context.Context, string, string) (string, error)      { return "", nil }
func (unused) Log(context.Context, string, string, string) ([]core.Commit, error) { return nil, nil }

func (unused) ReadFile(context.Context, string, string, string) ([]byte, error) {
	return nil, nil
}
func (noBuilder) Build(context.Context, core.App, string, io.Writer) (core.Artifact, *manifest.Manifest, error) {
	return core.Artifact{}, nil, nil
}
func (noBuilder) Remove(context.Context, core.Artifact) error { return nil }
func (noBuilder) Manifest(context.Context, core.Artifact) (*manifest.Manifest, error) {
	return nil, nil
}

const token = "stream-test-token-0123456789"

func newAPI(t *testing.T) (*httptest.Server, *deploy.Service, *memstore.Store) {
	t.Helper()
	st := memstore.New()
	svc, err := deploy.New(deploy.Config{Store: st, Driver: unused{}, Router: unused{}, Builder: noBuilder{}, Source: unused{}, TickInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	for _, app := range []string{"hello", "other"} {
		if err := st.CreateApp(context.Background(), core.App{Name: app, Repo: "/r"}); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(api.New(api.Config{Service: svc, Token: token}))
	t.Cleanup(srv.Close)
	return srv, svc, st
}

// stream opens the event stream and returns a channel of the events read.
func stream(t *testing.T, srv *httptest.Server, query, lastID string) <-chan core.Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/v1/events/stream?"+query, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("stream: %d", resp.StatusCode)
	}
	out := make(chan core.Event, 100)
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var id string
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "id: "); ok {
				id = v
			}
			if data, ok := strings.CutPrefix(line, "data: "); ok {
				var e core.Event
				if json.Unmarshal([]byte(data), &e) == nil && strconv.FormatInt(e.ID, 10) == id {
					out <- e
				}
			}
		}
	}()
	return out
}

func next(t *testing.T, ch <-chan core.Event) core.Event {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
		return core.Event{}
	}
}

func publish(svc *deploy.Service, app, msg string) {
	svc.Publish(context.Background(), core.Event{App: app, Type: core.EventDeployStep, Message: msg})
}

func TestStreamReplaysResumesAndFilters(t *testing.T) {
	t.Parallel()
	srv, svc, st := newAPI(t)
	for _, m := range []string{"h1", "o1", "h2"} {
		app := "hello"
		if m[0] == 'o' {
			app = "other"
		}
		publish(svc, app, m)
	}

	// after=1 replays the rest, then live events follow.
	all := stream(t, srv, "after=1", "")
	if e := next(t, all); e.Message != "o1" || e.ID != 2 {
		t.Fatalf("first replayed = %+v", e)
	}
	if e := next(t, all); e.Message != "h2" {
		t.Fatalf("second replayed = %+v", e)
	}
	publish(svc, "hello", "h3")
	if e := next(t, all); e.Message != "h3" || e.ID != 4 {
		t.Fatalf("live = %+v", e)
	}

	// Last-Event-ID resumes after it; the app filter leaves other apps out,
	// and events of other apps do not make it re-read what it sent.
	hello := stream(t, srv, "app=hello", "1")
	if e := next(t, hello); e.Message != "h2" {
		t.Fatalf("resumed = %+v", e)
	}
	if e := next(t, hello); e.Message != "h3" {
		t.Fatalf("resumed = %+v", e)
	}
	publish(svc, "other", "o2")
	publish(svc, "hello", "h4")
	if e := next(t, hello); e.Message != "h4" {
		t.Fatalf("filtered live = %+v, want h4 (o2 belongs to another app)", e)
	}

	// An event written to the store by another server (no local fan-out)
	// reaches the stream too.
	if _, err := st.AppendEvent(context.Background(), core.Event{App: "hello", Type: core.EventDeployStep, Message: "from another server", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if e := next(t, hello); e.Message != "from another server" {
		t.Fatalf("store event = %+v", e)
	}
	select {
	case e := <-hello:
		t.Errorf("an event was sent twice or out of filter: %+v", e)
	default:
	}
}

func TestStreamAfterNowSkipsTheReplay(t *testing.T) {
	t.Parallel()
	srv, svc, _ := newAPI(t)
	publish(svc, "hello", "old")
	now := stream(t, srv, "after=now", "")
	// The stream is open once the response arrived; publish until the
	// first live event shows that the subscription is in place.
	publish(svc, "hello", "new")
	if e := next(t, now); e.Message != "new" {
		t.Fatalf("after=now sent %+v first, want only new events", e)
	}
}
