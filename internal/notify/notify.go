// Package notify builds the bodies of alert notifications and signs webhook requests.
//
// A generic webhook receives Notice as JSON, signed with HMAC-SHA256 over
// "<timestamp>.<raw body>" with the shared secret:
//
//	X-MBA-Timestamp: 1767225600            (Unix seconds when it was sent)
//	X-MBA-Signature: sha256=<hex of HMAC>  (over "1767225600." + body)
//
// A receiver checks it with Verify: the signature over the exact bytes received, compared in
// constant time, and the timestamp within a tolerance of its own clock, so a captured request
// cannot be replayed later. The timestamp is inside the signed text, so it cannot be changed.
// A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat) receives {"text": ...}.
package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Headers of a signed webhook request.
const (
	SignatureHeader = "X-MBA-Signature"
	TimestampHeader = "X-MBA-Timestamp"
)

// Notices: why a notification is sent.
const (
	NoticeOpened    = "opened"    // first notification of an alert
	NoticeEscalated = "escalated" // unacknowledged: the next tier
	NoticeReminder  = "reminder"  // a silence ended and the condition is still there
	NoticeRecovered = "recovered" // the condition cleared
)

// Notice is what every channel tells; its JSON is the generic webhook's body.
type Notice struct {
	Notice    string    `json:"notice"`
	AlertKey  string    `json:"alert_key"`
	Kind      string    `json:"kind"`
	Summary   string    `json:"summary"`
	SessionID int64     `json:"session_id,omitempty"`
	DeviceID  int64     `json:"device_id,omitempty"`
	Tier      int       `json:"tier"`
	OpenedAt  time.Time `json:"opened_at"`
	At        time.Time `json:"at"`
	// Filled in at delivery (the workflow knows ids, not names or where the UI is).
	SessionName string `json:"session_name,omitempty"`
	DeviceName  string `json:"device_name,omitempty"`
	URL         string `json:"url,omitempty"` // the alert on the UI's Alerts page
}

// Subject is the notice's one-line title (e-mail subject, chat message's first line).
func (n Notice) Subject() string {
	what := map[string]string{NoticeOpened: "ALERT", NoticeEscalated: "ESCALATED", NoticeReminder: "STILL OPEN",
		NoticeRecovered: "RESOLVED"}[n.Notice]
	if what == "" {
		what = strings.ToUpper(n.Notice)
	}
	return fmt.Sprintf("[MBA %s] %s: %s", what, n.Kind, n.Summary)
}

// Text is the plain-text body of an e-mail: what happened, to which enclosure in which
// session, when, and where to acknowledge it.
func (n Notice) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", n.Subject())
	fmt.Fprintf(&b, "What:       %s\n", n.Summary)
	if n.DeviceID != 0 {
		fmt.Fprintf(&b, "Enclosure:  %s\n", named(n.DeviceName, n.DeviceID))
	}
	if n.SessionID != 0 {
		fmt.Fprintf(&b, "Session:    %s\n", named(n.SessionName, n.SessionID))
	} else {
		b.WriteString("Session:    none (a fleet alert)\n")
	}
	fmt.Fprintf(&b, "Opened:     %s\n", n.OpenedAt.UTC().Format(time.RFC3339))
	if n.Tier > 0 {
		fmt.Fprintf(&b, "Escalation: tier %d (nobody acknowledged it in time)\n", n.Tier)
	}
	if n.Notice == NoticeRecovered {
		fmt.Fprintf(&b, "Resolved:   %s (the condition cleared)\n", n.At.UTC().Format(time.RFC3339))
	} else {
		fmt.Fprintf(&b, "Sent:       %s\n", n.At.UTC().Format(time.RFC3339))
	}
	if n.URL != "" {
		fmt.Fprintf(&b, "\nAlerts page: %s\n", n.URL)
	}
	if n.Notice != NoticeRecovered {
		b.WriteString("Acknowledge or silence it on the Alerts page to stop the escalation.\n")
	}
	fmt.Fprintf(&b, "\nAlert: %s\n", n.AlertKey)
	return b.String()
}

// named is "name (id N)", or "N" without a name.
func named(name string, id int64) string {
	if name == "" {
		return fmt.Sprint(id)
	}
	return fmt.Sprintf("%s (id %d)", name, id)
}

// JSON is the generic webhook's body.
func (n Notice) JSON() []byte {
	raw, _ := json.Marshal(n) // a struct of strings, numbers and times always marshals
	return raw
}

// Slack is a Slack-compatible incoming-webhook body.
func (n Notice) Slack() []byte {
	raw, _ := json.Marshal(struct {
		Text string `json:"text"`
	}{Text: n.Text()})
	return raw
}

// Sign returns the signature header value of body sent at ts.
func Sign(secret []byte, ts time.Time, body []byte) string {
	return "sha256=" + hex.EncodeToString(mac(secret, strconv.FormatInt(ts.Unix(), 10), body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// SetHeaders signs a request's body: the timestamp and signature headers.
func SetHeaders(h http.Header, secret []byte, now time.Time, body []byte) {
	h.Set(TimestampHeader, strconv.FormatInt(now.Unix(), 10))
	h.Set(SignatureHeader, Sign(secret, now, body))
}

// Errors of Verify.
var (
	ErrNoSignature  = errors.New("missing or malformed " + SignatureHeader + " or " + TimestampHeader + " header")
	ErrBadSignature = errors.New("signature does not match the body")
	ErrStale        = errors.New("timestamp outside the tolerance: a replay, or clocks apart")
)

// Verify checks a received webhook: h its headers, body the raw bytes as received (before any
// JSON decoding), now the receiver's clock and tolerance how far the timestamp may be from it
// (5 minutes is usual). The comparison takes constant time.
func Verify(secret []byte, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	tsText := h.Get(TimestampHeader)
	ts, err := strconv.ParseInt(tsText, 10, 64)
	hexSig, ok := strings.CutPrefix(h.Get(SignatureHeader), "sha256=")
	if err != nil || !ok {
		return ErrNoSignature
	}
	sig, err := hex.DecodeString(hexSig)
	if err != nil {
		return ErrNoSignature
	}
	if !hmac.Equal(sig, mac(secret, tsText, body)) {
		return ErrBadSignature
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return ErrStale
	}
	return nil
}
