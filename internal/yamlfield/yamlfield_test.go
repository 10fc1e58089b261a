package yamlfield

import (
	"errors"
	"strings"
	"testing"
)

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"abc", "", 3}, {"", "abc", 3}, {"health", "health", 0},
		{"helth", "health", 1}, {"smoek", "smoke", 1}, {"ab", "ba", 1},
		{"kitten", "sitting", 3}, {"über", "uber", 1},
	} {
		if got := EditDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("EditDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestSuggest(t *testing.T) {
	known := []string{"build", "health", "environments", "timeout"}
	aliases := Aliases{"healthcheck": "health", "replicas": "instances"}
	for _, tc := range []struct {
		in      string
		aliases Aliases
		want    string
	}{
		{"helth", nil, "health"}, {"Health", nil, "health"}, {"enviroments", nil, "environments"},
		{"timeuot", nil, "timeout"}, {"zzz", nil, ""}, {"a", nil, ""},
		{"healthcheck", nil, ""}, {"HealthCheck", aliases, "health"},
		{"replicas", aliases, ""}, // an alias of a field not known here
	} {
		if got := tc.aliases.Suggest(tc.in, known); got != tc.want {
			t.Errorf("Suggest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := UnknownField("zzz", known); got != "unknown field (known: build, health, environments, timeout)" {
		t.Errorf("UnknownField = %q", got)
	}
}

func TestDecode(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"ok", "health: {timeout: 5}\n", ""},
		{"misspelt", "health:\n  timout: 5\n", "app.yml:2: health.timout: unknown field; did you mean timeout?"},
		{"range", "health:\n  timeout: 99\n", "app.yml:2: health.timeout: 99 is out of range (1-60)"},
		{"kind", "health: [1]\n", "app.yml:1: health: want a mapping, not a list (for example: {timeout: 5})"},
		{"twice", "health: {timeout: 1}\nhealth: {}\n", "app.yml:2: health: is given twice (first on line 1)"},
		{"order", "health:\n  timeout: x\n  path: \"a\\nb\"\n  bad: 1\n",
			"app.yml:2: health.timeout: \"x\" is not a whole number (want 1 to 60)\n" +
				"app.yml:3: health.path: \"a\\nb\": must be one line\n" +
				"app.yml:4: health.bad: unknown field (known: timeout, path)"},
		{"syntax", "health: [\n", "app.yml:1: not valid YAML: did not find expected node content"},
		{"second", "a: 1\n---\nb: 2\n", "app.yml:2: a second YAML document (---): the app file is one document"},
	} {
		root, err := Document("app.yml", []byte(tc.in), "app file")
		if err == nil {
			d := &Decoder{File: "app.yml"}
			f := d.Mapping(Entry{Val: root}, "", "health: {timeout: 5}", "health")
			h := d.Mapping(f.Get("health"), "health", "{timeout: 5}", "timeout", "path")
			d.Integer(h.Get("timeout"), "health.timeout", 10, 1, 60)
			d.Str(h.Get("path"), "health.path")
			err = d.Err()
		}
		got := ""
		if err != nil {
			got = err.Error()
			var fe *FieldError
			if !errors.As(err, &fe) || fe.File != "app.yml" || !strings.HasPrefix(got, fe.In("app.yml")) {
				t.Errorf("%s: %v: not a *FieldError of app.yml", tc.name, err)
			}
		}
		if got != tc.want {
			t.Errorf("%s: err = %q, want %q", tc.name, got, tc.want)
		}
	}
	if root, err := Document("app.yml", []byte("# nothing\n"), "app file"); root != nil || err != nil {
		t.Errorf("empty: %v, %v", root, err)
	}
}
