package activities

import (
	"context"

	"go.temporal.io/sdk/activity"
)

// ManifestWriter stores a session's manifest beside its files (manifest.Writer).
type ManifestWriter interface {
	Write(ctx context.Context, sessionID int64) error
}

// Manifests holds the activity that writes session manifests.
type Manifests struct {
	Writer ManifestWriter // nil: no file storage, nothing to write beside
}

// WriteManifest (re)writes the session's manifest.json and manifest.csv as the read model has
// them now; idempotent, so a retry or a second run only writes the same files again.
func (m *Manifests) WriteManifest(ctx context.Context, sessionID int64) error {
	if m.Writer == nil {
		activity.GetLogger(ctx).Info("no file storage: no manifest written", "session", sessionID)
		return nil
	}
	return m.Writer.Write(ctx, sessionID)
}
