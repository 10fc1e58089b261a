// Package notifytest runs a real SMTP relay on loopback for tests of email
// notifications: emersion/go-smtp with STARTTLS (a throwaway certificate),
// AUTH PLAIN with one account, and a recorder of the mail it accepted.
package notifytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// The relay's one account.
const (
	User     = "cutover"
	Password = "hunter2"
)

// Relay is an SMTP server on 127.0.0.1 that records accepted mail.
type Relay struct {
	Addr string
	// ClientTLS trusts the relay's certificate (for notify.SMTP.TLS).
	ClientTLS *tls.Config
	mu        sync.Mutex
	fail      int
	rcpts     int
	mails     []Mail
	arrived   chan struct{}
}

// Mail is one accepted message and how it came.
type Mail struct {
	From string
	To   []string
	Data []byte
	User string // who authenticated
	TLS  bool   // whether the session was under STARTTLS
}

type session struct {
	r    *Relay
	c    *smtp.Conn
	user string
	m    Mail
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != User || pass != Password {
			return errors.New("bad credentials")
		}
		s.user = user
		return nil
	}), nil
}
func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.user == "" {
		return smtp.ErrAuthRequired
	}
	s.m = Mail{From: from, User: s.user}
	_, s.m.TLS = s.c.TLSConnectionState()
	return nil
}
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	s.r.rcpts++
	if s.r.rcpts <= s.r.fail {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	}
	s.m.To = append(s.m.To, to)
	return nil
}
func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.m.Data = b
	s.r.mu.Lock()
	s.r.mails = append(s.r.mails, s.m)
	s.r.mu.Unlock()
	select {
	case s.r.arrived <- struct{}{}:
	default:
	}
	return nil
}
func (s *session) Reset()        { s.m = Mail{} }
func (s *session) Logout() error { return nil }

// Options shape a relay.
type Options struct {
	// FailRcpt answers 451 to the first FailRcpt RCPT commands.
	FailRcpt int
	// NoTLS leaves STARTTLS out (a plain-text relay).
	NoTLS bool
}

// Start runs a relay until the test ends.
func Start(t testing.TB, o Options) *Relay {
	t.Helper()
	r := &Relay{fail: o.FailRcpt, arrived: make(chan struct{}, 1)}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { return &session{r: r, c: c}, nil }))
	srv.Domain = "relay.test"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.AllowInsecureAuth = o.NoTLS
	logs := &testLogger{t: t}
	srv.ErrorLog = logs
	if !o.NoTLS {
		cert, client, err := selfSigned()
		if err != nil {
			t.Fatal(err)
		}
		srv.TLSConfig, r.ClientTLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, client
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.Addr = l.Addr().String()
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { logs.stop(); _ = srv.Close() })
	return r
}

// Accepted returns the mail accepted so far.
func (r *Relay) Accepted() []Mail {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Mail(nil), r.mails...)
}

// Wait waits until at least n mails were accepted or 10s passed.
func (r *Relay) Wait(t testing.TB, n int) []Mail {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		if m := r.Accepted(); len(m) >= n {
			return m
		}
		select {
		case <-r.arrived:
		case <-deadline.C:
			t.Fatalf("the relay accepted %d mails, want %d", len(r.Accepted()), n)
		}
	}
}

func selfSigned() (tls.Certificate, *tls.Config, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "relay.test"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		&tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}, nil
}

// testLogger sends the relay's own errors to the test log until the test
// ends (a late log would panic).
type testLogger struct {
	mu      sync.Mutex
	t       testing.TB
	stopped bool
}

func (l *testLogger) stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
}

func (l *testLogger) Printf(format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stopped {
		l.t.Logf("smtp relay: "+format, v...)
	}
}

func (l *testLogger) Println(v ...any) { l.Printf("%s", fmt.Sprintln(v...)) }
