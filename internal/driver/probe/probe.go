// Package probe makes the health and smoke requests of drivers whose
// instances have an address the control plane can dial (a local process,
// a container's port published on the host).
package probe

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/cutover/cutover/internal/core"
)

// DefaultMaxBody bounds the answer read when the request gives no bound.
const DefaultMaxBody = 64 << 10

// client: no proxy from the environment, no redirects followed, few idle
// connections.
var client = &http.Client{
	Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// HTTP makes one request to http://addr+pr.Path and reads at most
// pr.MaxBody bytes of the answer.
func HTTP(ctx context.Context, addr string, pr core.ProbeRequest) (core.ProbeResult, error) {
	if pr.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, pr.Timeout)
		defer cancel()
	}
	method := pr.Method
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+pr.Path, nil)
	if err != nil {
		return core.ProbeResult{}, err
	}
	req.Header.Set("User-Agent", "cutover-probe")
	resp, err := client.Do(req)
	if err != nil {
		return core.ProbeResult{}, err
	}
	defer resp.Body.Close()
	limit := pr.MaxBody
	if limit <= 0 {
		limit = DefaultMaxBody
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return core.ProbeResult{}, fmt.Errorf("read answer: %w", err)
	}
	return core.ProbeResult{Status: resp.StatusCode, Body: body}, nil
}
