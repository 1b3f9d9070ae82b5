package api

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/internal/store"
)

// TestViewsKeepTheWireFormat: every body the view types send is byte for byte what the
// service sent before they existed, when it marshalled the store's types (testdata/views.golden
// was recorded from those, over the fixtures of views_fixture_test.go). A view that renames,
// drops, reorders or un-omits a field fails here.
func TestViewsKeepTheWireFormat(t *testing.T) {
	s := &Server{cfg: Config{Enclosures: EnclosureConfig{ClockSkewWarning: 30 * time.Second}, Alerts: AlertConfig{ChannelFailures: 2}}}
	got := map[string]any{}
	for _, full := range []bool{true, false} {
		k := fmt.Sprint(full)
		got["list/"+k] = views([]store.Session{fxSession(full)}, sessionView)
		created := sessionView(fxSession(full))
		created.Warnings = map[bool][]string{true: {"w1", "w2"}}[full]
		got["create/"+k] = created
		got["device/"+k] = views([]store.Device{fxDevice(full)}, s.deviceView)
		got["session_device/"+k] = sessionDeviceView(fxSession(full).DeviceStatuses[0])
		detail := sessionView(fxSession(full))
		for i := range detail.DeviceStatuses {
			files := fxFiles(full && i == 0)
			d := &detail.DeviceStatuses[i]
			d.Files = views(files, fileView)
			if d.Files != nil {
				d.Files[0].DownloadURL = "/api/files/11/NV7/cage_.avi?token=t"
			}
			sum := FilesSummaryView(store.Summarize(files))
			d.FilesSummary = &sum
		}
		got["detail/"+k] = detail
		got["alerts/"+k] = views([]store.Alert{fxAlert(full)}, alertView)
		got["alert/"+k] = alertView(fxAlert(full))
		got["alert_detail/"+k] = AlertDetailView{AlertView: alertView(fxAlert(full)),
			Events: views(map[bool][]store.AlertEvent{true: fxAlertEvents()}[full], alertEventView)}
	}
	got["alert_detail/empty"] = AlertDetailView{AlertView: alertView(fxAlert(false)), Events: views(fxAlertEvents()[:0], alertEventView)}
	got["channels"] = views(fxChannelHealth(), s.channelHealthView)
	got["events"] = views(fxEvents(), sessionEventView)
	got["users"] = views(fxUsers(), userView)
	got["user"] = userView(fxUsers()[0])
	got["telemetry"] = views(fxTelemetry(), telemetryPointView)
	got["agent"] = agentSessions(fxAgentSessions())

	golden, err := os.ReadFile("testdata/views.golden")
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(golden)), "\n")
	require.Len(t, lines, len(got))
	for _, line := range lines {
		name, want, _ := strings.Cut(line, "\t")
		raw, err := json.Marshal(got[name])
		require.NoError(t, err)
		require.Equal(t, want, string(raw), name)
	}
}
