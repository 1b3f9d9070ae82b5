package notify

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestVerifyAcceptsWhatWasSignedAndNothingElse(t *testing.T) {
	secret := []byte("shared secret")
	sent := time.Unix(1_767_225_600, 0)
	body := Notice{Notice: NoticeOpened, AlertKey: "k", Kind: "enclosure_down", Summary: "NV3 is DOWN"}.JSON()
	h := http.Header{}
	SetHeaders(h, secret, sent, body)
	require.True(t, strings.HasPrefix(h.Get(SignatureHeader), "sha256="))
	require.Equal(t, "1767225600", h.Get(TimestampHeader))

	require.NoError(t, Verify(secret, h, body, sent.Add(time.Minute), 5*time.Minute))
	require.ErrorIs(t, Verify([]byte("other secret"), h, body, sent, 5*time.Minute), ErrBadSignature)
	require.ErrorIs(t, Verify(secret, h, append([]byte(" "), body...), sent, 5*time.Minute), ErrBadSignature, "the raw bytes count")
	require.ErrorIs(t, Verify(secret, h, body, sent.Add(6*time.Minute), 5*time.Minute), ErrStale, "a replay later")
	require.ErrorIs(t, Verify(secret, h, body, sent.Add(-6*time.Minute), 5*time.Minute), ErrStale)

	moved := h.Clone()
	moved.Set(TimestampHeader, "1767225900") // a replay with a fresh timestamp: it is signed
	require.ErrorIs(t, Verify(secret, moved, body, sent.Add(5*time.Minute), 5*time.Minute), ErrBadSignature)
	for _, bad := range []string{"", "md5=00", "sha256=zz"} {
		broken := h.Clone()
		broken.Set(SignatureHeader, bad)
		require.ErrorIs(t, Verify(secret, broken, body, sent, 5*time.Minute), ErrNoSignature, "%q", bad)
	}
	noTime := h.Clone()
	noTime.Del(TimestampHeader)
	require.ErrorIs(t, Verify(secret, noTime, body, sent, 5*time.Minute), ErrNoSignature)
}

func TestBodies(t *testing.T) {
	opened := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	n := Notice{Notice: NoticeEscalated, AlertKey: "k", Kind: "enclosure_down", Summary: "NV3 is DOWN", SessionID: 7,
		DeviceID: 3, Tier: 1, OpenedAt: opened, At: opened.Add(15 * time.Minute)}
	require.Equal(t, "[MBA ESCALATED] enclosure_down: NV3 is DOWN", n.Subject())
	require.Contains(t, n.Text(), "Session:    7\n")
	require.Contains(t, n.Text(), "Escalation: tier 1")
	n.SessionName, n.DeviceName, n.URL = "night run", "NV3", "https://mba.lab.example/#/alerts?kind=enclosure_down&session=7"
	for _, want := range []string{"What:       NV3 is DOWN\n", "Enclosure:  NV3 (id 3)\n", "Session:    night run (id 7)\n",
		"Opened:     2026-12-02T03:00:00Z\n", "Alerts page: https://mba.lab.example/#/alerts?kind=enclosure_down&session=7\n"} {
		require.Contains(t, n.Text(), want)
	}

	var generic map[string]any
	require.NoError(t, json.Unmarshal(n.JSON(), &generic))
	require.Equal(t, "escalated", generic["notice"])
	require.Equal(t, float64(7), generic["session_id"])

	var slack map[string]string
	require.NoError(t, json.Unmarshal(n.Slack(), &slack))
	require.Len(t, slack, 1, "an incoming webhook takes {\"text\": ...}")
	require.True(t, strings.HasPrefix(slack["text"], n.Subject()))

	n.Notice = NoticeRecovered
	require.Contains(t, n.Text(), "Resolved:   2026-12-02T03:15:00Z")
	require.NotContains(t, n.Text(), "Acknowledge")
}
