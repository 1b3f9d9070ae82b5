package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/internal/recording"
)

// notAudited are the routes that change something yet leave no audit row of their own, and why.
// TestEveryMutatingRouteIsAudited fails for a non-GET route neither driven there nor listed here.
var notAudited = map[string]string{
	"POST /api/auth/refresh":            "rotates the caller's own token; a reused one is audited (refresh.reused)",
	"POST /api/device/heartbeat":        "the enclosure protocol, every few seconds, kept in its own tables; a wrong address is audited",
	"POST /api/agent/uploads":           "the upload agent's files, kept in session_files; a refused verified file is audited",
	"POST /api/agent/uploads/":          "as POST /api/agent/uploads",
	"HEAD /api/agent/uploads/{upload}":  "reads an upload's offset",
	"PATCH /api/agent/uploads/{upload}": "as POST /api/agent/uploads",
	// They need an alert workflow on Temporal: TestAlertLifecycleThroughTheAPI checks their rows.
	"POST /api/alerts/{aid}/acknowledge": "audited; checked by TestAlertLifecycleThroughTheAPI",
	"POST /api/alerts/{aid}/silence":     "audited; checked by TestAlertLifecycleThroughTheAPI",
	// They need Temporal Schedules: TestSchedulesOnTemporal checks their rows.
	"POST /api/schedules":                 "audited; checked by TestSchedulesOnTemporal",
	"PUT /api/schedules/{schid}":          "audited; checked by TestSchedulesOnTemporal",
	"DELETE /api/schedules/{schid}":       "audited; checked by TestSchedulesOnTemporal",
	"POST /api/schedules/{schid}/pause":   "audited; checked by TestSchedulesOnTemporal",
	"POST /api/schedules/{schid}/resume":  "audited; checked by TestSchedulesOnTemporal",
	"POST /api/schedules/{schid}/trigger": "audited; checked by TestSchedulesOnTemporal",
	// Temporal Updates of the session's workflow, audited by its activity in the change's
	// transaction: internal/e2e's TestChangingARunningSession checks their rows.
	"POST /api/recording-session/{sid}/devices":                   "audited; checked by e2e TestChangingARunningSession",
	"POST /api/recording-session/{sid}/device-status/{did}/retry": "audited; checked by e2e TestChangingARunningSession",
	"PUT /api/recording-session/{sid}/duration":                   "audited; checked by e2e TestChangingARunningSession",
}

// auditActionsSince lists the actions of the audit rows after row id after.
func (h *harness) auditActionsSince(after int64) []recording.AuditAction {
	h.t.Helper()
	rows, err := h.srv.pool.Query(context.Background(), `SELECT action FROM audit_log WHERE id > @after ORDER BY id`,
		pgx.NamedArgs{"after": after})
	require.NoError(h.t, err)
	actions, err := pgx.CollectRows(rows, pgx.RowTo[recording.AuditAction])
	require.NoError(h.t, err)
	return actions
}

func (h *harness) lastAuditID() int64 {
	h.t.Helper()
	var id int64
	require.NoError(h.t, h.srv.pool.QueryRow(context.Background(), `SELECT coalesce(max(id), 0) FROM audit_log`).Scan(&id))
	return id
}

// TestEveryMutatingRouteIsAudited drives every non-GET route of the router with a valid request
// as a caller it allows and checks the audit row it must leave.
func TestEveryMutatingRouteIsAudited(t *testing.T) {
	h := newHarness(t)
	h.user("admin@lab.example", "correct horse", true)
	admin, _ := h.login("admin@lab.example", "correct horse")
	h.user("ann@lab.example", "correct horse", false)
	_, annRefresh := h.login("ann@lab.example", "correct horse")
	carl := h.user("carl@lab.example", "correct horse", false)
	carlToken, _ := h.login("carl@lab.example", "correct horse")
	dave := h.user("dave@lab.example", "correct horse", false)
	for _, name := range []string{"NV1", "NV2", "NV3", "NV4"} {
		h.send(beat(name, 0, false, ""))
	}
	dev := func(name string) string { return fmt.Sprint(h.deviceID(name)) }
	var sid int64
	session := func() string { return fmt.Sprintf("/api/recording-session/%d", sid) }
	var tid int64
	template := func() string { return fmt.Sprintf("/api/templates/%d", tid) }

	calls := []struct {
		route   string // as in routeAccess
		actions []recording.AuditAction
		call    func() response
	}{
		{"POST /api/auth/login", []recording.AuditAction{recording.AuditLogin}, func() response {
			return h.do("POST", "/api/auth/login", "", map[string]string{"email_address": "dave@lab.example", "password": "correct horse"})
		}},
		{"POST /api/auth/logout", []recording.AuditAction{recording.AuditLogout}, func() response {
			return h.do("POST", "/api/auth/logout", annRefresh, nil)
		}},
		{"POST /api/user/send_pw_reset", []recording.AuditAction{recording.AuditPasswordResetAsked}, func() response {
			return h.do("POST", "/api/user/send_pw_reset", "", map[string]string{"email": "ann@lab.example", "url": testLinkOrigin})
		}},
		{"POST /api/user/{uid}/reset_password/{token}", []recording.AuditAction{recording.AuditPasswordReset}, func() response {
			uid, token := h.lastLink("ann@lab.example")
			return h.do("POST", "/api/user/"+uid+"/reset_password/"+token, "", map[string]string{"password": "another long password"})
		}},
		{"PUT /api/user/{uid}/change_password", []recording.AuditAction{recording.AuditPasswordChange}, func() response {
			return h.do("PUT", fmt.Sprintf("/api/user/%d/change_password", carl.ID), carlToken,
				map[string]string{"old_password": "correct horse", "new_password": "a new long password"})
		}},
		{"POST /api/user/invite", []recording.AuditAction{recording.AuditUserInvite}, func() response {
			return h.do("POST", "/api/user/invite", admin, map[string]any{"email": "new@lab.example", "url": testLinkOrigin})
		}},
		{"PATCH /api/user/{uid}", []recording.AuditAction{recording.AuditUserUpdate}, func() response {
			return h.do("PATCH", fmt.Sprintf("/api/user/%d", dave.ID), admin, map[string]any{"admin": true})
		}},
		{"PUT /api/users/me/notification-prefs", []recording.AuditAction{recording.AuditUserNotificationPrefs}, func() response {
			return h.do("PUT", "/api/users/me/notification-prefs", carlToken, map[string]any{"kinds": []string{},
				"channel": "email", "quiet_start": "22:00", "quiet_end": "07:00", "time_zone": "Europe/Berlin"})
		}},
		{"PUT /api/device/{device}/token", []recording.AuditAction{recording.AuditDeviceTokenSet}, func() response {
			return h.do("PUT", "/api/device/"+dev("NV4")+"/token", admin, nil)
		}},
		{"DELETE /api/device/{device}/token", []recording.AuditAction{recording.AuditDeviceTokenDelete}, func() response {
			return h.do("DELETE", "/api/device/"+dev("NV4")+"/token", admin, nil)
		}},
		{"PATCH /api/device/{device}", []recording.AuditAction{recording.AuditDeviceUpdate}, func() response {
			return h.do("PATCH", "/api/device/"+dev("NV4"), admin, map[string]any{"bound_address": "10.0.0.5"})
		}},
		{"POST /api/device/{device}/reject", []recording.AuditAction{recording.AuditDeviceReject}, func() response {
			return h.do("POST", "/api/device/"+dev("NV4")+"/reject", admin, nil)
		}},
		{"POST /api/device/{device}/approve", []recording.AuditAction{recording.AuditDeviceApprove}, func() response {
			return h.do("POST", "/api/device/"+dev("NV4")+"/approve", admin, nil)
		}},
		{"DELETE /api/device/{device}", []recording.AuditAction{recording.AuditDeviceDelete}, func() response {
			return h.do("DELETE", "/api/device/"+dev("NV4"), admin, nil)
		}},
		{"POST /api/recording-session", []recording.AuditAction{recording.AuditSessionCreate}, func() response {
			res := h.do("POST", "/api/recording-session", carlToken, map[string]any{"name": "exp", "duration": 3600, "target_fps": 30,
				"device_spec": []map[string]any{{"device_id": h.deviceID("NV2"), "filename_prefix": "a"},
					{"device_id": h.deviceID("NV3"), "filename_prefix": "b"}}})
			if res.status == http.StatusOK {
				sid = int64(res.json(t)["id"].(float64))
			}
			return res
		}},
		{"PATCH /api/recording-session/{sid}/device-status/{did}/subject", []recording.AuditAction{recording.AuditSessionSubject}, func() response {
			return h.do("PATCH", session()+"/device-status/"+dev("NV2")+"/subject", carlToken, map[string]any{"subject_ids": []string{"M7"}})
		}},
		{"PATCH /api/recording-session/{sid}", []recording.AuditAction{recording.AuditSessionEdit}, func() response {
			return h.do("PATCH", session(), carlToken, map[string]any{"name": "exp 2", "notes": "mouse 3 looks sleepy"})
		}},
		{"DELETE /api/recording-session/{sid}/device-status/{did}", []recording.AuditAction{recording.AuditSessionRemoveDevice}, func() response {
			return h.do("DELETE", session()+"/device-status/"+dev("NV3"), carlToken, nil)
		}},
		{"DELETE /api/recording-session/{sid}", []recording.AuditAction{recording.AuditSessionCancel, recording.AuditSessionArchive}, func() response {
			return h.do("DELETE", session()+"?archive=true", carlToken, nil)
		}},
		{"POST /api/recording-session/{sid}/unarchive", []recording.AuditAction{recording.AuditSessionUnarchive}, func() response {
			return h.do("POST", session()+"/unarchive", admin, nil)
		}},
		{"POST /api/templates", []recording.AuditAction{recording.AuditTemplateCreate}, func() response {
			res := h.do("POST", "/api/templates", carlToken, map[string]any{"name": "night", "duration": 3600, "target_fps": 30,
				"prefix_pattern": "{enclosure}_{date}", "device_ids": []int64{h.deviceID("NV1")}})
			if res.status == http.StatusOK {
				tid = int64(res.json(t)["id"].(float64))
			}
			return res
		}},
		{"POST /api/templates/{tid}/versions", []recording.AuditAction{recording.AuditTemplateVersion}, func() response {
			return h.do("POST", template()+"/versions", carlToken, map[string]any{"name": "night", "duration": 1800, "target_fps": 30,
				"prefix_pattern": "{enclosure}_{session}", "device_ids": []int64{h.deviceID("NV1")}})
		}},
		{"POST /api/templates/{tid}/sessions", []recording.AuditAction{recording.AuditSessionCreate}, func() response {
			return h.do("POST", template()+"/sessions", carlToken, map[string]any{})
		}},
		{"DELETE /api/templates/{tid}", []recording.AuditAction{recording.AuditTemplateArchive}, func() response {
			return h.do("DELETE", template(), admin, nil)
		}},
	}
	driven := map[string]bool{}
	for _, c := range calls {
		before := h.lastAuditID()
		res := c.call()
		require.Less(t, res.status, 300, "%s: %s", c.route, res.body)
		// A password reset mails after the response (goBackground), and audits there.
		var got []recording.AuditAction
		require.Eventually(t, func() bool { got = h.auditActionsSince(before); return len(got) >= len(c.actions) },
			10*time.Second, 10*time.Millisecond, "%s leaves no audit row", c.route)
		require.Equal(t, c.actions, got, "%s leaves its audit rows", c.route)
		driven[c.route] = true
	}
	for route := range routeAccess {
		if strings.HasPrefix(route, "GET ") {
			continue
		}
		_, exempt := notAudited[route]
		require.True(t, driven[route] || exempt,
			"%s changes something: drive it in TestEveryMutatingRouteIsAudited with the audit action it must leave, or say in notAudited why it leaves none", route)
	}
}

// TestAuditSearch: administrators search the log by who, what, subject and time; bad filters
// are 400s naming the parameter.
func TestAuditSearch(t *testing.T) {
	h := newHarness(t)
	h.user("admin@lab.example", "correct horse", true)
	admin, _ := h.login("admin@lab.example", "correct horse")
	h.user("ann@lab.example", "correct horse", false)
	h.login("ann@lab.example", "correct horse")
	dave := h.user("dave@lab.example", "correct horse", false)
	require.Equal(t, http.StatusOK, h.do("PATCH", fmt.Sprintf("/api/user/%d", dave.ID), admin, map[string]any{"disabled": true}).status)

	search := func(query string) []AuditView {
		t.Helper()
		res := h.do("GET", "/api/audit"+query, admin, nil)
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		var out []AuditView
		require.NoError(t, json.Unmarshal(res.body, &out))
		return out
	}
	all := search("")
	require.Len(t, all, 3, "two logins and the update")
	require.Equal(t, recording.AuditUserUpdate, all[0].Action, "newest first")
	require.Equal(t, "dave@lab.example", all[0].Subject)
	require.Equal(t, "disabled=true", all[0].Detail)
	require.Equal(t, "admin@lab.example", *all[0].ActorEmail)

	require.Len(t, search("?actor=ANN@lab.example"), 1)
	require.Len(t, search("?action=login"), 2)
	require.Len(t, search("?subject=dave@lab.example&action=user.update"), 1)
	require.Len(t, search("?limit=1"), 1)
	at := all[0].At
	require.Len(t, search("?since="+url.QueryEscape(at.Format(time.RFC3339Nano))), 1)
	require.Len(t, search("?until="+url.QueryEscape(at.Format(time.RFC3339Nano))), 2)

	for query, want := range map[string]string{"?action=bogus": "action: is not an audit action",
		"?since=yesterday": "since: must be an RFC 3339 time", "?limit=501": "limit: must be between 1 and 500",
		"?since=2026-12-02T00:00:00Z&until=2026-12-01T00:00:00Z": "until: must be after since"} {
		res := h.do("GET", "/api/audit"+query, admin, nil)
		require.Equal(t, http.StatusBadRequest, res.status, query)
		require.Contains(t, res.json(t)["message"], want, query)
	}
}
