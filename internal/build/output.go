package build

import (
	"fmt"
	"io"
	"sync"

	"github.com/cutover/cutover/internal/command"
)

// outputTail is how much of the end of a build's output is kept beyond
// MaxOutputBytes: where a failing build says what went wrong.
const outputTail = 64 << 10

// cappedOutput passes the first max bytes of a build's output to w, then
// drops the rest but remembers its last outputTail bytes; Close writes a
// note of what was dropped and that tail. The build never sees an error.
type cappedOutput struct {
	w   io.Writer
	max int64

	mu      sync.Mutex // the build's stdout and stderr write concurrently
	written int64
	dropped int64
	tail    command.Buffer
	closed  bool
}

func newCappedOutput(w io.Writer, max int64) *cappedOutput {
	return &cappedOutput{w: w, max: max, tail: command.Buffer{Max: outputTail}}
}

func (c *cappedOutput) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(p)
	if room := c.max - c.written; room > 0 {
		k := min(int64(len(p)), room)
		_, _ = c.w.Write(p[:k]) // a gone stream reader must not fail the build
		c.written += k
		p = p[k:]
	}
	if len(p) > 0 {
		c.dropped += int64(len(p))
		_, _ = c.tail.Write(p)
	}
	return n, nil
}

// Close writes what was dropped: a note and the last outputTail bytes.
func (c *cappedOutput) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dropped == 0 || c.closed {
		return nil
	}
	c.closed = true
	tail := c.tail.Bytes()
	_, err := fmt.Fprintf(c.w, "\n[cutover: build output above %d bytes: %d bytes dropped, the last %d follow]\n%s",
		c.max, c.dropped-int64(len(tail)), len(tail), tail)
	return err
}
