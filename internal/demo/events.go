package demo

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/cutover/cutover/internal/client"
	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/deploy"
	"github.com/cutover/cutover/internal/notify"
)

// receiver is the demo's notification receiver: a webhook on loopback
// that checks each delivery's signature and prints it.
type receiver struct {
	d      *demo
	srv    *http.Server
	url    string
	secret string
	mu     sync.Mutex
	kinds  map[string]int
	got    chan struct{}
}

func startReceiver(d *demo) (*receiver, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &receiver{d: d, url: "http://" + l.Addr().String() + "/cutover", kinds: map[string]int{}, got: make(chan struct{}, 1)}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = r.srv.Serve(l) }()
	return r, nil
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	secret := r.secret
	r.mu.Unlock()
	if !notify.Verify(secret, req.Header.Get(notify.TimestampHeader), body, req.Header.Get(notify.SignatureHeader)) {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var p struct {
		core.Event
		Kind string `json:"kind"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.kinds[p.Kind]++
	r.mu.Unlock()
	fmt.Fprintf(r.d.out, "   %6.2fs  >> notification %-18s %s (signature ok)\n", time.Since(r.d.start).Seconds(), p.Kind, firstLine(notify.Text(p.Event, p.Kind)))
	select {
	case r.got <- struct{}{}:
	default:
	}
}

// subscribe makes the receiver a webhook subscription of the demo app.
func (r *receiver) subscribe(ctx context.Context, cl *client.Client, kinds ...string) error {
	sub, err := cl.AddSubscription(ctx, appName, kinds, core.ChannelWebhook, r.url)
	if err != nil {
		return fmt.Errorf("subscribe the demo receiver: %w", err)
	}
	r.mu.Lock()
	r.secret = sub.Secret
	r.mu.Unlock()
	return nil
}

// waitFor waits until the receiver got a notification of kind, or 15s.
func (r *receiver) waitFor(kind string) bool {
	deadline := time.NewTimer(15 * time.Second)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		n := r.kinds[kind]
		r.mu.Unlock()
		if n > 0 {
			return true
		}
		select {
		case <-r.got:
		case <-deadline.C:
			return false
		}
	}
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.kinds {
		n += c
	}
	return n
}

func (r *receiver) close() { _ = r.srv.Close() }

// push sends cutover a GitHub push webhook for sha on main, signed with
// the app's hook secret, as GitHub would after `git push`.
func push(ctx context.Context, base, secret, sha string) error {
	body, err := json.Marshal(map[string]any{"ref": "refs/heads/main", "after": sha,
		"repository": map[string]string{"full_name": "demo/hello"}})
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	id := make([]byte, 8)
	_, _ = rand.Read(id)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/hooks/github/"+appName, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", hex.EncodeToString(id))
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("push webhook: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("push webhook answered %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// autoDeployed waits for the auto-deploy of sha to env and returns it.
func (d *demo) autoDeployed(ctx context.Context, env, sha string) (core.Deployment, error) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ds, err := d.svc.History(ctx, appName, env, 0, 20)
		if err != nil {
			return core.Deployment{}, err
		}
		for _, x := range ds {
			if x.SHA == sha && x.RequestedBy == deploy.AutoDeployer {
				return x, nil
			}
		}
		select {
		case <-ctx.Done():
			return core.Deployment{}, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return core.Deployment{}, fmt.Errorf("no auto-deploy of %s to %s within 30s", core.ShortSHA(sha), env)
}
