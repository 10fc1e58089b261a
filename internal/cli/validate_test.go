package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const validManifest = `build: {command: go build -o bin/app .}
run: {command: [sh, -c, 'exec bin/app --port "$PORT"']}
environments:
  staging: {listen: 127.0.0.1:8081}
  production: {listen: 127.0.0.1:8080, from: staging}
`

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	t.Setenv("CUTOVER_SERVER", "http://127.0.0.1:1") // never asked
	if err := os.WriteFile("cutover.yml", []byte(validManifest), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yml")
	if err := os.WriteFile(bad, []byte(strings.NewReplacer("staging: {listen", "staging: {lisen", "from: staging", "from: staging, instances: 0").Replace(validManifest)+"verify: {max_error_rate: .nan}\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	code, out := run(t, "validate")
	if code != exitOK || out != "cutover.yml: valid (2 environments: staging, production)\n" {
		t.Errorf("valid: exit %d, output %q", code, out)
	}
	if code, out := run(t, "validate", dir); code != exitOK || !strings.Contains(out, "valid (2 environments") {
		t.Errorf("directory: exit %d, output %q", code, out)
	}

	code, out = run(t, "validate", bad)
	for _, want := range []string{
		bad + ":4: environments.staging.lisen: unknown field; did you mean listen?",
		bad + ":5: environments.production.instances: 0 is out of range (1-64)",
		bad + ":6: verify.max_error_rate: .nan is not a finite number",
		"error: " + bad + ": 4 problems",
	} {
		if code != exitFail || !strings.Contains(out, want) {
			t.Errorf("invalid: exit %d, want 1 and %q in:\n%s", code, want, out)
		}
	}

	code, out = run(t, "validate", bad, "--output", "json")
	var res struct {
		Valid  bool
		Errors []struct {
			Line           int
			Field, Message string
		}
		Environments []string
	}
	if err := json.Unmarshal([]byte(out[:strings.LastIndex(out, "error:")]), &res); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if code != exitFail || res.Valid || len(res.Errors) != 4 || res.Errors[0].Line != 4 || res.Errors[0].Field != "environments.staging.lisen" {
		t.Errorf("json invalid: exit %d, %+v", code, res)
	}
	code, out = run(t, "validate", "-o", "json")
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != exitOK || !res.Valid || len(res.Errors) != 0 || strings.Join(res.Environments, ",") != "staging,production" {
		t.Errorf("json valid: exit %d, %v, %s", code, err, out)
	}

	if code, out := run(t, "validate", "missing.yml"); code != exitFail || !strings.Contains(out, "missing.yml") {
		t.Errorf("missing file: exit %d, %s", code, out)
	}
	if code, _ := run(t, "validate", "a", "b"); code != exitUsage {
		t.Errorf("two files: exit %d, want 2", code)
	}
	if code, _ := run(t, "validate", "-o", "yaml"); code != exitUsage {
		t.Errorf("bad --output: exit %d, want 2", code)
	}
}

// The example app's manifest, which the documentation shows, is valid.
func TestValidateExample(t *testing.T) {
	t.Parallel()
	code, out := run(t, "validate", filepath.Join("..", "..", "examples", "hello", "cutover.yml"))
	if code != exitOK || !strings.Contains(out, "valid (2 environments: staging, production)") {
		t.Errorf("exit %d: %s", code, out)
	}
}
