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
