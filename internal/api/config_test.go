package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/api"
	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/deploy"
	"github.com/cutover/cutover/internal/store/memstore"
)

// manifestSource serves one manifest at every commit.
type manifestSource struct{ unused }

const configManifest = "build: {command: x}\nrun: {command: y}\nenvironments: {staging: {listen: 127.0.0.1:1}, production: {listen: 127.0.0.1:2}}\n"

func (manifestSource) ResolveCommit(context.Context, string, string) (string, error) {
	return strings.Repeat("a", 40), nil
}
func (manifestSource) Log(context.Context, string, string, string) ([]core.Commit, error) {
	return nil, nil
}

func (manifestSource) ReadFile(context.Context, string, string, string) ([]byte, error) {
	return []byte(configManifest), nil
}

func TestConfigRoutes(t *testing.T) {
	t.Parallel()
	st := memstore.New()
	svc, err := deploy.New(deploy.Config{Store: st, Driver: unused{}, Router: unused{}, Builder: noBuilder{}, Source: manifestSource{}, TickInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	if err := st.CreateApp(context.Background(), core.App{Name: "hello", Repo: "/r"}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Config{Service: svc, Token: token}))
	t.Cleanup(srv.Close)

	const secretValue = "very-secret-value"
	call := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+"/api/v1/apps/hello/envs/"+path, bytes.NewBufferString(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if strings.Contains(string(b), secretValue) {
			t.Errorf("%s %s answers a secret value: %s", method, path, b)
		}
		return resp.StatusCode, string(b)
	}
	result := func(body string) deploy.ConfigResult {
		t.Helper()
		var r deploy.ConfigResult
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		return r
	}

	code, body := call("PATCH", "staging/config", `{"vars":{"A":"1","B":"2"},"secrets":{"KEY":"`+secretValue+`"}}`)
	if code != 200 || result(body).Version != 1 {
		t.Fatalf("first PATCH: %d %s", code, body)
	}
	code, body = call("PATCH", "staging/config", `{"vars":{"B":"3"}}`)
	if r := result(body); code != 200 || r.Vars["A"] != "1" || r.Vars["B"] != "3" || len(r.SecretKeys) != 1 || strings.Join(r.Changed, ",") != "B" {
		t.Errorf("merging PATCH: %d %s", code, body)
	}
	code, body = call("PATCH", "staging/config", `{"unset":["A"]}`)
	if r := result(body); code != 200 || r.Vars["A"] != "" || strings.Join(r.Removed, ",") != "A" {
		t.Errorf("unset: %d %s", code, body)
	}
	code, body = call("GET", "staging/config?version=1", "")
	if cv := result(body); code != 200 || cv.Version != 1 || cv.Vars["B"] != "2" || strings.Join(cv.SecretKeys, ",") != "KEY" {
		t.Errorf("GET v1: %d %s", code, body)
	}
	code, body = call("PUT", "staging/config", `{"vars":{"ONLY":"x"}}`)
	if r := result(body); code != 200 || len(r.Vars) != 1 || len(r.SecretKeys) != 0 {
		t.Errorf("replacing PUT: %d %s", code, body)
	}
	for _, tc := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"PATCH", "staging/config", `{}`, 400, "no config keys"},
		{"PATCH", "prod/config", `{"vars":{"A":"1"}}`, 404, `env \"prod\"`},
		{"PATCH", "staging/config", `{"vars":{"A":"\u0000"}}`, 400, "NUL"},
		{"PATCH", "staging/config", `{"secrets":{"PIN":"123"}}`, 400, "at least 4"},
		{"PATCH", "staging/config", `{"unset":["NOPE"]}`, 404, `\"NOPE\"`},
		{"GET", "staging/config?version=x", "", 400, "version"},
		{"GET", "staging/config?version=99", "", 404, "not found"},
	} {
		if code, body := call(tc.method, tc.path, tc.body); code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s %s %s: %d %s, want %d with %q", tc.method, tc.path, tc.body, code, body, tc.code, tc.want)
		}
	}
}
