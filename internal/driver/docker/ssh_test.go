package docker

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeSSH is an `ssh` for the test: it records its arguments and bridges
// its stdio to the local engine's socket, as `docker system dial-stdio`
// does on a remote host.
const fakeSSH = `#!/usr/bin/env python3
import os, socket, sys, threading
with open(os.environ["FAKE_SSH_LOG"], "a") as f:
    f.write(" ".join(sys.argv[1:]) + "\n")
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(os.environ["FAKE_SSH_SOCKET"])
def up():
    while True:
        b = os.read(0, 65536)
        if not b:
            s.shutdown(socket.SHUT_WR)
            return
        s.sendall(b)
threading.Thread(target=up, daemon=True).start()
while True:
    b = s.recv(65536)
    if not b:
        break
    os.write(1, b)
`

// An ssh:// host is reached through ssh's stdio: the driver pings it and
// lists its containers over the fake ssh, which saw the documented argv.
// Not parallel: it puts the fake ssh first on PATH.
func TestSSHHostDialsThroughSSH(t *testing.T) {
	requireEngine(t)
	sock := strings.TrimPrefix(LocalAddress(), "unix://")
	if sock == LocalAddress() {
		t.Skipf("docker: the engine is not on a unix socket (%s)", LocalAddress())
	}
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not found: the fake ssh is a python script")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ssh"), []byte(fakeSSH), 0o755); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "ssh.log")
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("FAKE_SSH_LOG", logPath)
	t.Setenv("FAKE_SSH_SOCKET", sock)
	sshInherit = append(sshInherit, "FAKE_SSH_LOG", "FAKE_SSH_SOCKET")
	t.Cleanup(func() { sshInherit = sshInherit[:len(sshInherit)-2] })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := New(ctx, Config{Hosts: []Host{{Name: "remote", Address: "ssh://deploy@build-1:2222", PublishIP: "127.0.0.1"}}})
	if err != nil {
		t.Fatalf("an ssh:// host through the fake ssh: %v", err)
	}
	defer d.Close()
	if _, err := d.List(ctx); err != nil {
		t.Fatalf("list over ssh: %v", err)
	}
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatalf("ssh never ran: %v", err)
	}
	if want := "-o ConnectTimeout=30 -o BatchMode=yes -T -l deploy -p 2222 -- build-1 docker system dial-stdio"; !strings.Contains(string(b), want) {
		t.Errorf("ssh ran with %q, want %q", b, want)
	}
}

func TestDefaultPublishIP(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ addr, want, err string }{
		{"unix:///var/run/docker.sock", "127.0.0.1", ""},
		{"tcp://10.0.0.5:2375", "10.0.0.5", ""},
		{"ssh://deploy@10.0.0.6", "10.0.0.6", ""},
		{"tcp://[::1]:2375", "::1", ""},
		{"ssh://deploy@build-1", "", `--docker-host NAME=ssh://deploy@build-1,publish=IP`},
	} {
		got, err := defaultPublishIP(tc.addr)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err = %v, want %q", tc.addr, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.addr, got, err, tc.want)
		}
	}
}
