package notify

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/notify/notifytest"
)

func relaySMTP(r *notifytest.Relay) *SMTP {
	return &SMTP{Addr: r.Addr, From: "Cutover <cutover@example.com>", Username: notifytest.User, Password: notifytest.Password, RequireTLS: true, TLS: r.ClientTLS}
}

// parseMail reads the message's headers and its plain-text and HTML parts,
// decoded.
func parseMail(t *testing.T, data []byte) (msg *mail.Message, text, page string) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("message does not parse: %v\n%s", err, data)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type %q: %v", msg.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart() // decodes quoted-printable
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		switch ct := p.Header.Get("Content-Type"); {
		case strings.HasPrefix(ct, "text/plain"):
			text = string(b)
		case strings.HasPrefix(ct, "text/html"):
			page = string(b)
		}
	}
	if text == "" || page == "" {
		t.Fatalf("want a text and an HTML part:\n%s", data)
	}
	return msg, text, page
}

func TestNotifier_Email_RollbackReachesRecipientsOverTLS(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	r := notifytest.Start(t, notifytest.Options{})
	cfg := fastConfig(s)
	cfg.SMTP = relaySMTP(r)
	n := New(cfg)
	sub, err := n.Add(bg, core.Subscription{App: "hello", Events: []string{KindRollback}, Channel: core.ChannelEmail, URL: "ops@example.com, Ann <ann@example.com>"})
	if err != nil {
		t.Fatal(err)
	}
	if sub.URL != "mailto:ops@example.com,ann@example.com" || sub.Secret != "" {
		t.Errorf("subscription = %+v, want a canonical mailto URL and no secret", sub)
	}
	e := rollbackEvent(t, s)
	stop := n.Start()
	defer stop()
	waitFor(t, "the cursor to pass the rollback", func() bool { return cursor(t, s) >= e.ID })
	stop()

	got := r.Accepted()
	if len(got) != 1 {
		t.Fatalf("relay accepted %d mails, want 1", len(got))
	}
	m := got[0]
	if !m.TLS || m.User != "cutover" || m.From != "cutover@example.com" || strings.Join(m.To, ",") != "ops@example.com,ann@example.com" {
		t.Errorf("envelope = tls %v user %q from %q to %v", m.TLS, m.User, m.From, m.To)
	}
	msg, body, page := parseMail(t, m.Data)
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if want := "hello: production rolled back to #5 (error rate 12%)"; err != nil || subject != want {
		t.Errorf("subject = %q, %v; want %q", subject, err, want)
	}
	if to := msg.Header.Get("To"); !strings.Contains(to, "ops@example.com") || !strings.Contains(to, "<ann@example.com>") {
		t.Errorf("To = %q", to)
	}
	for _, want := range []string{"Environment: production", "Release:     #5", "By:          ann", "Reason:      error rate 12%"} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
	if !strings.Contains(page, "<th align=\"left\">Reason</th><td>error rate 12%</td>") {
		t.Errorf("HTML part lacks the reason:\n%s", page)
	}
	if strings.Contains(string(m.Data), notifytest.Password) {
		t.Error("the relay password is in the mail")
	}
	log, err := s.ListDeliveries(bg, "hello", 10)
	if err != nil || len(log) != 1 || log[0].Status != core.DeliveryOK || log[0].Subscription != sub.ID {
		t.Errorf("delivery log = %+v, %v", log, err)
	}
}

func TestNotifier_Email_RetriesTemporaryRefusal(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	r := notifytest.Start(t, notifytest.Options{FailRcpt: 2})
	cfg := fastConfig(s)
	cfg.SMTP = relaySMTP(r)
	esub := subscribe(t, s, core.ChannelEmail, "mailto:ops@example.com", KindRollback)
	e := rollbackEvent(t, s)
	stop := New(cfg).Start()
	defer stop()
	waitFor(t, "the delivery to settle", func() bool { return settled(t, s, esub.ID, e.ID) })
	stop()
	if n := len(r.Accepted()); n != 1 {
		t.Fatalf("relay accepted %d mails, want 1 after two refusals", n)
	}
	log, _ := s.ListDeliveries(bg, "hello", 10)
	if len(log) != 3 || log[0].Status != core.DeliveryOK || log[1].Status != core.DeliveryFailed || !strings.Contains(log[1].Error, "451") {
		t.Errorf("delivery log = %+v, want two 451 failures then ok", log)
	}
}

func TestNotifier_Email_WrongPasswordIsRecorded(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	r := notifytest.Start(t, notifytest.Options{})
	cfg := fastConfig(s)
	cfg.Attempts = 2
	cfg.SMTP = relaySMTP(r)
	cfg.SMTP.Password = "wrong-password-xyz"
	esub := subscribe(t, s, core.ChannelEmail, "mailto:ops@example.com", KindRollback)
	e := rollbackEvent(t, s)
	stop := New(cfg).Start()
	defer stop()
	waitFor(t, "the delivery to settle", func() bool { return settled(t, s, esub.ID, e.ID) })
	stop()
	if n := len(r.Accepted()); n != 0 {
		t.Fatalf("relay accepted %d mails with a wrong password", n)
	}
	log, _ := s.ListDeliveries(bg, "hello", 10)
	if len(log) != 2 || log[0].Status != core.DeliveryGaveUp || !strings.Contains(log[0].Error, "AUTH") || strings.Contains(log[0].Error, "wrong-password-xyz") {
		t.Errorf("delivery log = %+v, want two AUTH failures without the password", log)
	}
}

func TestNotifier_Email_RefusesPlainRelayWhenTLSRequired(t *testing.T) {
	t.Parallel()
	r := notifytest.Start(t, notifytest.Options{NoTLS: true})
	to := []*mail.Address{{Address: "ops@example.com"}}
	msg := []byte("Subject: x\r\n\r\nx\r\n")
	err := sendMail(bg, SMTP{Addr: r.Addr, From: "c@example.com", Username: notifytest.User, Password: notifytest.Password, RequireTLS: true}, 5*time.Second, to, msg)
	if err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("sendMail to a relay without STARTTLS = %v, want a refusal naming STARTTLS", err)
	}
	if n := len(r.Accepted()); n != 0 {
		t.Errorf("the plain relay accepted %d mails", n)
	}
}

func TestNotifier_Add_Email(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	with := New(Config{Store: s, SMTP: &SMTP{Addr: "127.0.0.1:25", From: "c@example.com"}})
	without := New(Config{Store: s})
	for _, tc := range []struct {
		name string
		n    *Notifier
		url  string
		want string // "" = accepted
	}{
		{"one address", with, "ops@example.com", ""},
		{"mailto list", with, "mailto:a@example.com,b@example.com", ""},
		{"no relay", without, "ops@example.com", "--smtp-addr"},
		{"empty", with, "mailto:", "no recipient"},
		{"not an address", with, "ops at example", "want ADDR"},
		{"header injection", with, "ops@example.com\r\nBcc: x@evil.example", "want ADDR"},
		{"too many", with, strings.Repeat("a@example.com,", MaxRecipients) + "a@example.com", "at most"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.n.Add(bg, core.Subscription{App: "hello", Events: []string{"all"}, Channel: core.ChannelEmail, URL: tc.url})
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Add(%q) = %v, want accepted", tc.url, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, core.ErrInvalid)):
				t.Errorf("Add(%q) = %v, want an invalid-input error naming %q", tc.url, err, tc.want)
			}
		})
	}
}

func TestMessage_NoHeaderInjection(t *testing.T) {
	t.Parallel()
	e := core.Event{ID: 7, App: "hello", Env: "production", Type: core.EventDeployFailed, Reason: "boom\r\nBcc: x@evil.example\r\n\r\nfake body <script>", Time: time.Now()}
	to := []*mail.Address{{Address: "ops@example.com"}}
	b, err := Message("c@example.com", to, core.Subscription{ID: "ntf_1"}, e, KindDeployFailed, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	msg, body, page := parseMail(t, b)
	if msg.Header.Get("Bcc") != "" {
		t.Errorf("a reason with CRLF added a Bcc header:\n%s", b)
	}
	if !strings.Contains(body, "fake body") {
		t.Errorf("the reason is missing from the body:\n%s", body)
	}
	if strings.Contains(page, "<script>") || !strings.Contains(page, "&lt;script&gt;") {
		t.Errorf("the HTML part does not escape the reason:\n%s", page)
	}
}
