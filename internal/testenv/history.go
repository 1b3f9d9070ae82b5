package testenv

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"
)

// RecordHistory writes a finished workflow run's history (runID "": the latest run) to
// $MBA_RECORD_HISTORIES/<name>.json, for the replay tests in workflows/testdata (make
// record-histories); without the variable it does nothing.
func RecordHistory(t testing.TB, c client.Client, workflowID, runID, name string) {
	dir := os.Getenv("MBA_RECORD_HISTORIES")
	if dir == "" {
		return
	}
	t.Helper()
	var h historypb.History
	it := c.GetWorkflowHistory(context.Background(), workflowID, runID, false, 0)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		h.Events = append(h.Events, ev)
	}
	raw, err := protojson.MarshalOptions{Indent: " "}.Marshal(&h)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+".json"), raw, 0o644))
}
