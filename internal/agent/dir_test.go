package agent

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A zero-padded hostname's client writes NV7-…, not NV07-… (PROTOCOL.md 6); a lab with another
// layout tells the agent its directory.
func TestScanFindsTheDirectoryTheClientWrites(t *testing.T) {
	now := time.Date(2026, 11, 26, 15, 0, 0, 0, time.UTC)
	start, ended := now.Add(-3*time.Hour), now.Add(-2*time.Hour)
	old := now.Add(-time.Hour)
	m := &Manifest{Sessions: []ManifestSession{{SessionID: 1, StartedAt: start, EndedAt: &ended, Prefixes: []string{"m_"}}}}
	found := func(enclosure, dir string, subdirs ...string) []string {
		video := t.TempDir()
		for _, sub := range subdirs {
			writeFile(t, filepath.Join(video, sub, "2026-11-26", "m_timestamps.txt"), 10, old)
		}
		cfg, err := Config{ServerURL: "http://x", Token: "t", Enclosure: enclosure, EnclosureDir: dir, VideoDir: video,
			StateDir: t.TempDir(), Location: time.UTC}.withDefaults()
		require.NoError(t, err)
		got, err := newScanner(cfg).scan(m, now)
		require.NoError(t, err)
		var dirs []string
		for _, f := range got {
			rel, _ := filepath.Rel(video, f.path)
			dirs = append(dirs, strings.Split(rel, string(filepath.Separator))[0])
		}
		return dirs
	}
	require.Equal(t, []string{"NV7-lab"}, found("nv07", "", "NV7-lab", "NV07-lab", "NV17-lab"))
	require.Equal(t, []string{"NV10-rack"}, found("ltm-010", "", "NV10-rack", "NV010-rack"))
	require.Equal(t, []string{"cam-seven"}, found("nv07", "cam-seven", "NV7-lab", "cam-seven"))
	_, err := Config{ServerURL: "http://x", Token: "t", Enclosure: "nv07", EnclosureDir: "../x", VideoDir: "v", StateDir: "s"}.withDefaults()
	require.Error(t, err)
}
