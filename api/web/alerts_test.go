package web

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/internal/recording"
)

// TestUIKnowsEveryAlertKind: the Alerts page's kind filter and the notification settings list
// the kinds from model.js; a kind added to the service without a label there would be missing.
func TestUIKnowsEveryAlertKind(t *testing.T) {
	model, err := files.ReadFile("static/js/model.js")
	require.NoError(t, err)
	for _, k := range recording.AlertKinds {
		require.Contains(t, string(model), "\n  "+string(k)+": ", "model.js kindLabels lacks %s", k)
	}
}

// TestUIKnowsEveryAuditAction: the audit log page's action filter and its rows label actions
// from model.js; an action added to the service without a label there would be missing from
// the filter.
func TestUIKnowsEveryAuditAction(t *testing.T) {
	model, err := files.ReadFile("static/js/model.js")
	require.NoError(t, err)
	for _, a := range recording.AuditActions {
		require.Contains(t, string(model), "\n  '"+string(a)+"': ", "model.js auditLabels lacks %s", a)
	}
}
