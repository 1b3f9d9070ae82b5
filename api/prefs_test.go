package api

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestNotificationPrefs: a user reads the defaults, replaces them, reads them back, and every
// bad field is refused with a 400 naming it; another user's preferences stay their own.
func TestNotificationPrefs(t *testing.T) {
	h := newHarness(t)
	h.user("ann@lab.example", "correct horse", false)
	h.user("bob@lab.example", "correct horse", false)
	ann, _ := h.login("ann@lab.example", "correct horse")
	bob, _ := h.login("bob@lab.example", "correct horse")
	const route = "/api/users/me/notification-prefs"
	read := func(token string) NotificationPrefsView {
		t.Helper()
		res := h.do("GET", route, token, nil)
		require.Equal(t, http.StatusOK, res.status, string(res.body))
		var v NotificationPrefsView
		require.NoError(t, json.Unmarshal(res.body, &v))
		return v
	}
	require.Equal(t, NotificationPrefsView{Kinds: []string{}, Channel: "email", QuietStart: "00:00", QuietEnd: "00:00", TimeZone: "UTC"}, read(ann))

	want := NotificationPrefsView{Kinds: []string{"enclosure_down", "low_disk"}, Channel: "email", QuietStart: "22:30",
		QuietEnd: "07:00", TimeZone: "Europe/Berlin"}
	res := h.do("PUT", route, ann, want)
	require.Equal(t, http.StatusOK, res.status, string(res.body))
	require.Equal(t, want, read(ann))
	require.Equal(t, "UTC", read(bob).TimeZone, "bob's are his own")

	for field, body := range map[string]map[string]any{
		"kinds":       {"kinds": []string{"nonsense"}, "channel": "email", "quiet_start": "00:00", "quiet_end": "00:00", "time_zone": "UTC"},
		"channel":     {"kinds": []string{}, "channel": "sms", "quiet_start": "00:00", "quiet_end": "00:00", "time_zone": "UTC"},
		"quiet_start": {"kinds": []string{}, "channel": "none", "quiet_start": "25:00", "quiet_end": "00:00", "time_zone": "UTC"},
		"quiet_end":   {"kinds": []string{}, "channel": "none", "quiet_start": "00:00", "quiet_end": "7am", "time_zone": "UTC"},
		"time_zone":   {"kinds": []string{}, "channel": "none", "quiet_start": "00:00", "quiet_end": "00:00", "time_zone": "Mars/Olympus"},
		"digest":      {"kinds": []string{}, "channel": "none", "quiet_start": "00:00", "quiet_end": "00:00", "time_zone": "UTC", "digest": "yes"},
	} {
		res := h.do("PUT", route, ann, body)
		require.Equal(t, http.StatusBadRequest, res.status, field)
		var e struct {
			Message string            `json:"message"`
			Errors  map[string]string `json:"errors"`
		}
		require.NoError(t, json.Unmarshal(res.body, &e))
		require.Contains(t, e.Errors, field, string(res.body))
		require.Contains(t, e.Message, field)
	}
	require.Equal(t, want, read(ann), "refused changes change nothing")
}
