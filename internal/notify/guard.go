package notify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// ErrForbiddenAddress is the error of a URL that resolves to an address
// notifications may not reach (loopback, link-local, private, unspecified,
// multicast) on a server that does not allow private receivers.
var ErrForbiddenAddress = errors.New("address not allowed for notifications")

// Guard keeps notifications from reaching the server's own network (SSRF):
// a subscription URL is checked when it is created, and again when each
// delivery dials, after DNS resolution and on every redirect, so a name
// that changes its answer (DNS rebinding) or a redirect gains nothing.
type Guard struct {
	// AllowPrivate lets notifications reach any address (the server's
	// --allow-private-notify; tests with receivers on 127.0.0.1).
	AllowPrivate bool
	// Resolver resolves host names; nil is net.DefaultResolver.
	Resolver *net.Resolver
	// blocked replaces Blocked in tests.
	blocked func(netip.Addr) bool
}

// Blocked reports whether ip is an address notifications may not reach
// when private receivers are not allowed.
func Blocked(ip netip.Addr) bool {
	ip = ip.Unmap()
	return !ip.IsValid() || ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsPrivate() || ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast()
}

// CheckURL refuses a URL that is not http(s) or whose host resolves to a
// blocked address.
func (g Guard) CheckURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("url %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("url %q: scheme %q; want http or https", raw, u.Scheme)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("url %q: no host", raw)
	}
	if u.User != nil {
		return fmt.Errorf("url %q: credentials in the URL are not accepted", raw)
	}
	if g.AllowPrivate {
		return nil
	}
	return g.checkHost(ctx, u.Hostname())
}

func (g Guard) checkHost(ctx context.Context, host string) error {
	if ip, err := netip.ParseAddr(host); err == nil {
		return g.checkIP(host, ip)
	}
	r := g.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	ips, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", host, err)
	}
	for _, ip := range ips {
		if err := g.checkIP(host, ip); err != nil {
			return err
		}
	}
	return nil
}

func (g Guard) checkIP(host string, ip netip.Addr) error {
	blocked := g.blocked
	if blocked == nil {
		blocked = Blocked
	}
	if blocked(ip) {
		return fmt.Errorf("%s resolves to %s: %w (loopback, link-local, private, unspecified and multicast addresses are refused unless the server runs with --allow-private-notify)", host, ip.Unmap(), ErrForbiddenAddress)
	}
	return nil
}

// Client is an HTTP client whose every connection, redirects included, is
// checked at dial time against the address actually dialled.
func (g Guard) Client(timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: timeout, Resolver: g.Resolver}
	if !g.AllowPrivate {
		d.Control = func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			ip, err := netip.ParseAddr(host)
			if err != nil {
				return fmt.Errorf("dial %s: %w", address, err)
			}
			return g.checkIP(host, ip)
		}
	}
	tr := &http.Transport{
		DialContext:           d.DialContext,
		Proxy:                 nil, // a proxy would dial for us, unchecked
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       time.Minute,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return fmt.Errorf("stopped after %d redirects", maxRedirects)
			}
			return g.CheckURL(req.Context(), req.URL.String())
		},
	}
}
