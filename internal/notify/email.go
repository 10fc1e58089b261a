package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"html"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/cutover/cutover/internal/core"
)

// MaxRecipients bounds the addresses of one email subscription.
const MaxRecipients = 20

// SMTP is the relay email subscriptions are sent through. It is the
// operator's (server flags), never a subscriber's: subscriptions only name
// recipients, so they cannot point the server at another host.
type SMTP struct {
	Addr string // HOST:PORT of the relay
	From string // the From address
	// Username and Password authenticate with PLAIN, only over TLS (or to
	// a relay on loopback): net/smtp refuses otherwise.
	Username, Password string
	// RequireTLS refuses a relay that does not offer STARTTLS.
	RequireTLS bool
	// TLS overrides the STARTTLS configuration (tests trust their own CA).
	TLS *tls.Config
}

// Check reports whether the relay configuration is complete and valid.
func (s SMTP) Check() error {
	if _, port, err := net.SplitHostPort(s.Addr); err != nil || port == "" {
		return fmt.Errorf("smtp address %q: %w: want HOST:PORT", s.Addr, core.ErrInvalid)
	}
	if _, err := mail.ParseAddress(s.From); err != nil {
		return fmt.Errorf("smtp from %q: %w: want an email address (%v)", s.From, core.ErrInvalid, err)
	}
	return nil
}

// Recipients parses an email subscription's URL, mailto:ADDR[,ADDR...] (the
// mailto: may be left out), into addresses.
func Recipients(raw string) ([]*mail.Address, error) {
	list := strings.TrimPrefix(strings.TrimSpace(raw), "mailto:")
	if list == "" {
		return nil, fmt.Errorf("email: %w: no recipient; want mailto:ADDR[,ADDR]", core.ErrInvalid)
	}
	addrs, err := mail.ParseAddressList(list)
	if err != nil {
		return nil, fmt.Errorf("email %q: %w: %v; want ADDR[,ADDR]", list, core.ErrInvalid, err)
	}
	if len(addrs) > MaxRecipients {
		return nil, fmt.Errorf("email: %w: %d recipients, at most %d", core.ErrInvalid, len(addrs), MaxRecipients)
	}
	return addrs, nil
}

// mailtoURL is the canonical form of addrs: mailto:a@x,b@y.
func mailtoURL(addrs []*mail.Address) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.Address
	}
	return "mailto:" + strings.Join(s, ",")
}

// Message is the mail sub receives for e as kind: one line of summary as
// the subject ("hello: production rolled back to #5"), and the event's
// fields as plain text and as HTML (multipart/alternative,
// quoted-printable).
func Message(from string, to []*mail.Address, sub core.Subscription, e core.Event, kind string, now time.Time) ([]byte, error) {
	fromAddr, err := mail.ParseAddress(from)
	if err != nil {
		return nil, fmt.Errorf("smtp from %q: %w", from, err)
	}
	rcpt := make([]string, len(to))
	for i, a := range to {
		rcpt[i] = a.String()
	}
	oneLine := strings.NewReplacer("\r", " ", "\n", " ")
	summary := oneLine.Replace(Text(e, kind))
	host := "cutover"
	if i := strings.LastIndexByte(fromAddr.Address, '@'); i >= 0 {
		host = fromAddr.Address[i+1:]
	}
	type field struct{ k, v string }
	var fields []field
	add := func(k, v string) {
		if v != "" {
			fields = append(fields, field{k, v})
		}
	}
	add("App", e.App)
	add("Kind", kind)
	add("Environment", e.Env)
	if e.Release > 0 {
		add("Release", "#"+strconv.Itoa(e.Release))
	}
	add("Commit", e.SHA)
	if e.DeploymentID > 0 {
		add("Deployment", strconv.FormatInt(e.DeploymentID, 10))
	}
	add("State", strings.ReplaceAll(string(e.State), "_", " "))
	add("By", e.Actor)
	add("Reason", e.Reason)
	if !e.Time.IsZero() {
		add("At", e.Time.UTC().Format(time.RFC3339))
	}
	footer := fmt.Sprintf("Subscription %s (event %d).", sub.ID, e.ID)

	var text strings.Builder
	text.WriteString(summary + "\n\n")
	for _, f := range fields {
		fmt.Fprintf(&text, "%-12s %s\n", f.k+":", f.v)
	}
	text.WriteString("\n" + footer + "\n")
	var page strings.Builder
	page.WriteString("<!DOCTYPE html>\n<html><body>\n<p><strong>" + html.EscapeString(summary) + "</strong></p>\n<table>\n")
	for _, f := range fields {
		fmt.Fprintf(&page, "<tr><th align=\"left\">%s</th><td>%s</td></tr>\n", html.EscapeString(f.k), html.EscapeString(f.v))
	}
	page.WriteString("</table>\n<p><small>" + html.EscapeString(footer) + "</small></p>\n</body></html>\n")

	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	fmt.Fprintf(&b, "From: %s\r\n", fromAddr.String())
	fmt.Fprintf(&b, "To: %s\r\n", strings.Join(rcpt, ", "))
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", summary))
	fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s.%d.%d@%s>\r\n", sub.ID, e.ID, now.UnixNano(), host)
	fmt.Fprintf(&b, "%s: %s:%d\r\n", DeliveryHeader, sub.ID, e.ID)
	fmt.Fprintf(&b, "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=%q\r\n\r\n", mw.Boundary())
	for _, part := range []struct{ ctype, body string }{{"text/plain", text.String()}, {"text/html", page.String()}} {
		w, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {part.ctype + "; charset=utf-8"},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err != nil {
			return nil, err
		}
		qp := quotedprintable.NewWriter(w)
		if _, err := qp.Write([]byte(strings.ReplaceAll(part.body, "\n", "\r\n"))); err != nil {
			return nil, err
		}
		if err := qp.Close(); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// sendMail makes one attempt to hand the mail to the relay: dial, EHLO,
// STARTTLS when offered (required with RequireTLS), AUTH when configured,
// MAIL, RCPT per recipient, DATA. ctx and timeout bound the whole
// conversation.
func sendMail(ctx context.Context, cfg SMTP, timeout time.Duration, to []*mail.Address, msg []byte) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return fmt.Errorf("smtp address %q: %w", cfg.Addr, err)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("smtp dial: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		_ = conn.Close()
		return fmt.Errorf("smtp greeting: %w", err)
	}
	defer c.Close()
	if err := c.Hello("localhost"); err != nil {
		return fmt.Errorf("smtp EHLO: %w", err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		tc := cfg.TLS
		if tc == nil {
			tc = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		}
		if err := c.StartTLS(tc); err != nil {
			return fmt.Errorf("smtp STARTTLS: %w", err)
		}
	} else if cfg.RequireTLS {
		return errors.New("smtp: the relay does not offer STARTTLS and TLS is required")
	}
	if cfg.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", cfg.Username, cfg.Password, host)); err != nil {
			return fmt.Errorf("smtp AUTH as %s: %w", cfg.Username, err)
		}
	}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return fmt.Errorf("smtp from %q: %w", cfg.From, err)
	}
	if err := c.Mail(from.Address); err != nil {
		return fmt.Errorf("smtp MAIL FROM: %w", err)
	}
	for _, a := range to {
		if err := c.Rcpt(a.Address); err != nil {
			return fmt.Errorf("smtp RCPT TO %s: %w", a.Address, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	if err := c.Quit(); err != nil {
		return fmt.Errorf("smtp QUIT: %w", err)
	}
	return nil
}

// sendEmail makes one attempt to mail e to sub's recipients.
func (n *Notifier) sendEmail(ctx context.Context, sub core.Subscription, e core.Event, kind string) error {
	if n.cfg.SMTP == nil {
		return errors.New("email: the server has no SMTP relay (--smtp-addr)")
	}
	to, err := Recipients(sub.URL)
	if err != nil {
		return err
	}
	msg, err := Message(n.cfg.SMTP.From, to, sub, e, kind, time.Now())
	if err != nil {
		return err
	}
	return sendMail(ctx, *n.cfg.SMTP, n.cfg.Timeout, to, msg)
}
