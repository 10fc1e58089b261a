package core

import "testing"

func TestDiffConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                   string
		oldV, oldS, newV, newS map[string]string
		want                   string
	}{
		{"nothing", map[string]string{"A": "1"}, nil, map[string]string{"A": "1"}, nil, "no config change"},
		{"added and removed", map[string]string{"A": "1"}, nil, map[string]string{"B": "1"}, nil, "added: B; removed: A"},
		{"a secret's value changed, by name only", nil, map[string]string{"K": "old-secret"}, nil, map[string]string{"K": "new-secret"}, "changed: K (secret)"},
		{"a var became a secret", map[string]string{"K": "x"}, nil, nil, map[string]string{"K": "x"}, "changed: K (secret)"},
		{"a secret lost", map[string]string{"A": "1"}, map[string]string{"API_KEY": "s3cret-value"}, map[string]string{"A": "2"}, nil, "changed: A; removed: API_KEY (secret)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := DiffConfig(tc.oldV, tc.oldS, tc.newV, tc.newS).String(); got != tc.want {
				t.Errorf("diff = %q, want %q", got, tc.want)
			}
		})
	}
}
