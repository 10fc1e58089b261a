package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/deploy"
)

// runIO runs the CLI in-process with stdin and returns the exit code,
// standard output and standard error apart.
func runIO(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	root := NewRoot()
	var out, errOut bytes.Buffer
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	if err == nil {
		return exitOK, out.String(), errOut.String()
	}
	errOut.WriteString("error: " + err.Error())
	var ue usageError
	if errors.As(err, &ue) {
		return exitUsage, out.String(), errOut.String()
	}
	return exitFail, out.String(), errOut.String()
}

func TestConfigCommands(t *testing.T) {
	t.Parallel()
	srv, repo, cli := startCLIServer(t, "v1", time.Second)
	base := []string{"--server", srv.URL(), "--data-dir", filepath.Join(filepath.Dir(repo), "data")}
	withStdin := func(stdin string, args ...string) (int, string, string) {
		return runIO(t, stdin, append(args, base...)...)
	}
	if code, out := cli("app", "add", "hello", "--repo", repo); code != 0 {
		t.Fatalf("app add: %d %s", code, out)
	}
	const fileSecret, stdinSecret, argvSecret = "from-a-file-secret", "from-stdin-secret", "from-argv-secret"
	// (deploy's tests check that the values are carried over; here, the names.)
	secretFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(secretFile, []byte(fileSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// Secrets from a file and from stdin, no warning.
	code, out, errOut := withStdin(stdinSecret+"\n", "config", "set", "hello", "staging", "A=1", "B=2", "--secret-file", "FILE_KEY="+secretFile, "--secret-stdin", "STDIN_KEY")
	if code != 0 || !strings.Contains(out, "config v1 for hello/staging: added: A, B, FILE_KEY (secret), STDIN_KEY (secret)") || errOut != "" {
		t.Fatalf("set: %d %q %q", code, out, errOut)
	}
	// Setting one key keeps the others, secrets included; argv warns.
	code, out, errOut = withStdin("", "config", "set", "hello", "staging", "B=3", "--secret", "ARGV_KEY="+argvSecret)
	if code != 0 || !strings.Contains(out, "config v2 for hello/staging: added: ARGV_KEY (secret); changed: B") || !strings.Contains(errOut, "warning: --secret") {
		t.Fatalf("merging set: %d %q %q", code, out, errOut)
	}
	code, out = cli("config", "show", "hello", "staging")
	want := "A=1\nARGV_KEY=******\nB=3\nFILE_KEY=******\nSTDIN_KEY=******\n"
	if code != 0 || !strings.HasSuffix(out, want) {
		t.Errorf("show: %d\n%s\nwant it to end with\n%s", code, out, want)
	}
	code, out = cli("config", "show", "hello", "staging", "--version", "1", "--output", "json")
	var cv core.ConfigVersion
	if code != 0 || json.Unmarshal([]byte(out), &cv) != nil || cv.Version != 1 || cv.Vars["B"] != "2" || len(cv.SecretKeys) != 2 {
		t.Errorf("show v1 json: %d %s", code, out)
	}

	code, out = cli("config", "unset", "hello", "staging", "A", "ARGV_KEY", "--output", "json")
	var res deploy.ConfigResult
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Version != 3 || strings.Join(res.Removed, ",") != "A,ARGV_KEY (secret)" {
		t.Errorf("unset json: %d %s", code, out)
	}
	code, out = cli("config", "set", "hello", "staging", "--replace", "ONLY=1")
	if code != 0 || !strings.Contains(out, "added: ONLY; removed: B, FILE_KEY (secret), STDIN_KEY (secret)") {
		t.Errorf("replace: %d %s", code, out)
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"config", "set", "hello", "staging"}, exitUsage, "at least one KEY=VALUE"},
		{[]string{"config", "set", "hello", "staging", "--replace"}, exitUsage, "at least one KEY=VALUE"},
		{[]string{"config", "set", "hello", "prod", "A=1"}, exitFail, `env "prod" is not in cutover.yml`},
		{[]string{"config", "set", "hello", "staging", "--secret", "PIN=123"}, exitFail, `"PIN": secret value is 3 bytes, want at least 4`},
		{[]string{"config", "set", "hello", "staging", "A=\xff"}, exitFail, `"A": value is not valid UTF-8`},
		{[]string{"config", "set", "hello", "staging", "A=1", "--secret", "A=long-enough"}, exitUsage, `"A" is given twice`},
		{[]string{"config", "set", "hello", "staging", "--secret-file", "K=/nonexistent/file"}, exitFail, "secret K"},
		{[]string{"config", "unset", "hello", "staging", "NOPE"}, exitFail, `"NOPE" is not set`},
		{[]string{"config", "unset", "hello", "staging"}, exitUsage, "one or more KEYs"},
		{[]string{"config", "show", "hello", "staging", "--version", "9"}, exitFail, "not found"},
	} {
		if code, out := cli(tc.args...); code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("%q: exit %d, want %d with %q:\n%s", tc.args, code, tc.code, tc.want, out)
		}
	}
	// A NUL byte from a file (argv cannot hold one).
	nulFile := filepath.Join(t.TempDir(), "nul")
	if err := os.WriteFile(nulFile, []byte("abc\x00def"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := cli("config", "set", "hello", "staging", "--secret-file", "NUL_KEY="+nulFile); code != exitFail || !strings.Contains(out, `"NUL_KEY": secret value holds a NUL byte`) {
		t.Errorf("NUL from a file: %d %s", code, out)
	}
	// Nothing else was recorded.
	if cv, err := srv.Deploy.Config(context.Background(), "hello", "staging", 0); err != nil || cv.Version != 4 {
		t.Errorf("latest = v%d, %v; want v4", cv.Version, err)
	}
	for _, c := range []string{"set", "unset", "show"} {
		if code, out := cli("config", c, "--help"); code != 0 || !strings.Contains(out, "cutover config "+c) {
			t.Errorf("config %s --help: %d %s", c, code, out)
		}
	}
}

func TestReadSecret_TrimsOneTrailingNewline(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"s3cret":       "s3cret",
		"s3cret\n":     "s3cret",
		"s3cret\r\n":   "s3cret",
		"s3cret\n\n":   "s3cret\n",
		"line1\nline2": "line1\nline2",
	} {
		got, err := readSecret("K", strings.NewReader(in), "test")
		if err != nil || got != want {
			t.Errorf("readSecret(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := readSecret("K", strings.NewReader(strings.Repeat("x", deploy.MaxConfigSize+1)), "test"); err == nil {
		t.Error("a value larger than the largest config is accepted")
	}
}
