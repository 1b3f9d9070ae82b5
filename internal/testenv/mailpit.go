package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/internal/mail"
)

const (
	smtpEnv    = "MBA_TEST_SMTP_ADDR"
	mailpitEnv = "MBA_TEST_MAILPIT_URL"
)

// Mailpit is the SMTP server `make test` runs (scripts/test.sh), read back through its HTTP
// API. Every Mailpit sends from an address of its own, and reads only what was sent from it,
// so tests sharing the server (in parallel, across packages) never see each other's mail.
type Mailpit struct {
	t    testing.TB
	api  string
	from string
	smtp mail.SMTP
}

// NewMailpit connects t to the suite's Mailpit.
func NewMailpit(t testing.TB) *Mailpit {
	t.Helper()
	addr := need(t, smtpEnv)
	api := strings.TrimRight(need(t, mailpitEnv), "/")
	host, portText, err := net.SplitHostPort(addr)
	require.NoError(t, err, "%s=%q", smtpEnv, addr)
	port, err := strconv.Atoi(portText)
	require.NoError(t, err, "%s=%q", smtpEnv, addr)
	from := RandomName("mba-") + "@mba.test"
	return &Mailpit{t: t, api: api, from: from,
		// A local catch-all: no TLS, no credentials (mail.TLSNone is for exactly this).
		smtp: mail.SMTP{Host: host, Port: port, TLS: mail.TLSNone, From: "MBA <" + from + ">"}}
}

// Sender is the real SMTP sender, configured as cmd/mba does, delivering to this Mailpit.
func (m *Mailpit) Sender() mail.SMTP { return m.smtp }

// Address is a mailbox of Mailpit's API (sender or recipient).
type Address struct {
	Name    string `json:"Name"`
	Address string `json:"Address"`
}

// Summary is a message as /api/v1/messages and /api/v1/search list it.
type Summary struct {
	ID      string    `json:"ID"`
	From    Address   `json:"From"`
	To      []Address `json:"To"`
	Subject string    `json:"Subject"`
	Created time.Time `json:"Created"`
}

// Message is a whole message as /api/v1/message/{ID} returns it.
type Message struct {
	Summary
	Text string `json:"Text"`
	HTML string `json:"HTML"`
}

// Messages lists what was delivered from this Mailpit's sender to recipient (any recipient
// when empty), oldest first.
func (m *Mailpit) Messages(recipient string) []Summary {
	m.t.Helper()
	out, err := m.messages(recipient)
	require.NoError(m.t, err)
	return out
}

func (m *Mailpit) messages(recipient string) ([]Summary, error) {
	var page struct {
		Messages []Summary `json:"messages"`
	}
	q := url.Values{"query": {"from:" + m.from}, "limit": {"500"}}
	if err := m.get("/api/v1/search?"+q.Encode(), &page); err != nil {
		return nil, err
	}
	var out []Summary
	for _, s := range page.Messages {
		if !strings.EqualFold(s.From.Address, m.from) { // the search matches substrings
			continue
		}
		if recipient == "" || slices.ContainsFunc(s.To, func(a Address) bool { return strings.EqualFold(a.Address, recipient) }) {
			out = append(out, s)
		}
	}
	slices.SortStableFunc(out, func(a, b Summary) int { return a.Created.Compare(b.Created) })
	return out, nil
}

// Message reads one message in full.
func (m *Mailpit) Message(id string) Message {
	m.t.Helper()
	var msg Message
	require.NoError(m.t, m.get("/api/v1/message/"+url.PathEscape(id), &msg))
	return msg
}

// WaitForMessages waits until n messages from this sender reached recipient and returns
// them in full, oldest first (some routes mail in the background).
func (m *Mailpit) WaitForMessages(recipient string, n int) []Message {
	m.t.Helper()
	var got []Summary
	var lastErr error
	require.Eventually(m.t, func() bool {
		got, lastErr = m.messages(recipient)
		return lastErr == nil && len(got) >= n
	}, 30*time.Second, 50*time.Millisecond, "fewer than %d messages to %s in %s (last error: %v)", n, recipient, m, lastErr)
	out := make([]Message, len(got))
	for i, s := range got {
		out[i] = m.Message(s.ID)
	}
	return out
}

// get decodes the JSON answer of Mailpit's API at path.
func (m *Mailpit) get(path string, into any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.api+path, nil)
	if err != nil {
		return fmt.Errorf("Mailpit API %s: %w", path, err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("Mailpit API %s: %w", path, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("Mailpit API %s: %s", path, res.Status)
	}
	if err := json.NewDecoder(res.Body).Decode(into); err != nil {
		return fmt.Errorf("Mailpit API %s: %w", path, err)
	}
	return nil
}

// String names the server, for messages.
func (m *Mailpit) String() string {
	return fmt.Sprintf("Mailpit %s (SMTP %s:%d)", m.api, m.smtp.Host, m.smtp.Port)
}
