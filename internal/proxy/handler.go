package proxy

import (
	"bufio"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

const canaryCookie = "cutover_canary"

// bufPool holds copy buffers for request and response bodies.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// ServeHTTP is the data plane: route, pick a set and a target, forward.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	svc := p.table.Load().match(r.Host, r.URL.Path)
	if svc == nil {
		page(w, http.StatusNotFound, "No service is routed for this host.")
		return
	}
	// A pause replaced by another pause releases its waiters: look again.
	for ps := svc.paused.Load(); ps != nil; ps = svc.paused.Load() {
		if !p.waitPause(w, r, ps) {
			return
		}
	}
	set := svc.pickSet(w, r)
	if set == nil {
		page(w, http.StatusServiceUnavailable, "The service has no targets.")
		return
	}
	defer set.release()
	if r.ContentLength > p.cfg.MaxBodyBytes {
		page(w, http.StatusRequestEntityTooLarge, "The request body is too large.")
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(w, r.Body, p.cfg.MaxBodyBytes)
	}
	t := set.next()
	var status int
	if isUpgrade(r.Header) {
		status = p.serveUpgrade(w, r, set, t)
	} else {
		status = p.forward(w, r, t)
	}
	d := time.Since(start)
	set.stats.observe(status, d)
	t.stats.observe(status, d)
	t.passive(status)
}

// pickSet chooses the canary or the active set and marks the request in
// flight on it. A set switched out between the load and the mark is not
// used: the request goes wholly to the new set.
func (s *service) pickSet(w http.ResponseWriter, r *http.Request) *targetSet {
	for {
		set := s.active.Load()
		if pct := s.canaryPercent.Load(); pct > 0 {
			if c := s.canary.Load(); c != nil && s.toCanary(w, r, pct) {
				set = c
			}
		}
		if set == nil {
			return nil
		}
		set.acquire()
		if !set.draining.Load() {
			return set
		}
		set.release()
		if s.active.Load() == set {
			return nil // the service was removed while this request was routed to it
		}
	}
}

func (s *service) toCanary(w http.ResponseWriter, r *http.Request, pct int32) bool {
	if s.canarySticky.Load() {
		if c, err := r.Cookie(canaryCookie); err == nil {
			return c.Value == "1"
		}
		in := rand.N(int32(100)) < pct
		v := "0"
		if in {
			v = "1"
		}
		http.SetCookie(w, &http.Cookie{Name: canaryCookie, Value: v, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
		return in
	}
	return int32(s.pick.Add(1)%100) < pct
}

// waitPause answers or holds a request for a paused service; it returns
// true when the request may proceed.
func (p *Proxy) waitPause(w http.ResponseWriter, r *http.Request, ps *pauseState) bool {
	if ps.mode == PauseMaintenance {
		msg := ps.message
		if msg == "" {
			msg = "The service is down for maintenance. Please try again shortly."
		}
		w.Header().Set("Retry-After", "30")
		page(w, http.StatusServiceUnavailable, msg)
		return false
	}
	ps.queued.Add(1)
	defer ps.queued.Add(-1)
	t := time.NewTimer(ps.timeout)
	defer t.Stop()
	select {
	case <-ps.resumed:
		return true
	case <-t.C:
		w.Header().Set("Retry-After", "5")
		page(w, http.StatusServiceUnavailable, "The service is paused; the request waited too long.")
	case <-r.Context().Done():
	}
	return false
}

// passive ejects a target after consecutive connection errors or 5xx.
func (t *target) passive(status int) {
	if status >= 500 {
		if t.passiveFails.Add(1) >= DefaultPassiveFailures {
			t.ejectedUntil.Store(time.Now().Add(DefaultEjectFor).UnixNano())
			t.passiveFails.Store(0)
		}
		return
	}
	if t.passiveFails.Load() != 0 {
		t.passiveFails.Store(0)
	}
}

// statusClientGone is recorded when the client went away mid-request; it is
// not counted as a server error.
const statusClientGone = 499

// forward sends r to t over a pooled HTTP/1.1 connection and copies the
// response back, streaming it. It returns the status recorded for metrics.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, t *target) int {
	retryable := r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0
	for attempt := 0; ; attempt++ {
		c, reused, err := t.getConn(r.Context(), p.cfg.DialTimeout, p.cfg.IdleConnTimeout)
		if err != nil {
			if r.Context().Err() != nil {
				return statusClientGone
			}
			t.stats.connErrors.Add(1)
			t.set.stats.connErrors.Add(1)
			p.log.Debug("dial upstream", "target", t.addr, "err", err)
			page(w, http.StatusBadGateway, "The service could not be reached.")
			return http.StatusBadGateway
		}
		// Upstream I/O stops when the client goes away: the connection is
		// closed under any blocked read or write and never pooled again.
		c.watch(r.Context())
		resp, err := p.roundTrip(c, r)
		if err != nil {
			c.unwatch()
			t.dropConn(c)
			if reused && retryable && attempt == 0 && r.Context().Err() == nil {
				continue // a pooled connection the upstream had closed: retry once on a fresh one
			}
			if r.Context().Err() != nil {
				return statusClientGone
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				page(w, http.StatusGatewayTimeout, "The service took too long to answer.")
				return http.StatusGatewayTimeout
			}
			t.stats.connErrors.Add(1)
			t.set.stats.connErrors.Add(1)
			p.log.Debug("upstream round trip", "target", t.addr, "err", err)
			page(w, http.StatusBadGateway, "The service closed the connection.")
			return http.StatusBadGateway
		}
		return p.copyResponse(w, r, c, resp)
	}
}

// roundTrip writes the request on c and reads the response head.
func (p *Proxy) roundTrip(c *upConn, r *http.Request) (*http.Response, error) {
	bw := c.bw
	writeRequestHead(bw, r)
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		if err := writeBody(bw, r); err != nil {
			return nil, err
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(p.cfg.ResponseHeaderTimeout))
	resp, err := http.ReadResponse(c.br, r)
	if err != nil {
		return nil, err
	}
	for resp.StatusCode == http.StatusContinue || resp.StatusCode == http.StatusProcessing || resp.StatusCode == http.StatusEarlyHints {
		resp.Body.Close()
		if resp, err = http.ReadResponse(c.br, r); err != nil {
			return nil, err
		}
	}
	_ = c.SetReadDeadline(time.Time{})
	return resp, nil
}

func writeBody(bw *bufio.Writer, r *http.Request) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	if r.ContentLength > 0 {
		if _, err := io.CopyBuffer(bw, io.LimitReader(r.Body, r.ContentLength), *bp); err != nil {
			return err
		}
		return bw.Flush()
	}
	cw := newChunkedWriter(bw)
	if _, err := io.CopyBuffer(cw, r.Body, *bp); err != nil {
		return err
	}
	// The last chunk, then the trailers the client sent (net/http fills
	// r.Trailer once the body is read to its end).
	bw.WriteString("0\r\n")
	for k, vv := range r.Trailer {
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	if _, err := bw.WriteString("\r\n"); err != nil {
		return err
	}
	return bw.Flush()
}

// chunkedWriter frames writes as HTTP/1.1 chunks.
type chunkedWriter struct{ bw *bufio.Writer }

func newChunkedWriter(bw *bufio.Writer) *chunkedWriter { return &chunkedWriter{bw} }

func (c *chunkedWriter) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	var hdr [20]byte
	h := strconv.AppendInt(hdr[:0], int64(len(b)), 16)
	h = append(h, '\r', '\n')
	if _, err := c.bw.Write(h); err != nil {
		return 0, err
	}
	if _, err := c.bw.Write(b); err != nil {
		return 0, err
	}
	if _, err := c.bw.WriteString("\r\n"); err != nil {
		return 0, err
	}
	return len(b), c.bw.Flush()
}

// writeRequestHead writes the request line and headers: hop-by-hop headers
// removed, X-Forwarded-* and X-Request-ID added, the body framed by
// Content-Length or chunked encoding.
func writeRequestHead(bw *bufio.Writer, r *http.Request) {
	uri := r.RequestURI
	if uri == "" || r.ProtoMajor == 2 {
		uri = r.URL.RequestURI()
	}
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	bw.WriteString(uri)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(r.Host)
	bw.WriteString("\r\n")
	upgrade := isUpgrade(r.Header)
	conn := r.Header["Connection"]
	var xff string
	hasID := false
	for k, vv := range r.Header {
		switch k {
		case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
			"Te", "Trailer", "Transfer-Encoding", "Expect", "Content-Length", "Host", "X-Forwarded-Proto", "X-Forwarded-Host":
			continue
		case "Upgrade":
			if !upgrade {
				continue
			}
			for _, v := range vv {
				bw.WriteString("Upgrade: ")
				bw.WriteString(v)
				bw.WriteString("\r\n")
			}
			continue
		case "X-Forwarded-For":
			xff = strings.Join(vv, ", ")
			continue
		case "X-Request-Id":
			hasID = true
		}
		if len(conn) > 0 && listedIn(conn, k) {
			continue
		}
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		bw.WriteString("X-Forwarded-For: ")
		if xff != "" {
			bw.WriteString(xff)
			bw.WriteString(", ")
		}
		bw.WriteString(ip)
		bw.WriteString("\r\n")
	}
	if r.TLS != nil {
		bw.WriteString("X-Forwarded-Proto: https\r\n")
	} else {
		bw.WriteString("X-Forwarded-Proto: http\r\n")
	}
	bw.WriteString("X-Forwarded-Host: ")
	bw.WriteString(r.Host)
	bw.WriteString("\r\n")
	if !hasID {
		var b [16]byte
		id := strconv.AppendUint(b[:0], rand.Uint64(), 16)
		bw.WriteString("X-Request-Id: ")
		bw.Write(id)
		bw.WriteString("\r\n")
	}
	switch {
	case upgrade:
		bw.WriteString("Connection: Upgrade\r\n")
	case r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0:
	case r.ContentLength > 0:
		bw.WriteString("Content-Length: ")
		var b [20]byte
		bw.Write(strconv.AppendInt(b[:0], r.ContentLength, 10))
		bw.WriteString("\r\n")
	default:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
		if len(r.Trailer) > 0 {
			bw.WriteString("Trailer: ")
			first := true
			for k := range r.Trailer {
				if !first {
					bw.WriteString(", ")
				}
				first = false
				bw.WriteString(k)
			}
			bw.WriteString("\r\n")
		}
	}
	bw.WriteString("\r\n")
}

// listedIn reports whether header name k is named in a Connection header.
func listedIn(conn []string, k string) bool {
	for _, v := range conn {
		for _, f := range strings.Split(v, ",") {
			if textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(f)) == k {
				return true
			}
		}
	}
	return false
}

func isUpgrade(h http.Header) bool {
	return h.Get("Upgrade") != "" && headerHasToken(h["Connection"], "upgrade")
}

func headerHasToken(vv []string, token string) bool {
	for _, v := range vv {
		for _, f := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), token) {
				return true
			}
		}
	}
	return false
}

func isHopHeader(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// copyResponse streams resp to w and returns c to the pool when the body
// was read to its end on a keep-alive connection.
func (p *Proxy) copyResponse(w http.ResponseWriter, r *http.Request, c *upConn, resp *http.Response) int {
	h := w.Header()
	conn := resp.Header["Connection"]
	for k, vv := range resp.Header {
		if isHopHeader(k) || (len(conn) > 0 && listedIn(conn, k)) {
			continue
		}
		h[k] = vv
	}
	// Trailer is hop-by-hop as a header, but the trailers it announces are
	// end to end: announce them again so the server sends them after the body.
	var announced []string
	if len(resp.Trailer) > 0 {
		announced = make([]string, 0, len(resp.Trailer))
		for k := range resp.Trailer {
			announced = append(announced, k)
		}
		h["Trailer"] = []string{strings.Join(announced, ", ")}
	}
	w.WriteHeader(resp.StatusCode)
	stream := resp.ContentLength < 0 || strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
	bp := bufPool.Get().(*[]byte)
	buf := *bp
	var fl http.Flusher
	if stream {
		fl, _ = w.(http.Flusher)
	}
	var werr, rerr error
	for {
		var n int
		n, rerr = resp.Body.Read(buf)
		if n > 0 {
			if _, werr = w.Write(buf[:n]); werr != nil {
				break
			}
			if fl != nil {
				fl.Flush()
			}
		}
		if rerr != nil {
			break
		}
	}
	bufPool.Put(bp)
	if werr == nil && errors.Is(rerr, io.EOF) && len(resp.Trailer) > 0 {
		// ReadResponse filled resp.Trailer at the end of the chunked body;
		// trailers the upstream did not announce go out with TrailerPrefix.
		if fl == nil {
			// Force chunking, so a short body does not get a Content-Length
			// (which would leave no place for the trailers).
			_ = http.NewResponseController(w).Flush()
		}
		for k, vv := range resp.Trailer {
			if slices.Contains(announced, k) {
				h[k] = vv
			} else {
				h[http.TrailerPrefix+k] = vv
			}
		}
	}
	open := c.unwatch()
	if werr == nil && errors.Is(rerr, io.EOF) && !resp.Close && open {
		resp.Body.Close()
		c.t.putConn(c, p.cfg.MaxIdlePerTarget)
	} else {
		c.t.dropConn(c)
		if !open || r.Context().Err() != nil {
			return statusClientGone
		}
		if werr == nil && rerr != nil && !errors.Is(rerr, io.EOF) && !c.t.set.draining.Load() {
			// The upstream broke off mid-body: abort the client response so
			// it is not mistaken for a complete one. A stream cut by the
			// drain timeout ends cleanly instead (documented behaviour).
			panic(http.ErrAbortHandler)
		}
	}
	if werr != nil {
		return statusClientGone
	}
	return resp.StatusCode
}
