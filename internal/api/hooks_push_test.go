package api_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/api"
	"github.com/cutover/cutover/internal/core"
)

// hookStore is an in-memory api.HookStore.
type hookStore struct {
	mu      sync.Mutex
	secrets map[string]string
	claimed map[string]bool
}

func (h *hookStore) PutHookSecret(_ context.Context, app, secret string, _ time.Time) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.secrets[app] = secret
	return nil
}

func (h *hookStore) HookSecret(_ context.Context, app string) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s, ok := h.secrets[app]; ok {
		return s, nil
	}
	return "", core.ErrNotFound
}

func (h *hookStore) ClaimDelivery(_ context.Context, source, id, _ string, _ time.Time) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.claimed[source+"/"+id] {
		return false, nil
	}
	h.claimed[source+"/"+id] = true
	return true, nil
}

func (h *hookStore) ReleaseDelivery(_ context.Context, source, id string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.claimed, source+"/"+id)
	return nil
}

// TestHooks_PushCallsOnPushOnce: a push delivery reaches the OnPush hook
// point with its branch and SHA, once however often it is delivered.
func TestHooks_PushCallsOnPushOnce(t *testing.T) {
	_, svc, _ := newAPI(t)
	hs := &hookStore{secrets: map[string]string{"hello": "s3cret"}, claimed: map[string]bool{}}
	var mu sync.Mutex
	var pushes []string
	srv := httptest.NewServer(api.New(api.Config{Service: svc, Token: token, Hooks: hs, OnPush: func(_ context.Context, app, branch, sha string) {
		mu.Lock()
		defer mu.Unlock()
		pushes = append(pushes, app+" "+branch+" "+sha)
	}}))
	t.Cleanup(srv.Close)
	body := `{"ref":"refs/heads/main","after":"1111111111111111111111111111111111111111"}`
	mac := hmac.New(sha256.New, []byte("s3cret"))
	mac.Write([]byte(body))
	for i, want := range []int{http.StatusAccepted, http.StatusOK} {
		req, _ := http.NewRequest("POST", srv.URL+"/api/v1/hooks/github/hello", strings.NewReader(body))
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-GitHub-Delivery", "p-1")
		req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("delivery %d: status %d, want %d", i+1, resp.StatusCode, want)
		}
	}
	// A tag push is not a branch: ignored.
	tag := `{"ref":"refs/tags/v1","after":"1111111111111111111111111111111111111111"}`
	mac.Reset()
	mac.Write([]byte(tag))
	req, _ := http.NewRequest("POST", srv.URL+"/api/v1/hooks/github/hello", strings.NewReader(tag))
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", "p-2")
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("tag push: %d", resp.StatusCode)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(pushes) != 1 || pushes[0] != "hello main 1111111111111111111111111111111111111111" {
		t.Errorf("pushes = %v", pushes)
	}
}
