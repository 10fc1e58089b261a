package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cutover/cutover/internal/core"
)

func TestErrorStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		err    error
		status int
		msg    string
	}{
		{"invalid", fmt.Errorf("%w: env %q: want staging or production", core.ErrInvalid, "x"), http.StatusBadRequest, core.ErrInvalid.Error() + `: env "x": want staging or production`},
		{"not found", fmt.Errorf("app %q: %w", "web", core.ErrNotFound), http.StatusNotFound, `app "web": not found`},
		{"conflict", fmt.Errorf("tag v1: %w", core.ErrConflict), http.StatusConflict, "tag v1: " + core.ErrConflict.Error()},
		{"locked", fmt.Errorf("deploy web: %w", core.ErrLocked), http.StatusConflict, "deploy web: " + core.ErrLocked.Error()},
		{"timeout", fmt.Errorf("git fetch /srv/secret/repo.git: %w", context.DeadlineExceeded), http.StatusGatewayTimeout, "the operation timed out"},
		{"internal", errors.New("open /var/lib/cutover/db: permission denied"), http.StatusInternalServerError, "internal error"},
		{"standby", fmt.Errorf("%w: the active server is b@host", core.ErrStandby), http.StatusServiceUnavailable, core.ErrStandby.Error() + ": the active server is b@host"},
		{"fenced", fmt.Errorf("record step: %w", core.ErrFenced), http.StatusServiceUnavailable, "record step: " + core.ErrFenced.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, msg := errorStatus(tc.err)
			if status != tc.status {
				t.Errorf("status = %d, want %d", status, tc.status)
			}
			if msg != tc.msg {
				t.Errorf("message = %q, want %q", msg, tc.msg)
			}
		})
	}
}

func TestFail_InternalErrorIsLoggedNotAnswered(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	a := &api{log: slog.New(slog.NewJSONHandler(&logs, nil))}
	internal := errors.New("open /var/lib/cutover/db: permission denied")
	for _, tc := range []struct {
		name, header string
		wantID       string // "" = generated
	}{
		{"generated id", "", ""},
		{"client id", "req-42", "req-42"},
		{"unsafe client id replaced", "a b\nc", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs.Reset()
			r := httptest.NewRequest(http.MethodGet, "/api/v1/apps", nil)
			if tc.header != "" {
				r.Header.Set("X-Request-Id", tc.header)
			}
			w := httptest.NewRecorder()
			a.fail(w, r, internal)
			if got, want := w.Code, http.StatusInternalServerError; got != want {
				t.Fatalf("status = %d, want %d", got, want)
			}
			var body errorBody
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.wantID != "" && body.RequestID != tc.wantID:
				t.Errorf("request id = %q, want %q", body.RequestID, tc.wantID)
			case tc.wantID == "" && len(body.RequestID) != 16:
				t.Errorf("request id = %q, want a generated one", body.RequestID)
			}
			if got, want := body.Error, "internal error (request id "+body.RequestID+")"; got != want {
				t.Errorf("error = %q, want %q", got, want)
			}
			if got := w.Header().Get("X-Request-Id"); got != body.RequestID {
				t.Errorf("X-Request-Id = %q, want %q", got, body.RequestID)
			}
			var entry map[string]any
			if err := json.Unmarshal(logs.Bytes(), &entry); err != nil {
				t.Fatalf("log %q: %v", logs.String(), err)
			}
			if entry["request_id"] != body.RequestID || entry["err"] != internal.Error() {
				t.Errorf("log = %v, want the error under request id %q", entry, body.RequestID)
			}
		})
	}
}

func TestFail_ClientErrorKeepsItsMessage(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	a := &api{log: slog.New(slog.NewJSONHandler(&logs, nil))}
	w := httptest.NewRecorder()
	a.fail(w, httptest.NewRequest(http.MethodGet, "/api/v1/apps/x", nil), fmt.Errorf("app %q: %w", "x", core.ErrNotFound))
	var body errorBody
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if got, want := body, (errorBody{Error: `app "x": not found`}); got != want {
		t.Errorf("body = %+v, want %+v", got, want)
	}
	if strings.TrimSpace(logs.String()) != "" {
		t.Errorf("a client error was logged: %s", logs.String())
	}
}
