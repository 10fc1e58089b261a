package client

import (
	"context"

	"github.com/cutover/cutover/internal/core"
)

// NewUser is a user to add, with one role binding.
type NewUser struct {
	Name  string    `json:"name"`
	Email string    `json:"email"`
	Role  core.Role `json:"role"`
	Apps  string    `json:"apps,omitempty"`
	Envs  string    `json:"envs,omitempty"`
}

// AddedUser is the answer to AddUser: the user and its first token, which
// the server shows this once.
type AddedUser struct {
	User    core.User `json:"user"`
	Token   string    `json:"token"`
	TokenID string    `json:"token_id"`
}

// NewToken is a token just created: the secret, shown once, and its id.
type NewToken struct {
	Token string `json:"token"`
	ID    string `json:"id"`
}

// Me is who the client's token belongs to.
type Me struct {
	User    core.User `json:"user"`
	TokenID string    `json:"token_id,omitempty"`
}

// AddUser adds a user and returns its first token.
func (c *Client) AddUser(ctx context.Context, u NewUser) (AddedUser, error) {
	var out AddedUser
	err := c.do(ctx, "POST", "/api/v1/users", u, &out)
	return out, err
}

// Users lists users with their role bindings.
func (c *Client) Users(ctx context.Context) ([]core.User, error) {
	var out []core.User
	err := c.do(ctx, "GET", "/api/v1/users", nil, &out)
	return out, err
}

// CreateToken makes a new token for user.
func (c *Client) CreateToken(ctx context.Context, user string) (NewToken, error) {
	var out NewToken
	err := c.do(ctx, "POST", "/api/v1/users/"+esc(user)+"/tokens", nil, &out)
	return out, err
}

// RevokeToken revokes token id: requests with it are refused from now on.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	return c.do(ctx, "DELETE", "/api/v1/tokens/"+esc(id), nil, nil)
}

// Me returns the user the client's token belongs to.
func (c *Client) Me(ctx context.Context) (Me, error) {
	var out Me
	err := c.do(ctx, "GET", "/api/v1/me", nil, &out)
	return out, err
}
