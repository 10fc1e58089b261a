package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// tunnel is an upgraded connection (WebSocket) spliced between a client and
// a target. It keeps running on its set after a switch, until the set's
// drain timeout, when it is closed with WebSocket close code 1001.
type tunnel struct {
	client   net.Conn
	upstream net.Conn
	wmu      sync.Mutex // serialises writes to the client
	once     sync.Once
}

// wsGoingAway is an unmasked server close frame with status 1001.
var wsGoingAway = []byte{0x88, 0x02, 0x03, 0xE9}

func (t *tunnel) closeGoingAway() {
	t.once.Do(func() {
		t.wmu.Lock()
		_ = t.client.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = t.client.Write(wsGoingAway)
		t.wmu.Unlock()
		t.client.Close()
		t.upstream.Close()
	})
}

func (t *tunnel) close() {
	t.once.Do(func() {
		t.client.Close()
		t.upstream.Close()
	})
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// serveUpgrade forwards an Upgrade request on a dedicated connection and,
// on 101 Switching Protocols, splices the two connections.
func (p *Proxy) serveUpgrade(w http.ResponseWriter, r *http.Request, set *targetSet, t *target) int {
	hj, ok := w.(http.Hijacker)
	if !ok {
		page(w, http.StatusHTTPVersionNotSupported, "Protocol upgrades need HTTP/1.1.")
		return http.StatusHTTPVersionNotSupported
	}
	d := net.Dialer{Timeout: p.cfg.DialTimeout}
	nc, err := d.DialContext(r.Context(), "tcp", t.addr)
	if err != nil {
		if r.Context().Err() != nil {
			return statusClientGone
		}
		t.stats.connErrors.Add(1)
		set.stats.connErrors.Add(1)
		page(w, http.StatusBadGateway, "The service could not be reached.")
		return http.StatusBadGateway
	}
	up := &upConn{Conn: nc, br: bufio.NewReader(nc), bw: bufio.NewWriter(nc), t: t, unpooled: true}
	// Until the tunnel is spliced, a client that goes away closes the
	// upstream connection; after it, each side's close ends the other.
	up.watch(r.Context())
	resp, err := p.roundTrip(up, r)
	if err != nil {
		up.unwatch()
		nc.Close()
		if r.Context().Err() != nil {
			return statusClientGone
		}
		t.stats.connErrors.Add(1)
		set.stats.connErrors.Add(1)
		page(w, http.StatusBadGateway, "The service closed the connection.")
		return http.StatusBadGateway
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		// Refused: relay the answer like any response, then close.
		status := p.copyResponse(w, r, up, resp)
		nc.Close()
		return status
	}
	if !up.unwatch() {
		return statusClientGone // the client went away; nc is closed
	}
	cc, brw, err := hj.Hijack()
	if err != nil {
		nc.Close()
		return http.StatusInternalServerError
	}
	tn := &tunnel{client: cc, upstream: nc}
	set.addTunnel(tn)
	defer set.removeTunnel(tn)
	// Relay the 101 head.
	fmt.Fprintf(brw, "HTTP/1.1 101 %s\r\n", http.StatusText(http.StatusSwitchingProtocols))
	_ = resp.Header.Write(brw)
	brw.WriteString("\r\n")
	if err := brw.Flush(); err != nil {
		tn.close()
		return http.StatusSwitchingProtocols
	}
	done := make(chan struct{}, 2)
	go func() {
		// client -> upstream, starting with what the server already buffered
		_, _ = io.Copy(nc, brw.Reader)
		if c, ok := nc.(*net.TCPConn); ok {
			_ = c.CloseWrite()
		}
		done <- struct{}{}
	}()
	go func() {
		// upstream -> client
		_, _ = io.Copy(lockedWriter{cc, &tn.wmu}, up.br)
		done <- struct{}{}
	}()
	<-done
	tn.close()
	<-done
	return http.StatusSwitchingProtocols
}
