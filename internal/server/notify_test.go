package server_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutover/cutover/examples"
	"github.com/cutover/cutover/internal/client"
	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/gitx"
	"github.com/cutover/cutover/internal/notify"
	"github.com/cutover/cutover/internal/notify/notifytest"
	"github.com/cutover/cutover/internal/server"
	"github.com/cutover/cutover/internal/testutil"
)

func openNotifyServer(t *testing.T, allowPrivate bool) *server.Server {
	return openNotifyServerSMTP(t, allowPrivate, nil)
}

func openNotifyServerSMTP(t *testing.T, allowPrivate bool, relay *notify.SMTP) *server.Server {
	srv, _ := openNotifyServerRepo(t, allowPrivate, relay)
	return srv
}

func openNotifyServerRepo(t *testing.T, allowPrivate bool, relay *notify.SMTP) (*server.Server, string) {
	t.Helper()
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	if err := examples.WriteHello(repo, examples.HelloOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := gitx.Init(context.Background(), repo); err != nil {
		t.Fatal(err)
	}
	if _, err := gitx.CommitAll(context.Background(), repo, "v1"); err != nil {
		t.Fatal(err)
	}
	srv, err := server.Open(context.Background(), server.Config{DataDir: filepath.Join(dir, "data"), Listen: "127.0.0.1:0",
		TickInterval: tick, AllowPrivateNotify: allowPrivate, SMTP: relay, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	if _, err := srv.Deploy.AddApp(context.Background(), "hello", repo); err != nil {
		t.Fatal(err)
	}
	return srv, repo
}

// TestNotify_ThroughTheServer subscribes a local receiver through the API,
// sends a test event, and sees an event of the timeline reach it, signed,
// from the notifier the active server runs.
func TestNotify_ThroughTheServer(t *testing.T) {
	srv := openNotifyServer(t, true)
	ctx := context.Background()
	var mu sync.Mutex
	var got []*http.Request
	var bodies [][]byte
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got, bodies = append(got, r), append(bodies, b)
		mu.Unlock()
	}))
	defer recv.Close()
	cl := client.New(srv.URL(), srv.Token)

	if _, err := cl.AddSubscription(ctx, "hello", []string{"nope"}, core.ChannelWebhook, recv.URL); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown kind = %v", err)
	}
	sub, err := cl.AddSubscription(ctx, "hello", []string{"env.locked"}, core.ChannelWebhook, recv.URL)
	if err != nil || sub.Secret == "" || sub.ID == "" {
		t.Fatalf("add = %+v, %v", sub, err)
	}
	subs, err := cl.Subscriptions(ctx, "hello")
	if err != nil || len(subs) != 1 || subs[0].Secret != "" {
		t.Fatalf("list = %+v, %v (the secret must not be listed)", subs, err)
	}
	if d, err := cl.TestSubscription(ctx, sub.ID); err != nil || d.Status != core.DeliveryOK {
		t.Fatalf("test = %+v, %v", d, err)
	}
	srv.Deploy.Publish(ctx, core.Event{App: "hello", Env: "production", Type: core.EventEnvLocked, Actor: "ann", Reason: "incident", Message: "locked"})
	testutil.WaitFor(t, "the lock event at the receiver", 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= 2
	})
	mu.Lock()
	r, body := got[1], bodies[1]
	mu.Unlock()
	if !notify.Verify(sub.Secret, r.Header.Get(notify.TimestampHeader), body, r.Header.Get(notify.SignatureHeader)) || !strings.Contains(string(body), `"kind":"env.locked"`) {
		t.Errorf("delivery %s with signature %q", body, r.Header.Get(notify.SignatureHeader))
	}
	log, err := cl.NotifyLog(ctx, "hello", 0)
	if err != nil || len(log) != 2 {
		t.Errorf("log = %+v, %v", log, err)
	}
	if err := cl.RemoveSubscription(ctx, sub.ID); err != nil {
		t.Fatal(err)
	}
	if err := cl.RemoveSubscription(ctx, sub.ID); err == nil {
		t.Error("removed twice")
	}
}

// TestNotify_RefusesPrivateURLs: without --allow-private-notify, the API
// refuses receivers on loopback and private networks.
func TestNotify_RefusesPrivateURLs(t *testing.T) {
	srv := openNotifyServer(t, false)
	cl := client.New(srv.URL(), srv.Token)
	for _, u := range []string{"http://127.0.0.1:9/x", "http://10.1.2.3/x", "http://169.254.169.254/latest", "http://localhost/x"} {
		_, err := cl.AddSubscription(context.Background(), "hello", []string{"all"}, core.ChannelSlack, u)
		var ce *client.Error
		if !errors.As(err, &ce) || ce.Status != http.StatusBadRequest || !strings.Contains(err.Error(), "allow-private-notify") {
			t.Errorf("add %s = %v, want 400 naming --allow-private-notify", u, err)
		}
	}
}

// TestNotify_Email_ThroughTheServer: an email subscription made through the
// API gets a real lock of production as mail, through a real SMTP relay
// under STARTTLS with AUTH; a server without a relay refuses the
// subscription, naming --smtp-addr.
func TestNotify_Email_ThroughTheServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	relay := notifytest.Start(t, notifytest.Options{})
	srv := openNotifyServerSMTP(t, false, &notify.SMTP{Addr: relay.Addr, From: "cutover@example.com",
		Username: notifytest.User, Password: notifytest.Password, RequireTLS: true, TLS: relay.ClientTLS})
	cl := client.New(srv.URL(), srv.Token)
	sub, err := cl.AddSubscription(ctx, "hello", []string{"env.locked"}, core.ChannelEmail, "mailto:ops@example.com")
	if err != nil || sub.Secret != "" || sub.URL != "mailto:ops@example.com" {
		t.Fatalf("add = %+v, %v", sub, err)
	}
	if _, err := cl.Lock(ctx, "hello", "production", "incident 42"); err != nil {
		t.Fatal(err)
	}
	m := relay.Wait(t, 1)[0]
	if !m.TLS || strings.Join(m.To, ",") != "ops@example.com" {
		t.Errorf("mail over tls=%v to %v", m.TLS, m.To)
	}
	if got := subjectOf(t, m.Data); !strings.HasPrefix(got, "hello: production locked by ") || !strings.HasSuffix(got, " (incident 42)") {
		t.Errorf("subject = %q, want hello: production locked by ... (incident 42)", got)
	}
	if strings.Contains(string(m.Data), srv.Token) || strings.Contains(string(m.Data), notifytest.Password) {
		t.Error("a secret is in the mail")
	}

	plain := openNotifyServer(t, false)
	_, err = client.New(plain.URL(), plain.Token).AddSubscription(ctx, "hello", []string{"all"}, core.ChannelEmail, "mailto:ops@example.com")
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != http.StatusBadRequest || !strings.Contains(err.Error(), "--smtp-addr") {
		t.Errorf("email subscription without a relay = %v, want 400 naming --smtp-addr", err)
	}
}

func subjectOf(t *testing.T, data []byte) string {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("mail does not parse: %v\n%s", err, data)
	}
	s, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestNotify_Email_BuildBrokenThenFixed: a commit that does not compile
// and the commit that repairs it send exactly two mails, "build of X
// failed" and "build fixed by Y"; a later good build sends none (the lock
// mail after it is the barrier: mail goes out in event order).
func TestNotify_Email_BuildBrokenThenFixed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	relay := notifytest.Start(t, notifytest.Options{})
	srv, repo := openNotifyServerRepo(t, false, &notify.SMTP{Addr: relay.Addr, From: "cutover@example.com",
		Username: notifytest.User, Password: notifytest.Password, RequireTLS: true, TLS: relay.ClientTLS})
	cl := client.New(srv.URL(), srv.Token)
	if _, err := cl.AddSubscription(ctx, "hello", []string{"build.failed,build.fixed,env.locked"}, core.ChannelEmail, "dev@example.com,pm@example.com"); err != nil {
		t.Fatal(err)
	}
	commit := func(msg string, edit func() error) string {
		t.Helper()
		if err := edit(); err != nil {
			t.Fatal(err)
		}
		sha, err := gitx.CommitAll(ctx, repo, msg)
		if err != nil {
			t.Fatal(err)
		}
		return sha
	}
	oops := filepath.Join(repo, "oops.go")
	broken := commit("break", func() error { return os.WriteFile(oops, []byte("package main\n\nfunc oops( {\n"), 0o644) })
	if _, err := srv.Deploy.Build(ctx, "hello", "HEAD", nil); err == nil {
		t.Fatal("the broken commit built")
	}
	fixed := commit("fix", func() error { return os.Remove(oops) })
	if _, err := srv.Deploy.Build(ctx, "hello", "HEAD", nil); err != nil {
		t.Fatal(err)
	}
	commit("more", func() error { return os.WriteFile(filepath.Join(repo, "more.txt"), []byte("x"), 0o644) })
	if _, err := srv.Deploy.Build(ctx, "hello", "HEAD", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Lock(ctx, "hello", "production", "barrier"); err != nil {
		t.Fatal(err)
	}
	mails := relay.Wait(t, 3)
	var subjects []string
	for _, m := range mails {
		subjects = append(subjects, subjectOf(t, m.Data))
	}
	want := []string{"hello: build of " + core.ShortSHA(broken) + " failed", "hello: build fixed by " + core.ShortSHA(fixed) + " (after the failed build of " + core.ShortSHA(broken) + ")"}
	if len(subjects) != 3 || subjects[0] != want[0] || subjects[1] != want[1] || !strings.Contains(subjects[2], "locked") {
		t.Errorf("subjects = %q, want %q then the lock", subjects, want)
	}
	for _, m := range mails {
		if strings.Join(m.To, ",") != "dev@example.com,pm@example.com" {
			t.Errorf("mail to %v, want the developers and the PM", m.To)
		}
	}
}
