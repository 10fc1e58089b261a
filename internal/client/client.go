// Package client is a small typed client of cutover's API, used by the CLI
// and by tests.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/deploy"
)

// Client calls the API with a bearer token.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

// Error is an error answered by the API.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return e.Message }

// New returns a client for the API at baseURL.
func New(baseURL, token string) *Client {
	if !strings.Contains(baseURL, "://") {
		baseURL = "http://" + baseURL // --server host:port
	}
	return &Client{base: strings.TrimSuffix(baseURL, "/"), token: token, hc: &http.Client{}}
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case rawBody:
		rd = bytes.NewReader(b)
	default:
		js, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if _, raw := body.(rawBody); raw {
		req.Header.Set("Content-Type", "application/yaml")
	} else if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.unreachable(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return &Error{Status: resp.StatusCode, Message: e.Error}
		}
		return &Error{Status: resp.StatusCode, Message: fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(b)))}
	}
	if out == nil {
		return nil
	}
	if w, ok := out.(io.Writer); ok {
		_, err := io.Copy(w, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func esc(s string) string { return url.PathEscape(s) }

// AddApp registers an app.
func (c *Client) AddApp(ctx context.Context, name, repo string) (core.App, error) {
	var a core.App
	err := c.do(ctx, "POST", "/api/v1/apps", map[string]string{"name": name, "repo": repo}, &a)
	return a, err
}

// RemoveApp forgets an app (its environments must be stopped).
func (c *Client) RemoveApp(ctx context.Context, name string) error {
	return c.do(ctx, "DELETE", "/api/v1/apps/"+esc(name), nil, nil)
}

// Apps lists apps.
func (c *Client) Apps(ctx context.Context) ([]core.App, error) {
	var a []core.App
	err := c.do(ctx, "GET", "/api/v1/apps", nil, &a)
	return a, err
}

// Build builds ref of app once.
func (c *Client) Build(ctx context.Context, app, ref string) (core.Artifact, error) {
	var a core.Artifact
	err := c.do(ctx, "POST", "/api/v1/apps/"+esc(app)+"/builds", map[string]string{"ref": ref}, &a)
	return a, err
}

// DeployOptions are the optional parts of a deploy request.
type DeployOptions struct {
	Ref             string `json:"ref"`
	NoWait          bool   `json:"no_wait"`
	ReplaceHeld     bool   `json:"replace_held"`
	Override        bool   `json:"override"`
	Hotfix          bool   `json:"hotfix"`
	Reason          string `json:"reason"`
	WhenAllowed     bool   `json:"when_allowed"`
	WaitForApproval bool   `json:"wait_for_approval"`
}

// Deploy records a deployment of opts.Ref (HEAD when empty).
func (c *Client) Deploy(ctx context.Context, app, env string, opts DeployOptions) (core.Deployment, error) {
	var d core.Deployment
	err := c.do(ctx, "POST", "/api/v1/apps/"+esc(app)+"/envs/"+esc(env)+"/deployments", opts, &d)
	return d, err
}

// Rollback queues a rollback.
func (c *Client) Rollback(ctx context.Context, app, env string, opts RollbackOptions) (core.Deployment, error) {
	var d core.Deployment
	err := c.do(ctx, "POST", "/api/v1/apps/"+esc(app)+"/envs/"+esc(env)+"/rollback", opts, &d)
	return d, err
}

// RollbackOptions say where a rollback goes (one step back by default).
type RollbackOptions struct {
	To         int  `json:"to"`
	Steps      int  `json:"steps"`
	NoWait     bool `json:"no_wait"`
	KeepConfig bool `json:"keep_config"`
}

// Stop takes an environment out of service.
func (c *Client) Stop(ctx context.Context, app, env string) (core.Deployment, error) {
	var d core.Deployment
	err := c.do(ctx, "POST", "/api/v1/apps/"+esc(app)+"/envs/"+esc(env)+"/stop", nil, &d)
	return d, err
}

// Confirm marks the live release verified.
func (c *Client) Confirm(ctx context.Context, app, env string) (core.Deployment, error) {
	var d core.Deployment
	err := c.do(ctx, "POST", "/api/v1/apps/"+esc(app)+"/envs/"+esc(env)+"/confirm", nil, &d)
	return d, err
}

// Hold postpones the revert of a failed colour.
func (c *Client) Hold(ctx context.Context, app, env string, d time.Duration) (core.EnvState, error) {
	var st core.EnvState
	err := c.do(ctx, "POST", "/api/v1/apps/"+esc(app)+"/envs/"+esc(env)+"/hold", map[string]string{"for": d.String()}, &st)
	return st, err
}

// SetConfig merges vars and secrets into the latest config version.
func (c *Client) SetConfig(ctx context.Context, app, env string, vars, secrets map[string]string) (core.ConfigVersion, error) {
	r, err := c.ChangeConfig(ctx, app, env, deploy.ConfigChange{Vars: vars, Secrets: secrets})
	return r.ConfigVersion, err
}

// ChangeConfig records a new config version: merged into the latest one,
// or replacing it with ch.Replace. Values are checked here first, because
// JSON would silently turn invalid UTF-8 into U+FFFD on the way.
func (c *Client) ChangeConfig(ctx context.Context, app, env string, ch deploy.ConfigChange) (deploy.ConfigResult, error) {
	for _, m := range []struct {
		values map[string]string
		secret bool
	}{{ch.Vars, false}, {ch.Secrets, true}} {
		for k, v := range m.values {
			if err := deploy.ValidateConfigValue(k, v, m.secret); err != nil {
				return deploy.ConfigResult{}, err
			}
		}
	}
	var r deploy.ConfigResult
	path := "/api/v1/apps/" + esc(app) + "/envs/" + esc(env) + "/config"
	var err error
	if ch.Replace {
		err = c.do(ctx, "PUT", path, map[string]any{"vars": ch.Vars, "secrets": ch.Secrets}, &r)
	} else {
		err = c.do(ctx, "PATCH", path, map[string]any{"vars": ch.Vars, "secrets": ch.Secrets, "unset": ch.Unset}, &r)
	}
	return r, err
}

// Config returns a config version (0 = the latest), secret names only.
func (c *Client) Config(ctx context.Context, app, env string, version int) (core.ConfigVersion, error) {
	path := "/api/v1/apps/" + esc(app) + "/envs/" + esc(env) + "/config"
	if version > 0 {
		path += "?version=" + strconv.Itoa(version)
	}
	var cv core.ConfigVersion
	err := c.do(ctx, "GET", path, nil, &cv)
	return cv, err
}

// Status returns the app's environments.
func (c *Client) Status(ctx context.Context, app string) ([]deploy.EnvStatus, error) {
	var st []deploy.EnvStatus
	err := c.do(ctx, "GET", "/api/v1/apps/"+esc(app)+"/status", nil, &st)
	return st, err
}

// History returns deployments newest first.
func (c *Client) History(ctx context.Context, app, env string, before int64, limit int) ([]core.Deployment, error) {
	q := url.Values{}
	if env != "" {
		q.Set("env", env)
	}
	if before > 0 {
		q.Set("before", strconv.FormatInt(before, 10))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var ds []core.Deployment
	err := c.do(ctx, "GET", "/api/v1/apps/"+esc(app)+"/deployments?"+q.Encode(), nil, &ds)
	return ds, err
}

// Releases lists releases newest first.
func (c *Client) Releases(ctx context.Context, app string) ([]core.Release, error) {
	var rs []core.Release
	err := c.do(ctx, "GET", "/api/v1/apps/"+esc(app)+"/releases", nil, &rs)
	return rs, err
}

// Deployment returns one deployment.
func (c *Client) Deployment(ctx context.Context, id int64) (core.Deployment, error) {
	var d core.Deployment
	err := c.do(ctx, "GET", "/api/v1/deployments/"+strconv.FormatInt(id, 10), nil, &d)
	return d, err
}

// Cancel cancels a deployment that has not started running.
func (c *Client) Cancel(ctx context.Context, id int64) (core.Deployment, error) {
	var d core.Deployment
	err := c.do(ctx, "POST", "/api/v1/deployments/"+strconv.FormatInt(id, 10)+"/cancel", nil, &d)
	return d, err
}

// Wait long-polls until the deployment ends or timeout passes.
func (c *Client) Wait(ctx context.Context, id int64, timeout time.Duration) (core.Deployment, error) {
	var d core.Deployment
	err := c.do(ctx, "GET", fmt.Sprintf("/api/v1/deployments/%d/wait?timeout=%s", id, timeout), nil, &d)
	return d, err
}

// Logs writes the instance logs of app in env to w.
func (c *Client) Logs(ctx context.Context, app, env string, opts LogsOptions, w io.Writer) error {
	return c.do(ctx, "GET", "/api/v1/apps/"+esc(app)+"/envs/"+esc(env)+"/logs?"+opts.query().Encode(), nil, w)
}

// LogsJSON returns the end of each instance's log as data.
func (c *Client) LogsJSON(ctx context.Context, app, env string, opts LogsOptions) ([]deploy.InstanceLog, error) {
	q := opts.query()
	q.Set("format", "json")
	var out []deploy.InstanceLog
	err := c.do(ctx, "GET", "/api/v1/apps/"+esc(app)+"/envs/"+esc(env)+"/logs?"+q.Encode(), nil, &out)
	return out, err
}

// LogsOptions say whose logs and how much.
type LogsOptions struct {
	Colour     string
	Deployment int64
	Lines      int
}

func (o LogsOptions) query() url.Values {
	q := url.Values{}
	if o.Colour != "" {
		q.Set("colour", o.Colour)
	}
	if o.Deployment > 0 {
		q.Set("deployment", strconv.FormatInt(o.Deployment, 10))
	}
	if o.Lines > 0 {
		q.Set("lines", strconv.Itoa(o.Lines))
	}
	return q
}

// Events returns timeline events after afterID.
func (c *Client) Events(ctx context.Context, app string, afterID int64) ([]core.Event, error) {
	q := url.Values{"after": {strconv.FormatInt(afterID, 10)}}
	if app != "" {
		q.Set("app", app)
	}
	var es []core.Event
	err := c.do(ctx, "GET", "/api/v1/events?"+q.Encode(), nil, &es)
	return es, err
}

// Stream follows the event stream from afterID (-1: only new events),
// calling opened once subscribed (may be nil) and fn for each event until fn
// returns false, ctx ends or the server closes the stream.
func (c *Client) Stream(ctx context.Context, app string, afterID int64, opened func(), fn func(core.Event) bool) error {
	after := strconv.FormatInt(afterID, 10)
	if afterID < 0 {
		after = "now"
	}
	q := url.Values{"after": {after}}
	if app != "" {
		q.Set("app", app)
	}
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+"/api/v1/events/stream?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.unreachable(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return &Error{Status: resp.StatusCode, Message: strings.TrimSpace(string(b))}
	}
	if opened != nil {
		opened()
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		var e core.Event
		if err := json.Unmarshal([]byte(data), &e); err != nil {
			continue
		}
		if !fn(e) {
			return nil
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
}

// CutRelease cuts a release candidate.
func (c *Client) CutRelease(ctx context.Context, app string, req map[string]any) (core.Candidate, error) {
	var out core.Candidate
	err := c.do(ctx, "POST", "/api/v1/apps/"+esc(app)+"/candidates", req, &out)
	return out, err
}

// Candidates lists release candidates, newest first.
func (c *Client) Candidates(ctx context.Context, app string) ([]core.Candidate, error) {
	var out []core.Candidate
	err := c.do(ctx, "GET", "/api/v1/apps/"+esc(app)+"/candidates", nil, &out)
	return out, err
}

// Candidate returns one release candidate ("112" or "112.1").
func (c *Client) Candidate(ctx context.Context, app, rc string) (core.Candidate, error) {
	var out core.Candidate
	err := c.do(ctx, "GET", "/api/v1/apps/"+esc(app)+"/candidates/"+esc(rc), nil, &out)
	return out, err
}

// SetNotes replaces a candidate's notes.
func (c *Client) SetNotes(ctx context.Context, app, rc, notes string) (core.Candidate, error) {
	var out core.Candidate
	err := c.do(ctx, "PUT", "/api/v1/apps/"+esc(app)+"/candidates/"+esc(rc)+"/notes", map[string]string{"notes": notes}, &out)
	return out, err
}

// CheckRelease reports, without changing anything, whether a candidate
// contains the production line, what it lacks and where merging conflicts.
func (c *Client) CheckRelease(ctx context.Context, app, rc string, out any) error {
	return c.do(ctx, "POST", "/api/v1/apps/"+esc(app)+"/candidates/"+esc(rc)+"/check", nil, out)
}

// FinishRelease moves the production line to a candidate, tags and pushes
// it; drop names the production line's commits it may lose (trueUp: all).
func (c *Client) FinishRelease(ctx context.Context, app, rc string, trueUp bool, drop []string) (core.Candidate, error) {
	var out core.Candidate
	err := c.do(ctx, "POST", "/api/v1/apps/"+esc(app)+"/candidates/"+esc(rc)+"/finish", map[string]any{"true_up": trueUp, "drop": drop}, &out)
	return out, err
}

// AbandonRelease records a candidate abandoned: it can no longer be finished.
func (c *Client) AbandonRelease(ctx context.Context, app, rc string) (core.Candidate, error) {
	var out core.Candidate
	err := c.do(ctx, "POST", "/api/v1/apps/"+esc(app)+"/candidates/"+esc(rc)+"/abandon", nil, &out)
	return out, err
}

// Diff says what changed between two releases.
func (c *Client) Diff(ctx context.Context, app string, from, to int, out any) error {
	return c.do(ctx, "GET", fmt.Sprintf("/api/v1/apps/%s/diff?from=%d&to=%d", esc(app), from, to), nil, out)
}

// unreachable explains a transport error in the user's terms.
func (c *Client) unreachable(err error) error {
	return fmt.Errorf("cannot reach the cutover server at %s (is `cutover server` running? set --server or CUTOVER_SERVER): %w", c.base, err)
}

// ReportCheck records a CI result for a commit.
func (c *Client) ReportCheck(ctx context.Context, app, sha, name, state, url string) (core.CommitStatus, error) {
	var out core.CommitStatus
	err := c.do(ctx, "POST", "/api/v1/apps/"+esc(app)+"/checks", map[string]string{"sha": sha, "name": name, "state": state, "url": url}, &out)
	return out, err
}

// Checks returns the CI results of a commit.
func (c *Client) Checks(ctx context.Context, app, sha string) ([]core.CommitStatus, error) {
	var out []core.CommitStatus
	err := c.do(ctx, "GET", "/api/v1/apps/"+esc(app)+"/commits/"+esc(sha)+"/checks", nil, &out)
	return out, err
}

// Review approves a commit (the policy's review).
func (c *Client) Review(ctx context.Context, app, sha string) (core.Review, error) {
	var out core.Review
	err := c.do(ctx, "POST", "/api/v1/apps/"+esc(app)+"/reviews", map[string]string{"sha": sha}, &out)
	return out, err
}

// Approve approves a release or a commit for an environment.
func (c *Client) Approve(ctx context.Context, app, env string, release int, sha string) (core.Approval, error) {
	var out core.Approval
	err := c.do(ctx, "POST", "/api/v1/apps/"+esc(app)+"/envs/"+esc(env)+"/approvals", map[string]any{"release": release, "sha": sha}, &out)
	return out, err
}

// Lock locks an environment against deploys.
func (c *Client) Lock(ctx context.Context, app, env, reason string) (core.EnvLock, error) {
	var out core.EnvLock
	err := c.do(ctx, "PUT", "/api/v1/apps/"+esc(app)+"/envs/"+esc(env)+"/lock", map[string]string{"reason": reason}, &out)
	return out, err
}

// Unlock lifts an environment's lock.
func (c *Client) Unlock(ctx context.Context, app, env string) error {
	return c.do(ctx, "DELETE", "/api/v1/apps/"+esc(app)+"/envs/"+esc(env)+"/lock", nil, nil)
}

// SetPolicy sets an app's server-side policy from a policy file's text.
func (c *Client) SetPolicy(ctx context.Context, app string, body []byte) (core.PolicyVersion, error) {
	var out core.PolicyVersion
	err := c.do(ctx, "PUT", "/api/v1/apps/"+esc(app)+"/policy", rawBody(body), &out)
	return out, err
}

// Policy returns an app's policy in force.
func (c *Client) Policy(ctx context.Context, app string) (core.PolicyVersion, error) {
	var out core.PolicyVersion
	err := c.do(ctx, "GET", "/api/v1/apps/"+esc(app)+"/policy", nil, &out)
	return out, err
}

// CheckPolicy judges a commit for an environment without deploying.
func (c *Client) CheckPolicy(ctx context.Context, app, env, commit string) (deploy.PolicyVerdict, error) {
	var out deploy.PolicyVerdict
	q := url.Values{}
	if commit != "" {
		q.Set("commit", commit)
	}
	err := c.do(ctx, "GET", "/api/v1/apps/"+esc(app)+"/envs/"+esc(env)+"/policy/check?"+q.Encode(), nil, &out)
	return out, err
}

// rawBody is a request body sent as it is (a policy file), not as JSON.
type rawBody []byte

// Promote deploys to `to` the artifact live in `from`.
func (c *Client) Promote(ctx context.Context, app, from, to string, opts DeployOptions) (core.Deployment, error) {
	var d core.Deployment
	err := c.do(ctx, "POST", "/api/v1/apps/"+esc(app)+"/promotions", map[string]any{"from": from, "to": to, "override": opts.Override,
		"reason": opts.Reason, "when_allowed": opts.WhenAllowed, "wait_for_approval": opts.WaitForApproval}, &d)
	return d, err
}

// Recycle ships the live artifact with the environment's latest config.
func (c *Client) Recycle(ctx context.Context, app, env string) (core.Deployment, error) {
	var d core.Deployment
	err := c.do(ctx, "POST", "/api/v1/apps/"+esc(app)+"/envs/"+esc(env)+"/recycle", nil, &d)
	return d, err
}
