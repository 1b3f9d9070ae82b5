package api

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/store"
)

// PrefsStore keeps the signed-in user's notification preferences (store.Store).
type PrefsStore interface {
	NotificationPrefs(ctx context.Context, userID int64) (store.NotificationPrefs, error)
	SetNotificationPrefs(ctx context.Context, userID int64, p store.NotificationPrefs) error
}

// notificationChannels are the channels a person may choose (the table's CHECK).
var notificationChannels = []string{"email", "none"}

// hhmm formats minutes after midnight as HH:MM, the way <input type=time> sends them.
func hhmm(minutes int) string { return fmt.Sprintf("%02d:%02d", minutes/60, minutes%60) }

// parseClock reads HH:MM (00:00-23:59) as minutes after midnight.
func parseClock(s string) (int, bool) {
	t, err := time.Parse("15:04", s)
	if err != nil || len(s) != 5 {
		return 0, false
	}
	return t.Hour()*60 + t.Minute(), true
}

func (s *Server) getNotificationPrefs(w http.ResponseWriter, r *http.Request) error {
	p, err := s.prefs.NotificationPrefs(r.Context(), currentUser(r).ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, notificationPrefsView(p))
	return nil
}

// putNotificationPrefs replaces the signed-in user's preferences, all fields at once.
func (s *Server) putNotificationPrefs(w http.ResponseWriter, r *http.Request) error {
	var req NotificationPrefsRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	p, err := req.prefs()
	if err != nil {
		return err
	}
	me := currentUser(r)
	ctx := s.audited(r, me.ID, recording.AuditUserNotificationPrefs, strconv.FormatInt(me.ID, 10), "")
	if err := s.prefs.SetNotificationPrefs(ctx, me.ID, p); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, notificationPrefsView(p))
	return nil
}

// prefs validates the request: every problem named by its field.
func (req NotificationPrefsRequest) prefs() (store.NotificationPrefs, error) {
	problems := map[string]string{}
	kinds := make([]string, 0, len(req.Kinds))
	for _, k := range req.Kinds {
		if !slices.Contains(recording.AlertKinds, recording.AlertKind(k)) {
			problems["kinds"] = fmt.Sprintf("%q is not a kind of alert", k)
			break
		}
		if !slices.Contains(kinds, k) {
			kinds = append(kinds, k)
		}
	}
	if !slices.Contains(notificationChannels, req.Channel) {
		problems["channel"] = "must be email or none"
	}
	start, okStart := parseClock(req.QuietStart)
	if !okStart {
		problems["quiet_start"] = "must be a time of day, HH:MM"
	}
	end, okEnd := parseClock(req.QuietEnd)
	if !okEnd {
		problems["quiet_end"] = "must be a time of day, HH:MM"
	}
	// The notifier reads the zone with time.LoadLocation: one it cannot load must not be kept.
	if _, err := time.LoadLocation(req.TimeZone); err != nil || req.TimeZone == "" || req.TimeZone == "Local" {
		problems["time_zone"] = "must be an IANA time zone, e.g. Europe/Berlin or UTC"
	}
	if len(problems) > 0 {
		return store.NotificationPrefs{}, invalid(problems)
	}
	return store.NotificationPrefs{Kinds: kinds, Channel: req.Channel, QuietStart: start, QuietEnd: end, TZ: req.TimeZone,
		Digest: req.Digest}, nil
}
