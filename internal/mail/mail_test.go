package mail

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// received is what the test SMTP server saw.
type received struct {
	from, to, auth string
	data           string
	tls            bool
}

// serveSMTP speaks just enough SMTP (RFC 5321) to accept one message, optionally over TLS.
func serveSMTP(t *testing.T, ln net.Listener, tlsConf *tls.Config, out chan<- received) {
	t.Helper()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		var got received
		_, got.tls = conn.(*tls.Conn)
		r, w := bufio.NewReader(conn), conn
		say := func(s string) { _, _ = w.Write([]byte(s + "\r\n")) }
		say("220 test ESMTP")
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			cmd := strings.TrimRight(line, "\r\n")
			upper := strings.ToUpper(cmd)
			switch {
			case strings.HasPrefix(upper, "EHLO"):
				ext := "250-AUTH PLAIN\r\n250 8BITMIME"
				if tlsConf != nil && !got.tls {
					ext = "250-STARTTLS\r\n" + ext
				}
				say("250-test\r\n" + ext)
			case upper == "STARTTLS":
				say("220 go ahead")
				tc := tls.Server(conn, tlsConf)
				if tc.Handshake() != nil {
					return
				}
				conn, got.tls = tc, true
				r, w = bufio.NewReader(tc), tc
			case strings.HasPrefix(upper, "AUTH PLAIN"):
				got.auth = strings.TrimPrefix(cmd, "AUTH PLAIN ")
				say("235 ok")
			case strings.HasPrefix(upper, "MAIL FROM:"):
				got.from = cmd[len("MAIL FROM:"):]
				say("250 ok")
			case strings.HasPrefix(upper, "RCPT TO:"):
				got.to = cmd[len("RCPT TO:"):]
				say("250 ok")
			case upper == "DATA":
				say("354 end with .")
				var b strings.Builder
				for {
					l, err := r.ReadString('\n')
					if err != nil || l == ".\r\n" {
						break
					}
					b.WriteString(l)
				}
				got.data = b.String()
				say("250 queued")
			case upper == "QUIT":
				say("221 bye")
				out <- got
				return
			default:
				say("502 unknown")
			}
		}
	}()
}

func testTLS(t *testing.T) (server, client *tls.Config) {
	srv := httptest.NewUnstartedServer(nil) // borrow its self-signed localhost certificate
	cert := srv.TLS
	if cert == nil {
		srv.StartTLS()
		defer srv.Close()
		cert = srv.TLS
	}
	pool := x509.NewCertPool()
	leaf, err := x509.ParseCertificate(cert.Certificates[0].Certificate[0])
	require.NoError(t, err)
	pool.AddCert(leaf)
	return &tls.Config{Certificates: cert.Certificates}, &tls.Config{RootCAs: pool}
}

func TestSMTPSendsRealMessages(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	for _, mode := range []string{TLSNone, TLSStartTLS, TLSImplicit} {
		t.Run(mode, func(t *testing.T) {
			var ln net.Listener
			var err error
			if mode == TLSImplicit {
				ln, err = tls.Listen("tcp", "127.0.0.1:0", serverTLS)
			} else {
				ln, err = net.Listen("tcp", "127.0.0.1:0")
			}
			require.NoError(t, err)
			defer ln.Close()
			got := make(chan received, 1)
			var starttls *tls.Config
			if mode == TLSStartTLS {
				starttls = serverTLS
			}
			serveSMTP(t, ln, starttls, got)

			port := ln.Addr().(*net.TCPAddr).Port
			s := SMTP{Host: "127.0.0.1", Port: port, TLS: mode, Username: "mba", Password: "s3cret",
				From: "MBA <mba@lab.example>", TLSConfig: clientTLS}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			require.NoError(t, s.Send(ctx, Message{To: "Ann <ann@lab.example>", Subject: "Reset\r\nBcc: evil@x", Body: "line 1\nline 2"}))

			r := <-got
			require.Equal(t, mode != TLSNone, r.tls)
			require.True(t, strings.HasPrefix(r.from, "<mba@lab.example>"), r.from)
			require.Equal(t, "<ann@lab.example>", r.to)
			creds, err := base64.StdEncoding.DecodeString(r.auth)
			require.NoError(t, err)
			require.Equal(t, "\x00mba\x00s3cret", string(creds))
			require.Contains(t, r.data, "Subject: Reset  Bcc: evil@x\r\n", "newlines in the subject cannot add headers")
			require.NotContains(t, r.data, "\r\nBcc:")
			require.Contains(t, r.data, "\r\n\r\nline 1\r\nline 2\r\n")
		})
	}
}

func TestSMTPReportsUnreachableServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := SMTP{Host: "127.0.0.1", Port: port, TLS: TLSNone, From: "mba@lab.example"}
	err = s.Send(context.Background(), Message{To: "ann@lab.example", Subject: "x", Body: "y"})
	require.ErrorContains(t, err, "connecting to SMTP server")
}

func TestRedactLinks(t *testing.T) {
	body := "Choose your password here:\n\nhttps://ui.lab.example/reset/12/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcde\n\n" +
		"or http://localhost:8080/x?token=AbCdEfGhIjKlMnOpQrStUvWxYz0123456789\nSee https://lab.example/help/page.\n"
	got := RedactLinks(body)
	require.NotContains(t, got, "AbCdEfGhIjKlMnOpQrStUvWxYz")
	require.Contains(t, got, "https://ui.lab.example/reset/12/[redacted]")
	require.Contains(t, got, "http://localhost:8080/x?token=[redacted]")
	require.Contains(t, got, "https://lab.example/help/page.", "short path segments are not secrets")
}

func FuzzRedactLinks(f *testing.F) {
	f.Add("ui.lab.example", "reset/1", "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcde")
	const tokenChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	f.Fuzz(func(t *testing.T, host, path, token string) {
		if len(token) < 20 || strings.Trim(token, tokenChars) != "" || host == "" || strings.Trim(host, "abcdefghijklmnopqrstuvwxyz.:0123456789") != "" ||
			strings.ContainsAny(path, " \t\n\f\r") { // the whitespace that ends a link (regexp \s)
			return
		}
		link := "https://" + host + "/" + path + "/" + token
		got := RedactLinks("link: " + link + "\n")
		require.NotContains(t, strings.TrimPrefix(got, "link: https://"+host+"/"), token, "the token is gone from the path")
	})
}
