package server_test

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
)

// binDir holds binaries built once for the whole package run.
var binDir string

func TestMain(m *testing.M) {
	flag.Parse()
	// The end-to-end tests spend their time waiting on processes, health
	// checks and verification windows, not on the CPU: run more of them at
	// once than -parallel's default of GOMAXPROCS, unless it is given.
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		_ = flag.Set("test.parallel", strconv.Itoa(4*runtime.GOMAXPROCS(0)))
	}
	dir, err := os.MkdirTemp("", "cutover-server-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var cutoverBuild struct {
	once sync.Once
	path string
	err  error
}

// cutoverBin returns the cutover binary, built on first use and shared by
// every test of the package.
func cutoverBin(t *testing.T) string {
	t.Helper()
	b := &cutoverBuild
	b.once.Do(func() {
		b.path = filepath.Join(binDir, "cutover")
		cmd := exec.Command("go", "build", "-o", b.path, "github.com/cutover/cutover/cmd/cutover")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("build cutover: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}
