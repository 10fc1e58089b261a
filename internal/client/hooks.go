package client

import "context"

// HookSecret is a new webhook secret, shown once, and the paths (under
// the server's URL) to give GitHub and GitLab.
type HookSecret struct {
	App    string `json:"app"`
	Secret string `json:"secret"`
	GitHub string `json:"github"`
	GitLab string `json:"gitlab"`
}

// NewHookSecret replaces app's webhook secret with a new random one.
func (c *Client) NewHookSecret(ctx context.Context, app string) (HookSecret, error) {
	var out HookSecret
	err := c.do(ctx, "POST", "/api/v1/apps/"+esc(app)+"/hooks/secret", nil, &out)
	return out, err
}
