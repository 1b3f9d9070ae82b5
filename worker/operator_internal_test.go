package worker

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestResetBy: a reset's event names the authenticated user in its reason (the server writes it
// as history-service); with none, the timeline says so rather than name the server.
func TestResetBy(t *testing.T) {
	for _, tc := range []struct{ identity, message, who, reason string }{
		{"history-service", "olga@lab.example: replaying after a fix", "olga@lab.example", "replaying after a fix"},
		{"history-service", "<unknown-user>: replaying after a fix", "an operator (Temporal recorded no user)", "replaying after a fix"},
		{"history-service", "replaying after a fix: see ticket 12", "an operator (Temporal recorded no user)", "replaying after a fix: see ticket 12"},
		{"ops-olga", "", "ops-olga", ""},
	} {
		who, reason := resetBy(tc.identity, tc.message)
		require.Equal(t, tc.who, who, tc.message)
		require.Equal(t, tc.reason, reason, tc.message)
	}
}
