package build

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
)

func TestBuild_RefusesArtifactAboveLimit(t *testing.T) {
	app, sha := repoWith(t, "truncate -s 3M big.bin", "30s")
	b := &Builder{Root: t.TempDir(), MaxArtifactBytes: 1 << 20}
	_, _, err := b.Build(context.Background(), app, sha, nil)
	if !errors.Is(err, ErrArtifactTooLarge) {
		t.Fatalf("err = %v, want ErrArtifactTooLarge", err)
	}
	for _, want := range []string{"1.0 MiB (1048576 bytes)", "limit"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestBuild_CapsOutput(t *testing.T) {
	const max = 64 << 10
	// 8 MiB of output, then the line a failing build would end with.
	app, sha := repoWith(t, `[sh, -c, "head -c 8388608 /dev/zero; echo; echo the-last-words"]`, "30s")
	b := &Builder{Root: t.TempDir(), MaxOutputBytes: max}
	var streamed bytes.Buffer
	a, _, err := b.Build(context.Background(), app, sha, &streamed)
	if err != nil {
		t.Fatal(err)
	}
	logged, err := os.ReadFile(a.BuildLog)
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string][]byte{"streamed": streamed.Bytes(), "logged": logged} {
		if len(got) > max+outputTail+200 {
			t.Errorf("%s output: %d bytes, cap %d + tail %d", name, len(got), max, outputTail)
		}
		if !bytes.Contains(got, []byte("bytes dropped")) || !bytes.HasSuffix(got, []byte("the-last-words\n")) {
			t.Errorf("%s output does not note the drop and end with the last words", name)
		}
	}
}
