package api

import "testing"

func TestIsHookPath(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		path string
		want bool
	}{
		{"/api/v1/hooks/github/hello", true},
		{"/api/v1/hooks/gitlab/hello", true},
		{"/api/v1/hooks/github/", false},
		{"/api/v1/hooks/github", false},
		{"/api/v1/hooks/bitbucket/hello", false},
		{"/api/v1/hooks/github/hello/x", false},
		{"/api/v1/hooks/github/..", false},
		{"/api/v1/hooks/github/../../apps", false},
		{"/api/v1/apps/hello/hooks/secret", false},
		{"/api/v1/apps", false},
	} {
		if got := isHookPath(tc.path); got != tc.want {
			t.Errorf("isHookPath(%q) = %v, want %v", tc.path, got, tc.want)
		}
	}
}

func TestCheckName(t *testing.T) {
	t.Parallel()
	long := "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz"
	for _, tc := range []struct{ in, want string }{
		{"ci", "ci"},
		{"ci/circleci: build", "ci/circleci--build"},
		{" tests ", "tests"},
		{"déploy", "d--ploy"},
		{long, long[:maxCheckName]},
	} {
		if got := checkName(tc.in); got != tc.want {
			t.Errorf("checkName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
