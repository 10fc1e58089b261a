package image

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/core"
)

func TestEscapes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		rel, target string
		want        bool
	}{
		{"link", "file", false},
		{"a/link", "../file", false},
		{"a/b/link", "../../a/file", false},
		{"link", "../outside", true},
		{"a/link", "../../outside", true},
		{"a/link", "b/../../../x", true},
		{"link", "/etc/passwd", true},
		{"link", ".", false},
		{"link", "..", true},
	}
	for _, tc := range cases {
		if got := escapes(tc.rel, tc.target); got != tc.want {
			t.Errorf("escapes(%q, %q) = %v, want %v", tc.rel, tc.target, got, tc.want)
		}
	}
}

// tree writes files (path -> content, mode) under a new directory.
func tree(t *testing.T, files map[string]os.FileMode, links map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, mode := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("content of "+p), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(full, mode); err != nil {
			t.Fatal(err)
		}
	}
	for p, target := range links {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, full); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func tarOf(t *testing.T, dir string) []byte {
	t.Helper()
	entries, err := scanContext(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := writeContext(&buf, dir, entries); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestScanContext_Refuses(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		files map[string]os.FileMode
		links map[string]string
		max   int64
		want  string
	}{
		{"link out of the tree", map[string]os.FileMode{"a": 0o644}, map[string]string{"sub/up": "../../x"}, 1 << 20, "sub/up points outside"},
		{"absolute link", nil, map[string]string{"passwd": "/etc/passwd"}, 1 << 20, "passwd points outside"},
		{"too large", map[string]os.FileMode{"a": 0o644, "b": 0o644}, nil, 12, "larger than 12 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := tree(t, tc.files, tc.links)
			_, err := scanContext(dir, tc.max)
			if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrInvalid with %q", err, tc.want)
			}
		})
	}
	t.Run("fifo", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		if err := syscall.Mkfifo(filepath.Join(dir, "pipe"), 0o644); err != nil {
			t.Skip(err)
		}
		if _, err := scanContext(dir, 1<<20); !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), "pipe") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestWriteContext_ModesLinksAndOwners(t *testing.T) {
	t.Parallel()
	dir := tree(t,
		map[string]os.FileMode{"bin/app": 0o755, "secret.key": 0o600, "Dockerfile": 0o644, "setuid": os.ModeSetuid | 0o755},
		map[string]string{"bin/current": "app", "docs": "bin"})
	tr := tar.NewReader(bytes.NewReader(tarOf(t, dir)))
	got := map[string]*tar.Header{}
	var order []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[h.Name] = h
		order = append(order, h.Name)
	}
	want := []string{"Dockerfile", "bin/", "bin/app", "bin/current", "docs", "secret.key", "setuid"}
	if strings.Join(order, " ") != strings.Join(want, " ") {
		t.Errorf("entries %v, want %v (sorted)", order, want)
	}
	modes := map[string]int64{"bin/app": 0o755, "secret.key": 0o600, "Dockerfile": 0o644, "setuid": 0o4755, "bin/": 0o755}
	for n, m := range modes {
		if h := got[n]; h == nil || h.Mode != m {
			t.Errorf("%s: mode %o, want %o", n, h.Mode, m)
		}
	}
	if h := got["bin/current"]; h.Typeflag != tar.TypeSymlink || h.Linkname != "app" {
		t.Errorf("bin/current: %+v", h)
	}
	for n, h := range got {
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" || !h.ModTime.Equal(contextTime) {
			t.Errorf("%s: uid %d gid %d %q %q mtime %s", n, h.Uid, h.Gid, h.Uname, h.Gname, h.ModTime)
		}
	}
}

func TestWriteContext_Deterministic(t *testing.T) {
	t.Parallel()
	files := map[string]os.FileMode{"a": 0o644, "z/b": 0o755, "m/n/o": 0o600}
	links := map[string]string{"z/l": "b"}
	one, two := tree(t, files, links), tree(t, files, links)
	// Different times on disk give the same bytes.
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(two, "a"), old, old); err != nil {
		t.Fatal(err)
	}
	a, b := tarOf(t, one), tarOf(t, two)
	if !bytes.Equal(a, b) {
		t.Fatal("the same tree gave different tar bytes")
	}
	if !bytes.Equal(a, tarOf(t, one)) {
		t.Fatal("two writes of one tree differ")
	}
}

func TestDockerfilePath(t *testing.T) {
	t.Parallel()
	dir := tree(t, map[string]os.FileMode{"Dockerfile": 0o644, "deploy/Dockerfile.prod": 0o644}, nil)
	entries, err := scanContext(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		in, want, err string
	}{
		{"", "Dockerfile", ""},
		{"deploy/Dockerfile.prod", "deploy/Dockerfile.prod", ""},
		{"./deploy/../Dockerfile", "Dockerfile", ""},
		{"deploy", "", "no dockerfile at deploy"},
		{"missing", "", "no dockerfile at missing"},
		{"../Dockerfile", "", "inside the build context"},
		{"/etc/Dockerfile", "", "inside the build context"},
	}
	for _, tc := range cases {
		got, err := dockerfilePath(dir, tc.in, entries)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestReadBuildStream(t *testing.T) {
	t.Parallel()
	stream := `{"stream":"Step 1/2 : FROM scratch\n"}
{"stream":" ---\u003e \n"}
{"status":"Downloading","id":"abc","progress":"[==>  ]"}
{"aux":{"ID":"sha256:1234"}}
{"errorDetail":{"message":"The command '/bin/sh -c false' returned a non-zero code: 1"},"error":"The command '/bin/sh -c false' returned a non-zero code: 1"}
`
	var out bytes.Buffer
	_, err := readBuildStream(strings.NewReader(stream), &out)
	if !errors.Is(err, core.ErrBuildFailed) || !strings.Contains(err.Error(), "returned a non-zero code: 1") {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"Step 1/2 : FROM scratch\n", "abc: Downloading [==>  ]\n", "ERROR: The command"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	id, err := readBuildStream(strings.NewReader(`{"aux":{"ID":"sha256:1234"}}`+"\n"+`{"stream":"Successfully built 1234\n"}`), io.Discard)
	if err != nil || id != "sha256:1234" {
		t.Errorf("id %q, %v", id, err)
	}
}

// Credentials never go over plain HTTP off loopback unless Insecure says
// so; anonymous requests and loopback registries pass.
func TestPlainHTTPGuard(t *testing.T) {
	t.Parallel()
	passed := 0
	next := roundTripFunc(func(*http.Request) (*http.Response, error) {
		passed++
		return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
	})
	for _, tc := range []struct {
		url     string
		auth    bool
		allowed bool
		refused bool
	}{
		{"http://10.0.0.5:5000/v2/", true, false, true},
		{"http://registry.local:5000/v2/", true, false, true},
		{"http://10.0.0.5:5000/v2/", true, true, false},
		{"http://10.0.0.5:5000/v2/", false, false, false},
		{"https://10.0.0.5:5000/v2/", true, false, false},
		{"http://127.0.0.1:5000/v2/", true, false, false},
		{"http://localhost:5000/v2/", true, false, false},
	} {
		req, _ := http.NewRequest(http.MethodGet, tc.url, nil)
		if tc.auth {
			req.Header.Set("Authorization", "Basic dTpw")
		}
		before := passed
		_, err := plainHTTPGuard{next: next, allowed: tc.allowed}.RoundTrip(req)
		if refused := err != nil; refused != tc.refused || (refused && passed != before) {
			t.Errorf("%s auth=%v insecure=%v: err = %v, want refused=%v (and nothing sent when refused)", tc.url, tc.auth, tc.allowed, err, tc.refused)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
