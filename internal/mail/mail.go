// Package mail sends the service's e-mail: over SMTP in production, or into the log and the
// mail_log table when no SMTP server is configured (development, tests).
package mail

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/mail"
	"net/smtp"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Message is one plain-text e-mail.
type Message struct {
	To      string
	Subject string
	Body    string
}

// Sender delivers messages.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// TLS modes of an SMTP connection.
const (
	TLSNone     = "none"     // plain text: only for a relay on localhost
	TLSStartTLS = "starttls" // upgrade after connecting (port 587)
	TLSImplicit = "tls"      // TLS from the first byte (port 465)
)

// SMTP sends through an SMTP server.
type SMTP struct {
	Host     string
	Port     int
	TLS      string
	Username string
	Password string
	From     string
	// TLSConfig is the base TLS configuration (tests set RootCAs); nil means system defaults.
	TLSConfig *tls.Config
}

// Send delivers m, honouring ctx's deadline for the whole exchange.
func (s SMTP) Send(ctx context.Context, m Message) error {
	from, err := mail.ParseAddress(s.From)
	if err != nil {
		return fmt.Errorf("mail from-address %q: %w", s.From, err)
	}
	to, err := mail.ParseAddress(m.To)
	if err != nil {
		return fmt.Errorf("recipient %q: %w", m.To, err)
	}
	addr := net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
	tlsConfig := &tls.Config{ServerName: s.Host, MinVersion: tls.VersionTLS12}
	if s.TLSConfig != nil {
		tlsConfig = s.TLSConfig.Clone()
		tlsConfig.ServerName = s.Host
	}

	dialer := &net.Dialer{Timeout: 10 * time.Second}
	var conn net.Conn
	if s.TLS == TLSImplicit {
		conn, err = (&tls.Dialer{NetDialer: dialer, Config: tlsConfig}).DialContext(ctx, "tcp", addr)
	} else {
		conn, err = dialer.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return fmt.Errorf("connecting to SMTP server %s: %w", addr, err)
	}
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	c, err := smtp.NewClient(conn, s.Host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("SMTP greeting from %s: %w", addr, err)
	}
	defer c.Close()
	if s.TLS == TLSStartTLS {
		if err := c.StartTLS(tlsConfig); err != nil {
			return fmt.Errorf("SMTP STARTTLS: %w", err)
		}
	}
	if s.Username != "" {
		// PlainAuth refuses to send credentials over an unencrypted link to a remote host.
		if err := c.Auth(smtp.PlainAuth("", s.Username, s.Password, s.Host)); err != nil {
			return fmt.Errorf("SMTP authentication: %w", err)
		}
	}
	if err := c.Mail(from.Address); err != nil {
		return fmt.Errorf("SMTP MAIL FROM: %w", err)
	}
	if err := c.Rcpt(to.Address); err != nil {
		return fmt.Errorf("SMTP RCPT TO: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("SMTP DATA: %w", err)
	}
	if _, err := w.Write(compose(from, to, m, time.Now())); err != nil {
		return fmt.Errorf("SMTP DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("SMTP DATA: %w", err)
	}
	return c.Quit()
}

// compose builds the RFC 5322 message with CRLF line endings.
func compose(from, to *mail.Address, m Message, now time.Time) []byte {
	var b bytes.Buffer
	header := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	header("From", from.String())
	header("To", to.String())
	header("Subject", mime.QEncoding.Encode("utf-8", stripNewlines(m.Subject)))
	header("Date", now.Format(time.RFC1123Z))
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "8bit")
	b.WriteString("\r\n")
	body := strings.ReplaceAll(strings.ReplaceAll(m.Body, "\r\n", "\n"), "\n", "\r\n")
	b.WriteString(body)
	if !strings.HasSuffix(body, "\r\n") {
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// stripNewlines prevents header injection through a subject.
func stripNewlines(s string) string {
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}

// MailLog is what Log needs to keep a message.
type MailLog interface {
	LogMail(ctx context.Context, recipient, subject, body string) error
}

// Log keeps messages in the mail_log table and writes a line to the log. The table keeps no
// working link: the token of every link is redacted (anyone who can read the table could
// otherwise take over the account). The whole body, links included, is logged only when
// LogBodies is set, in development, so a developer without SMTP can follow an invite.
type Log struct {
	Store     MailLog
	Logger    *slog.Logger
	LogBodies bool
}

// Send records m.
func (l Log) Send(ctx context.Context, m Message) error {
	if _, err := mail.ParseAddress(m.To); err != nil {
		return fmt.Errorf("recipient %q: %w", m.To, err)
	}
	attrs := []any{"to", m.To, "subject", m.Subject}
	if l.LogBodies {
		attrs = append(attrs, "body", m.Body)
	}
	l.Logger.InfoContext(ctx, "mail not sent (no SMTP server configured); kept in mail_log", attrs...)
	if l.Store == nil {
		return errors.New("no mail_log store")
	}
	return l.Store.LogMail(ctx, m.To, m.Subject, RedactLinks(m.Body))
}

// A link is a URL in a message; its secrets are the long tokens in its path or query.
var (
	link       = regexp.MustCompile(`https?://\S+`)
	linkSecret = regexp.MustCompile(`[A-Za-z0-9_-]{20,}`)
)

// RedactLinks replaces the tokens of the links in body, so the text can be kept or shown.
func RedactLinks(body string) string {
	return link.ReplaceAllStringFunc(body, func(u string) string {
		scheme, rest, _ := strings.Cut(u, "://")
		host, path, ok := strings.Cut(rest, "/")
		if !ok {
			return u
		}
		return scheme + "://" + host + "/" + linkSecret.ReplaceAllString(path, "[redacted]")
	})
}
