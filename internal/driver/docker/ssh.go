package docker

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/cutover/cutover/internal/command"
	"github.com/cutover/cutover/internal/core"
)

// sshInherit names the variables ssh needs beyond command.BaseEnv (the
// agent holding the key).
var sshInherit = []string{"SSH_AUTH_SOCK", "USER"}

// sshArgv is how an ssh:// address reaches a remote engine: ssh runs
// `docker system dial-stdio` there and the API speaks over its stdio, as
// docker/cli's connhelper does. No shell is involved on our side; the
// host and user are passed as separate arguments after "--".
func sshArgv(u *url.URL) ([]string, error) {
	if u.Hostname() == "" {
		return nil, fmt.Errorf("%w: ssh address %q has no host", core.ErrInvalid, u.String())
	}
	if _, ok := u.User.Password(); ok {
		return nil, fmt.Errorf("%w: ssh address %q: passwords are not accepted, use a key or an agent", core.ErrInvalid, u.Redacted())
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, fmt.Errorf("%w: ssh address %q: no path or query expected", core.ErrInvalid, u.String())
	}
	// BatchMode: a host key or password prompt fails with ssh's message
	// instead of waiting on a terminal.
	argv := []string{"ssh", "-o", "ConnectTimeout=30", "-o", "BatchMode=yes", "-T"}
	if u.User != nil && u.User.Username() != "" {
		argv = append(argv, "-l", u.User.Username())
	}
	if p := u.Port(); p != "" {
		argv = append(argv, "-p", p)
	}
	return append(argv, "--", u.Hostname(), "docker", "system", "dial-stdio"), nil
}

// sshDialer returns a DialContext that opens one ssh session per
// connection.
func sshDialer(u *url.URL) (func(ctx context.Context, network, addr string) (net.Conn, error), error) {
	argv, err := sshArgv(u)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, _, _ string) (net.Conn, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return newCmdConn(argv)
	}, nil
}

// cmdConn is a net.Conn over a program's stdin and stdout. The program
// runs in its own process group, killed when the connection closes.
type cmdConn struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout io.ReadCloser
	stderr *lockedBuffer
	once   sync.Once
}

// lockedBuffer is ssh's stderr, written by exec's copier, read by Read.
type lockedBuffer struct {
	mu  sync.Mutex
	buf command.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newCmdConn(argv []string) (*cmdConn, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = command.Environ(sshInherit, nil)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr := &lockedBuffer{buf: command.Buffer{Max: 4 << 10}}
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start ssh: %w", err)
	}
	return &cmdConn{cmd: cmd, stdin: stdin, stdout: stdout, stderr: stderr}, nil
}

func (c *cmdConn) Read(p []byte) (int, error) {
	n, err := c.stdout.Read(p)
	if err == io.EOF && n == 0 && c.stderr.String() != "" {
		return 0, fmt.Errorf("ssh: %s", c.stderr.String())
	}
	return n, err
}

func (c *cmdConn) Write(p []byte) (int, error) { return c.stdin.Write(p) }

// Close ends the session: stdin closed, the process group killed, reaped.
func (c *cmdConn) Close() error {
	c.once.Do(func() {
		_ = c.stdin.Close()
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		_ = c.cmd.Wait()
	})
	return nil
}

func (c *cmdConn) LocalAddr() net.Addr  { return dummyAddr{} }
func (c *cmdConn) RemoteAddr() net.Addr { return dummyAddr{} }

// Deadlines are not supported on pipes to a program; the HTTP client's
// contexts bound each request instead.
func (c *cmdConn) SetDeadline(time.Time) error      { return nil }
func (c *cmdConn) SetReadDeadline(time.Time) error  { return nil }
func (c *cmdConn) SetWriteDeadline(time.Time) error { return nil }

type dummyAddr struct{}

func (dummyAddr) Network() string { return "ssh" }
func (dummyAddr) String() string  { return "ssh" }
