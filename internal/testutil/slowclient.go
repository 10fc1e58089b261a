package testutil

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// clientGiveUp bounds how long the slow-client helpers wait for the server
// to act before they report that it did not: longer than any default
// timeout, so a server left on its defaults fails the check.
const clientGiveUp = 30 * time.Second

// SlowHeaders connects to addr and sends a request's headers one byte every
// pace, never finishing them before clientGiveUp. It returns nil when the
// server closes the connection first, or an error saying what the server
// did instead.
func SlowHeaders(t testing.TB, addr string, pace time.Duration) error {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	closed := make(chan error, 1)
	go func() {
		// The server's answer (a 408, or nothing) ends with it closing.
		_ = c.SetReadDeadline(time.Now().Add(clientGiveUp))
		_, err := io.Copy(io.Discard, c)
		closed <- err
	}()
	head := "GET / HTTP/1.1\r\nHost: slow\r\nX-Slow: " + strings.Repeat("x", 1<<16)
	tick := time.NewTicker(pace)
	defer tick.Stop()
	for i := 0; i < len(head); i++ {
		select {
		case err := <-closed:
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return errors.New("server kept the slow connection open")
			}
			return nil
		case <-tick.C:
		}
		if _, err := c.Write([]byte{head[i]}); err != nil {
			return nil // closed by the server
		}
	}
	return errors.New("server read every header byte of a slow client")
}

// IdleClosed makes one keep-alive request for path on addr, then waits for
// the server to close the idle connection. It returns nil when it does
// within clientGiveUp.
func IdleClosed(t testing.TB, addr, path string) error {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: idle\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(clientGiveUp))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.Close {
		return errors.New("server did not keep the connection alive: nothing to test")
	}
	_, err = br.ReadByte()
	switch {
	case errors.Is(err, io.EOF):
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		return errors.New("server kept the idle connection open")
	case err != nil:
		return nil // reset by the server: closed too
	}
	return errors.New("server sent bytes on an idle connection")
}
