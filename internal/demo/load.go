package demo

import (
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Load is a closed-loop HTTP load generator: workers send GET requests one
// after another over keep-alive connections and count the outcomes.
type Load struct {
	OK, Non2xx, Errors atomic.Int64

	mu       sync.Mutex
	versions map[string]int64
	lastErr  string

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// StartLoad runs workers against url until Stop.
func StartLoad(url string, workers int) *Load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &Load{versions: map[string]int64{}, cancel: cancel}
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: workers, IdleConnTimeout: 30 * time.Second}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				l.one(ctx, client, url)
			}
		}()
	}
	return l
}

func (l *Load) one(ctx context.Context, client *http.Client, url string) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			l.Errors.Add(1)
			l.mu.Lock()
			l.lastErr = err.Error()
			l.mu.Unlock()
		}
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		l.Non2xx.Add(1)
		l.mu.Lock()
		l.lastErr = resp.Status
		l.mu.Unlock()
		return
	}
	l.OK.Add(1)
	l.mu.Lock()
	l.versions[resp.Header.Get("X-Version")]++
	l.mu.Unlock()
}

// Stop ends the load and waits for the workers.
func (l *Load) Stop() {
	l.cancel()
	l.wg.Wait()
}

// Failed is the number of requests that did not get a 2xx answer.
func (l *Load) Failed() int64 { return l.Non2xx.Load() + l.Errors.Load() }

// Versions returns how many 2xx answers each X-Version gave.
func (l *Load) Versions() map[string]int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]int64, len(l.versions))
	for k, v := range l.versions {
		out[k] = v
	}
	return out
}

// LastError is the last failure seen, for the report.
func (l *Load) LastError() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastErr
}
