package deploy_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/deploy"
	"github.com/cutover/cutover/internal/secret"
)

// headSource is fakeSource with HEAD resolving to the first commit, as
// config changes read the manifest at the head of the app's repository.
type headSource struct{ fakeSource }

func (h headSource) ResolveCommit(ctx context.Context, repo, ref string) (string, error) {
	if ref == "HEAD" {
		ref = "c1"
	}
	return h.fakeSource.ResolveCommit(ctx, repo, ref)
}

func newConfigRig(t *testing.T) (*deploy.Service, *rig) {
	t.Helper()
	r := newRig(t)
	svc, err := deploy.New(deploy.Config{Store: r.store, Driver: r.driver, Router: r.router, Builder: r.builder,
		Source: headSource{fakeSource{manifest: []byte(testManifest)}}, TickInterval: time.Hour, Holder: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	return svc, r
}

func TestSetConfig_MergesIntoLatest(t *testing.T) {
	t.Parallel()
	svc, r := newConfigRig(t)
	ctx := context.Background()
	if _, err := svc.SetConfig(ctx, "hello", "staging", map[string]string{"A": "1", "B": "2"}, map[string]string{"API_KEY": "s3cret-1"}); err != nil {
		t.Fatal(err)
	}
	cv, err := svc.SetConfig(ctx, "hello", "staging", map[string]string{"B": "3"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cv.Vars, map[string]string{"A": "1", "B": "3"}; !reflect.DeepEqual(got, want) {
		t.Errorf("vars = %v, want %v", got, want)
	}
	if got, want := cv.SecretKeys, []string{"API_KEY"}; !reflect.DeepEqual(got, want) {
		t.Errorf("secret keys = %v, want %v", got, want)
	}
	// The secret's value is carried over into the new version.
	sec, err := r.store.GetConfigSecrets(ctx, "hello", "staging", cv.Version)
	if err != nil || sec["API_KEY"] != "s3cret-1" {
		t.Errorf("secrets of v%d = %v, %v; want API_KEY carried over", cv.Version, sec, err)
	}
}

func TestChangeConfig_KindChangeUnsetReplace(t *testing.T) {
	t.Parallel()
	svc, r := newConfigRig(t)
	ctx := context.Background()
	change := func(ch deploy.ConfigChange) deploy.ConfigResult {
		t.Helper()
		res, err := svc.ChangeConfig(ctx, "hello", "staging", ch)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	change(deploy.ConfigChange{Vars: map[string]string{"A": "1", "TOKEN": "plain"}, Secrets: map[string]string{"KEY": "s3cret-1", "OLD": "s3cret-2"}})

	// A plain value becomes a secret and a secret a plain value.
	res := change(deploy.ConfigChange{Vars: map[string]string{"KEY": "now-plain"}, Secrets: map[string]string{"TOKEN": "now-secret"}})
	if got, want := res.Vars, map[string]string{"A": "1", "KEY": "now-plain"}; !reflect.DeepEqual(got, want) {
		t.Errorf("vars = %v, want %v", got, want)
	}
	if got, want := res.SecretKeys, []string{"OLD", "TOKEN"}; !reflect.DeepEqual(got, want) {
		t.Errorf("secret keys = %v, want %v", got, want)
	}
	if got, want := res.Summary(), "changed: KEY (was secret), TOKEN (secret)"; got != want {
		t.Errorf("summary = %q, want %q", got, want)
	}

	res = change(deploy.ConfigChange{Unset: []string{"A", "OLD"}})
	if got, want := res.Summary(), "removed: A, OLD (secret)"; got != want {
		t.Errorf("summary = %q, want %q", got, want)
	}
	sec, _ := r.store.GetConfigSecrets(ctx, "hello", "staging", res.Version)
	if got, want := sec, map[string]string{"TOKEN": "now-secret"}; !reflect.DeepEqual(got, want) {
		t.Errorf("secrets after unset = %v, want %v", got, want)
	}

	_, err := svc.ChangeConfig(ctx, "hello", "staging", deploy.ConfigChange{Unset: []string{"NOPE"}})
	if !errors.Is(err, core.ErrNotFound) || !strings.Contains(err.Error(), `"NOPE"`) {
		t.Errorf("unset of an unknown key: %v, want not found naming NOPE", err)
	}

	res = change(deploy.ConfigChange{Vars: map[string]string{"ONLY": "x"}, Replace: true})
	if len(res.SecretKeys) != 0 || !reflect.DeepEqual(res.Vars, map[string]string{"ONLY": "x"}) {
		t.Errorf("replace: %+v", res.ConfigVersion)
	}
	if got, want := res.Summary(), "added: ONLY; removed: KEY, TOKEN (secret)"; got != want {
		t.Errorf("summary = %q, want %q", got, want)
	}

	// Setting what is already there records no version.
	before := res.Version
	if res = change(deploy.ConfigChange{Vars: map[string]string{"ONLY": "x"}}); !res.Unchanged || res.Version != before {
		t.Errorf("same value again: unchanged %v, v%d; want unchanged v%d", res.Unchanged, res.Version, before)
	}
}

func TestChangeConfig_Refusals(t *testing.T) {
	t.Parallel()
	svc, _ := newConfigRig(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		env  string
		ch   deploy.ConfigChange
		is   error
		want []string
	}{
		{"empty", "staging", deploy.ConfigChange{}, core.ErrInvalid, []string{"no config keys"}},
		{"empty replace", "staging", deploy.ConfigChange{Replace: true}, core.ErrInvalid, []string{"no config keys"}},
		{"unknown env", "prod", deploy.ConfigChange{Vars: map[string]string{"A": "1"}}, core.ErrNotFound, []string{`"prod"`, "staging", "production"}},
		{"invalid UTF-8 value", "staging", deploy.ConfigChange{Vars: map[string]string{"A": "\xff"}}, core.ErrInvalid, []string{`"A"`, "UTF-8"}},
		{"NUL in value", "staging", deploy.ConfigChange{Vars: map[string]string{"A": "x\x00y"}}, core.ErrInvalid, []string{`"A"`, "NUL"}},
		{"NUL in secret", "staging", deploy.ConfigChange{Secrets: map[string]string{"S": "long\x00enough"}}, core.ErrInvalid, []string{`"S"`, "NUL"}},
		{"NUL in key", "staging", deploy.ConfigChange{Vars: map[string]string{"A\x00": "1"}}, core.ErrInvalid, []string{`"A\x00"`, "letters, digits"}},
		{"invalid UTF-8 key", "staging", deploy.ConfigChange{Vars: map[string]string{"\xffA": "1"}}, core.ErrInvalid, []string{"letters, digits"}},
		{"short secret", "staging", deploy.ConfigChange{Secrets: map[string]string{"PIN": "123"}}, core.ErrInvalid, []string{`"PIN"`, "at least 4"}},
		{"both kinds", "staging", deploy.ConfigChange{Vars: map[string]string{"A": "1"}, Secrets: map[string]string{"A": "1234"}}, core.ErrInvalid, []string{`"A"`}},
		{"set and unset", "staging", deploy.ConfigChange{Vars: map[string]string{"A": "1"}, Unset: []string{"A"}}, core.ErrInvalid, []string{`"A"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := svc.ChangeConfig(ctx, "hello", tc.env, tc.ch)
			if !errors.Is(err, tc.is) {
				t.Fatalf("err = %v, want %v", err, tc.is)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "1234") || strings.Contains(err.Error(), "123\"") {
				t.Errorf("error %q shows a secret value", err)
			}
		})
	}
	if cv, err := svc.Config(ctx, "hello", "staging", 0); err != nil || cv.Version != 0 {
		t.Errorf("after refusals: v%d, %v; want nothing recorded", cv.Version, err)
	}
}

// Every stored secret can be redacted: the minimum that config accepts is
// the one secret.Redact acts on.
func TestMinSecretLen_IsRedactable(t *testing.T) {
	t.Parallel()
	v := strings.Repeat("x", deploy.MinSecretLen)
	if got := secret.Redact("a "+v+" b", map[string]string{"K": v}); strings.Contains(got, v) {
		t.Errorf("a secret of MinSecretLen (%d) bytes is not redacted: %q", deploy.MinSecretLen, got)
	}
	if err := deploy.ValidateConfigValue("K", v[1:], true); err == nil {
		t.Errorf("a secret of %d bytes is accepted", deploy.MinSecretLen-1)
	}
}

func TestChangeConfig_EventNamesKeysNotValues(t *testing.T) {
	t.Parallel()
	svc, r := newConfigRig(t)
	ctx := context.Background()
	if _, err := svc.ChangeConfig(ctx, "hello", "staging", deploy.ConfigChange{Vars: map[string]string{"C": "old", "D": "d"}, Secrets: map[string]string{"S": "secret-one"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ChangeConfig(ctx, "hello", "staging", deploy.ConfigChange{Vars: map[string]string{"A": "a-value", "B": "b-value", "C": "new"}, Actor: "ann"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ChangeConfig(ctx, "hello", "staging", deploy.ConfigChange{Unset: []string{"S"}}); err != nil {
		t.Fatal(err)
	}
	evs, err := r.store.ListEvents(ctx, "hello", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []core.Event
	for _, e := range evs {
		if e.Type == core.EventConfigSet {
			got = append(got, e)
		}
	}
	if len(got) != 3 {
		t.Fatalf("%d config.set events, want 3: %+v", len(got), got)
	}
	for i, want := range []string{"added: C, D, S (secret)", "added: A, B; changed: C", "removed: S (secret)"} {
		if got[i].Reason != want {
			t.Errorf("event %d reason = %q, want %q", i, got[i].Reason, want)
		}
		if !strings.Contains(got[i].Message, want) {
			t.Errorf("event %d message %q does not say %q", i, got[i].Message, want)
		}
		for _, v := range []string{"secret-one", "a-value", "b-value", "old", "new"} {
			if strings.Contains(got[i].Message+got[i].Reason, v) {
				t.Errorf("event %d shows the value %q: %+v", i, v, got[i])
			}
		}
	}
	if got[1].Actor != "ann" {
		t.Errorf("actor = %q, want ann", got[1].Actor)
	}
}

// A secret of the latest version too short to redact (recorded before the
// minimum) must be replaced or removed before anything else is changed.
func TestChangeConfig_RefusesToCarryShortSecret(t *testing.T) {
	t.Parallel()
	svc, r := newConfigRig(t)
	ctx := context.Background()
	if _, err := r.store.PutConfig(ctx, "hello", "staging", nil, map[string]string{"PIN": "12"}); err != nil {
		t.Fatal(err)
	}
	_, err := svc.ChangeConfig(ctx, "hello", "staging", deploy.ConfigChange{Vars: map[string]string{"A": "1"}})
	if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), `"PIN"`) || !strings.Contains(err.Error(), "unset it") {
		t.Errorf("carrying a short secret: %v", err)
	}
	if _, err := svc.ChangeConfig(ctx, "hello", "staging", deploy.ConfigChange{Unset: []string{"PIN"}}); err != nil {
		t.Errorf("unset of the short secret: %v", err)
	}
}

func TestConfig_Versions(t *testing.T) {
	t.Parallel()
	svc, _ := newConfigRig(t)
	ctx := context.Background()
	if _, err := svc.Config(ctx, "hello", "prod", 0); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("config of an unknown env: %v, want not found", err)
	}
	for _, v := range []string{"1", "2"} {
		if _, err := svc.SetConfig(ctx, "hello", "staging", map[string]string{"V": v}, map[string]string{"S": "secret-" + v}); err != nil {
			t.Fatal(err)
		}
	}
	cv, err := svc.Config(ctx, "hello", "staging", 1)
	if err != nil || cv.Version != 1 || cv.Vars["V"] != "1" || !reflect.DeepEqual(cv.SecretKeys, []string{"S"}) {
		t.Errorf("v1 = %+v, %v", cv, err)
	}
	if cv, err = svc.Config(ctx, "hello", "staging", 0); err != nil || cv.Version != 2 {
		t.Errorf("latest = v%d, %v; want v2", cv.Version, err)
	}
	if _, err = svc.Config(ctx, "hello", "staging", 9); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("v9: %v, want not found", err)
	}
}
