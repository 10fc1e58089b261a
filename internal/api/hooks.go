package api

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/cutover/cutover/internal/access"
	"github.com/cutover/cutover/internal/core"
)

// Inbound webhooks.
const (
	// MaxHookBytes bounds a webhook delivery's body; a larger one is
	// refused before it is read whole.
	MaxHookBytes = 1 << 20
	// hookSecretBytes is the entropy of a new hook secret.
	hookSecretBytes = 32
	// maxDeliveryID bounds the delivery id header stored per delivery.
	maxDeliveryID = 128
	maxCheckName  = 64
	hookPrefix    = "/api/v1/hooks/"
	sourceGitHub  = "github"
	sourceGitLab  = "gitlab"
)

// HookStore keeps each app's webhook secret and the deliveries already
// processed.
type HookStore interface {
	PutHookSecret(ctx context.Context, app, secret string, at time.Time) error
	HookSecret(ctx context.Context, app string) (string, error)
	// ClaimDelivery reports whether this call recorded the delivery
	// (false: it was processed, or is being processed, already).
	ClaimDelivery(ctx context.Context, source, id, app string, at time.Time) (bool, error)
	ReleaseDelivery(ctx context.Context, source, id string) error
}

// PushFunc is told of a push to app's branch (a hook point for
// auto-deploy; nothing is recorded for a push yet).
type PushFunc func(ctx context.Context, app, branch, sha string)

// errBadSignature answers every delivery that cannot be authenticated,
// whether the app exists, has a secret or not: the sender learns nothing.
var errBadSignature = errors.New("webhook signature missing or wrong for this app's hook secret (cutover hook secret APP)")

// isHookPath reports whether path is a webhook route: those authenticate
// by signature, not by bearer token.
func isHookPath(path string) bool {
	rest, ok := strings.CutPrefix(path, hookPrefix)
	if !ok {
		return false
	}
	source, app, ok := strings.Cut(rest, "/")
	return ok && (source == sourceGitHub || source == sourceGitLab) && app != "" && app != "." && app != ".." && !strings.Contains(app, "/")
}

func (a *api) routeHooks(mux *http.ServeMux) {
	if a.hooks == nil {
		return
	}
	mux.HandleFunc("POST /api/v1/apps/{app}/hooks/secret", a.allow(access.Apps, inPath, a.json(a.newHookSecret)))
	mux.HandleFunc("POST "+hookPrefix+sourceGitHub+"/{app}", a.hook(sourceGitHub))
	mux.HandleFunc("POST "+hookPrefix+sourceGitLab+"/{app}", a.hook(sourceGitLab))
}

// HookSecretResponse is a new hook secret, shown this once, and the paths
// to point GitHub and GitLab at.
type HookSecretResponse struct {
	App    string `json:"app"`
	Secret string `json:"secret"`
	GitHub string `json:"github"`
	GitLab string `json:"gitlab"`
}

func (a *api) newHookSecret(r *http.Request) (int, any, error) {
	app, _, err := names(r)
	if err != nil {
		return 0, nil, err
	}
	if _, err := a.svc.App(r.Context(), app); err != nil {
		return 0, nil, err
	}
	secret, err := randomHex(hookSecretBytes)
	if err != nil {
		return 0, nil, err
	}
	if err := a.hooks.PutHookSecret(r.Context(), app, secret, time.Now().UTC()); err != nil {
		return 0, nil, err
	}
	a.log.Info("hook secret set", "app", app, "by", actor(r))
	return http.StatusCreated, HookSecretResponse{App: app, Secret: secret,
		GitHub: hookPrefix + sourceGitHub + "/" + app, GitLab: hookPrefix + sourceGitLab + "/" + app}, nil
}

// hookResult is the answer to a delivery.
type hookResult struct {
	Status string `json:"status"` // processed, ignored, already processed
	Event  string `json:"event"`
	Detail string `json:"detail,omitempty"`
}

// delivery is one webhook request, authenticated.
type delivery struct {
	source, app, id, event string
	body                   []byte
}

// hook handles deliveries of source. In order: the body is read (bounded),
// the signature checked against the app's secret, the event parsed, the
// delivery id claimed (a replay stops here) and only then acted on; a
// failed action gives the claim back so a redelivery is processed.
func (a *api) hook(source string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		d, err := a.authenticHook(w, r, source)
		if err != nil {
			a.hookFail(w, r, err)
			return
		}
		act, res, err := parseHook(d)
		if err != nil {
			a.hookFail(w, r, err)
			return
		}
		if act == nil {
			writeJSON(w, http.StatusAccepted, res)
			return
		}
		claimed, err := a.hooks.ClaimDelivery(r.Context(), source, d.id, d.app, time.Now().UTC())
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if !claimed {
			writeJSON(w, http.StatusOK, hookResult{Status: "already processed", Event: d.event, Detail: "delivery " + d.id})
			return
		}
		status, err := act(r.Context(), a)
		if err != nil {
			if rerr := a.hooks.ReleaseDelivery(context.WithoutCancel(r.Context()), source, d.id); rerr != nil {
				a.log.Warn("release webhook delivery", "source", source, "app", d.app, "delivery", d.id, "err", rerr)
			}
			a.hookFail(w, r, err)
			return
		}
		a.log.Info("webhook", "source", source, "app", d.app, "event", d.event, "delivery", d.id)
		writeJSON(w, status, res)
	}
}

func (a *api) hookFail(w http.ResponseWriter, r *http.Request, err error) {
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, errBadSignature):
		writeJSON(w, http.StatusUnauthorized, errorBody{Error: err.Error()})
	case errors.As(err, &mbe):
		writeJSON(w, http.StatusRequestEntityTooLarge, errorBody{Error: fmt.Sprintf("webhook body larger than %d bytes", MaxHookBytes)})
	default:
		a.fail(w, r, err)
	}
}

// authenticHook reads the body of a delivery and checks its signature
// before anything looks inside it.
func (a *api) authenticHook(w http.ResponseWriter, r *http.Request, source string) (delivery, error) {
	d := delivery{source: source, app: r.PathValue("app")}
	if r.ContentLength > MaxHookBytes {
		return d, &http.MaxBytesError{Limit: MaxHookBytes}
	}
	if core.ValidateName("app", d.app) != nil {
		return d, errBadSignature
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxHookBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return d, err
		}
		return d, errInvalidf("webhook body: %v", err)
	}
	d.body = body
	secret, err := a.hooks.HookSecret(r.Context(), d.app)
	if errors.Is(err, core.ErrNotFound) {
		return d, errBadSignature
	}
	if err != nil {
		return d, err
	}
	switch source {
	case sourceGitHub:
		d.id, d.event = r.Header.Get("X-GitHub-Delivery"), r.Header.Get("X-GitHub-Event")
		sig, ok := strings.CutPrefix(r.Header.Get("X-Hub-Signature-256"), "sha256=")
		got, err := hex.DecodeString(sig)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		if !ok || err != nil || !hmac.Equal(got, mac.Sum(nil)) {
			return d, errBadSignature
		}
	case sourceGitLab:
		d.id, d.event = r.Header.Get("X-Gitlab-Event-UUID"), r.Header.Get("X-Gitlab-Event")
		// Hashes first, so the comparison takes the same time whatever
		// the length of the token sent.
		got, want := sha256.Sum256([]byte(r.Header.Get("X-Gitlab-Token"))), sha256.Sum256([]byte(secret))
		if r.Header.Get("X-Gitlab-Token") == "" || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			return d, errBadSignature
		}
	}
	if d.id == "" || len(d.id) > maxDeliveryID {
		return d, errInvalidf("webhook delivery id: want a header of 1-%d characters (X-GitHub-Delivery or X-Gitlab-Event-UUID)", maxDeliveryID)
	}
	return d, nil
}

// hookAction does what a delivery asks and returns the answer's status.
type hookAction func(ctx context.Context, a *api) (int, error)

// parseHook reads the event of an authentic delivery. A nil action means
// the delivery is ignored (answered 202, not claimed).
func parseHook(d delivery) (hookAction, hookResult, error) {
	res := hookResult{Status: "processed", Event: d.event}
	ignore := func(why string) (hookAction, hookResult, error) {
		return nil, hookResult{Status: "ignored", Event: d.event, Detail: why}, nil
	}
	unmarshal := func(v any) error {
		if err := json.Unmarshal(d.body, v); err != nil {
			return errInvalidf("webhook %s %s: body: %v", d.source, d.event, err)
		}
		return nil
	}
	check := func(sha, name string, state core.CheckState, url string) hookAction {
		by := d.source
		return func(ctx context.Context, a *api) (int, error) {
			_, err := a.svc.ReportCheck(ctx, core.CommitStatus{App: d.app, SHA: sha, Name: checkName(name), State: state, URL: url, By: by})
			return http.StatusOK, err
		}
	}
	switch d.source + "/" + d.event {
	case "github/status":
		var ev struct {
			SHA       string `json:"sha"`
			State     string `json:"state"`
			Context   string `json:"context"`
			TargetURL string `json:"target_url"`
		}
		if err := unmarshal(&ev); err != nil {
			return nil, res, err
		}
		state, ok := map[string]core.CheckState{"success": core.CheckSuccess, "failure": core.CheckFailure, "error": core.CheckFailure, "pending": core.CheckPending}[ev.State]
		if !ok {
			return nil, res, errInvalidf("webhook github status: state %q: want success, failure, error or pending", ev.State)
		}
		res.Detail = fmt.Sprintf("check %s of %s: %s", checkName(ev.Context), core.ShortSHA(ev.SHA), state)
		return check(ev.SHA, ev.Context, state, ev.TargetURL), res, nil
	case "github/check_run":
		var ev struct {
			CheckRun struct {
				Name       string `json:"name"`
				HeadSHA    string `json:"head_sha"`
				Status     string `json:"status"`
				Conclusion string `json:"conclusion"`
				HTMLURL    string `json:"html_url"`
			} `json:"check_run"`
		}
		if err := unmarshal(&ev); err != nil {
			return nil, res, err
		}
		cr := ev.CheckRun
		state := core.CheckPending
		if cr.Status == "completed" {
			switch cr.Conclusion {
			case "success", "neutral", "skipped":
				state = core.CheckSuccess
			default: // failure, cancelled, timed_out, action_required, stale, startup_failure
				state = core.CheckFailure
			}
		}
		res.Detail = fmt.Sprintf("check %s of %s: %s", checkName(cr.Name), core.ShortSHA(cr.HeadSHA), state)
		return check(cr.HeadSHA, cr.Name, state, cr.HTMLURL), res, nil
	case "github/pull_request_review":
		var ev struct {
			Review struct {
				State string `json:"state"`
				User  struct {
					Login string `json:"login"`
					Email string `json:"email"`
				} `json:"user"`
			} `json:"review"`
			PullRequest struct {
				Head struct {
					SHA string `json:"sha"`
				} `json:"head"`
			} `json:"pull_request"`
		}
		if err := unmarshal(&ev); err != nil {
			return nil, res, err
		}
		if !strings.EqualFold(ev.Review.State, "approved") {
			return ignore("review state " + ev.Review.State + ": only approvals count")
		}
		login, email, sha := ev.Review.User.Login, ev.Review.User.Email, ev.PullRequest.Head.SHA
		if login == "" {
			return nil, res, errInvalidf("webhook github pull_request_review: review.user.login is empty")
		}
		res.Detail = fmt.Sprintf("review of %s by %s", core.ShortSHA(sha), login)
		return func(ctx context.Context, a *api) (int, error) {
			by, err := a.reviewer(ctx, login, email)
			if err != nil {
				return 0, err
			}
			_, err = a.svc.ReviewCommit(ctx, d.app, sha, by)
			return http.StatusOK, err
		}, res, nil
	case "github/push", "gitlab/Push Hook":
		var ev struct {
			Ref         string `json:"ref"`
			After       string `json:"after"`
			CheckoutSHA string `json:"checkout_sha"`
		}
		if err := unmarshal(&ev); err != nil {
			return nil, res, err
		}
		branch, ok := strings.CutPrefix(ev.Ref, "refs/heads/")
		if !ok {
			return ignore("ref " + ev.Ref + " is not a branch")
		}
		sha := ev.After
		if ev.CheckoutSHA != "" {
			sha = ev.CheckoutSHA
		}
		res.Detail = fmt.Sprintf("push of %s to %s", core.ShortSHA(sha), branch)
		return func(ctx context.Context, a *api) (int, error) {
			if a.onPush != nil {
				a.onPush(ctx, d.app, branch, sha)
			}
			return http.StatusAccepted, nil
		}, res, nil
	case "gitlab/Pipeline Hook":
		var ev struct {
			ObjectAttributes struct {
				SHA    string `json:"sha"`
				Status string `json:"status"`
				URL    string `json:"url"`
			} `json:"object_attributes"`
		}
		if err := unmarshal(&ev); err != nil {
			return nil, res, err
		}
		var state core.CheckState
		switch oa := ev.ObjectAttributes; oa.Status {
		case "success":
			state = core.CheckSuccess
		case "failed", "canceled":
			state = core.CheckFailure
		case "running", "pending", "created", "preparing", "waiting_for_resource", "scheduled":
			state = core.CheckPending
		default: // skipped, manual
			return ignore("pipeline status " + oa.Status)
		}
		res.Detail = fmt.Sprintf("check pipeline of %s: %s", core.ShortSHA(ev.ObjectAttributes.SHA), state)
		return check(ev.ObjectAttributes.SHA, "pipeline", state, ev.ObjectAttributes.URL), res, nil
	}
	return ignore("event type not used by cutover")
}

// checkName makes a CI context (free text on GitHub: "ci/circleci: build")
// a check name: characters outside [A-Za-z0-9._/-] become '-', at most
// maxCheckName of them.
func checkName(s string) string {
	b := []byte(strings.TrimSpace(s))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == '/') {
			b[i] = '-'
		}
	}
	if len(b) > maxCheckName {
		b = b[:maxCheckName]
	}
	return string(b)
}

// reviewer is the cutover user a forge reviewer is: the one whose name is
// the login or whose email is the reviewer's; the login itself otherwise.
func (a *api) reviewer(ctx context.Context, login, email string) (string, error) {
	if a.users == nil {
		return login, nil
	}
	us, err := a.users.ListUsers(ctx)
	if err != nil {
		return "", err
	}
	for _, u := range us {
		if strings.EqualFold(u.Name, login) || (email != "" && strings.EqualFold(u.Email, email)) {
			return u.Name, nil
		}
	}
	return login, nil
}
