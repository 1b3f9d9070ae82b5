package api

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestTemplatesThroughTheAPI: create, edit (a new version), a session from version 1 with
// overrides and subjects, its history, clone, archive; refusals are 400s naming the fields.
func TestTemplatesThroughTheAPI(t *testing.T) {
	h := newHarness(t)
	h.user("ann@lab.example", "correct horse", false)
	ann, _ := h.login("ann@lab.example", "correct horse")
	for _, name := range []string{"NV1", "NV2"} {
		h.send(beat(name, 0, false, ""))
	}
	nv1, nv2 := h.deviceID("NV1"), h.deviceID("NV2")

	res := h.do("POST", "/api/templates", ann, map[string]any{"name": "Night", "duration": 3600, "target_fps": 30,
		"prefix_pattern": "{subject}_{enclosure}", "device_ids": []int64{nv1, nv2}, "timeouts": map[string]any{"start_deadline": "5m"}})
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	tid := int64(res.json(t)["id"].(float64))
	tpl := fmt.Sprintf("/api/templates/%d", tid)

	res = h.do("POST", "/api/templates", ann, map[string]any{"name": "night", "duration": 3600, "target_fps": 30, "prefix_pattern": "x"})
	require.Equal(t, http.StatusConflict, res.status, "%s", res.body)
	res = h.do("POST", "/api/templates", ann, map[string]any{"name": "Day", "duration": 0, "target_fps": 30, "prefix_pattern": "{cage}"})
	require.Equal(t, http.StatusBadRequest, res.status)
	require.Contains(t, res.json(t)["errors"], "prefix_pattern")
	require.Contains(t, res.json(t)["errors"], "duration")

	res = h.do("POST", tpl+"/versions", ann, map[string]any{"name": "Night", "duration": 600, "target_fps": 15,
		"prefix_pattern": "{enclosure}_{date}", "device_ids": []int64{nv1}})
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	require.Equal(t, float64(2), res.json(t)["latest_version"])

	// Version 1, with a subject for each enclosure and a shorter duration.
	res = h.do("POST", tpl+"/sessions", ann, map[string]any{"version": 1, "duration": 120, "device_spec": []map[string]any{
		{"device_id": nv1, "subject": map[string]any{"subject_ids": []string{"M1"}, "strain": "C57BL/6J", "sex": "female",
			"date_of_birth": "2025-10-01", "extra": map[string]string{"diet": "chow"}}},
		{"device_id": nv2, "subject": map[string]any{"subject_ids": []string{"M2"}}}}})
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	x := res.json(t)
	sid := int64(x["id"].(float64))
	require.Equal(t, map[string]any{"id": float64(tid), "version": float64(1), "name": "Night"}, x["template"])
	require.Equal(t, float64(120), x["duration"])
	require.Equal(t, float64(30), x["target_fps"], "version 1's frame rate")
	detail := h.do("GET", fmt.Sprintf("/api/recording-session/%d", sid), ann, nil).json(t)
	devices := detail["device_statuses"].([]any)
	first := devices[0].(map[string]any)
	require.Equal(t, "M1_NV1", first["filename_prefix"])
	require.Equal(t, "C57BL/6J", first["subject"].(map[string]any)["strain"])
	require.Equal(t, "2025-10-01", first["subject"].(map[string]any)["date_of_birth"])

	res = h.do("POST", tpl+"/sessions", ann, map[string]any{"version": 1, "device_spec": []map[string]any{{"device_id": nv1}}})
	require.Equal(t, http.StatusBadRequest, res.status, "the pattern needs a subject: %s", res.body)
	require.Contains(t, res.json(t)["errors"], "device_spec[0].subject.subject_ids")
	res = h.do("POST", tpl+"/sessions", ann, map[string]any{"version": 9})
	require.Equal(t, http.StatusNotFound, res.status)
	res = h.do("POST", "/api/recording-session", ann, map[string]any{"name": "x", "duration": 60, "target_fps": 30,
		"device_spec": []map[string]any{{"device_id": nv1, "filename_prefix": "a", "subject": map[string]any{"date_of_birth": "yesterday"}}}})
	require.Equal(t, http.StatusBadRequest, res.status)
	require.Contains(t, res.json(t)["errors"], "device_spec[0].subject.date_of_birth")

	history := h.do("GET", tpl, ann, nil).json(t)
	versions := history["versions"].([]any)
	require.Len(t, versions, 2)
	v1 := versions[1].(map[string]any)
	require.Equal(t, float64(1), v1["version"])
	require.Equal(t, float64(sid), v1["sessions"].([]any)[0].(map[string]any)["id"], "the history shows which session ran version 1")
	require.Equal(t, map[string]any{"start_deadline": "5m"}, v1["timeouts"])

	// Clone: the same settings and subjects, prefixes left to the template's pattern.
	draft := h.do("GET", fmt.Sprintf("/api/recording-session/%d/clone", sid), ann, nil).json(t)
	require.Equal(t, map[string]any{"id": float64(tid), "version": float64(1), "name": "Night"}, draft["from_template"])
	spec := draft["device_spec"].([]any)[0].(map[string]any)
	require.Equal(t, "", spec["filename_prefix"])
	require.Equal(t, []any{"M1"}, spec["subject"].(map[string]any)["subject_ids"])

	// Subjects: edited while it runs (fields left out stay), searched by subject and strain.
	path := fmt.Sprintf("/api/recording-session/%d/device-status/%d/subject", sid, nv1)
	res = h.do("PATCH", path, ann, map[string]any{"cage": "C3", "notes": "moved to cage C3"})
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	require.Equal(t, "C57BL/6J", res.json(t)["strain"])
	require.Equal(t, "C3", res.json(t)["cage"])
	res = h.do("PATCH", path, ann, map[string]any{"sex": "x", "subject_ids": []string{"../etc"}})
	require.Equal(t, http.StatusBadRequest, res.status)
	require.Contains(t, res.json(t)["errors"], "sex")
	require.Contains(t, res.json(t)["errors"], "subject_ids[0]")
	for q, want := range map[string]int{"subject=m1": 1, "strain=c57bl%2F6j": 1, "q=night": 1, "subject=M9": 0,
		fmt.Sprintf("template=%d", tid): 1, fmt.Sprintf("template=%d&subject=m1", tid): 1, fmt.Sprintf("template=%d", tid+1): 0} {
		res = h.do("GET", "/api/recording-session?"+q, ann, nil)
		require.Equal(t, http.StatusOK, res.status)
		var list []any
		require.NoError(t, json.Unmarshal(res.body, &list))
		require.Len(t, list, want, q)
	}
	require.Equal(t, http.StatusBadRequest, h.do("GET", "/api/recording-session?q=%01", ann, nil).status)
	res = h.do("GET", "/api/recording-session?template=night", ann, nil)
	require.Equal(t, http.StatusBadRequest, res.status)
	require.Contains(t, res.json(t)["errors"], "template")

	// The manifest: JSON and CSV.
	res = h.do("GET", fmt.Sprintf("/api/recording-session/%d/manifest.json", sid), ann, nil)
	require.Equal(t, http.StatusOK, res.status)
	m := res.json(t)
	encl := m["enclosures"].([]any)[0].(map[string]any)
	require.Equal(t, "C3", encl["subject"].(map[string]any)["cage"])
	res = h.do("GET", fmt.Sprintf("/api/recording-session/%d/manifest.csv", sid), ann, nil)
	require.Equal(t, http.StatusOK, res.status)
	require.Contains(t, res.header.Get("Content-Disposition"), "manifest.csv")
	rows, err := csv.NewReader(bytes.NewReader(res.body)).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 3, "a header and one row per enclosure without files")
	require.Equal(t, "M1", rows[1][13])

	require.Equal(t, http.StatusNoContent, h.do("DELETE", tpl, ann, nil).status)
	require.Equal(t, http.StatusNotFound, h.do("POST", tpl+"/sessions", ann, map[string]any{}).status, "archived")
	require.Equal(t, http.StatusOK, h.do("GET", tpl, ann, nil).status, "its history stays")
	require.Equal(t, http.StatusNotFound, h.do("GET", "/api/templates/999", ann, nil).status)
}
