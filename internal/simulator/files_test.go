package simulator

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

func mustGlob(t *testing.T, dir, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, pattern))
	require.NoError(t, err)
	return m
}

func lines(t *testing.T, path string) []string {
	t.Helper()
	return strings.Split(strings.TrimSuffix(string(readFile(t, path)), "\n"), "\n")
}

// With a fixed clock: fragments follow the local hour (a +05:30 zone, so not the UTC hour),
// the directory carries the day the session started, the prefix gets its underscore.
func TestVideoFilesHourlyFragments(t *testing.T) {
	dir := t.TempDir()
	ist := time.FixedZone("IST", 5*3600+1800)
	start := time.Date(2025, 3, 4, 23, 30, 12, 500_000_000, ist)
	p := startParams{SessionID: 3, Duration: 7200, FragmentHourly: true, FilePrefix: "cage7", TargetFPS: 30}
	f, err := newVideoFiles(dir, "lab-enc-012", "rack 2", ist, p, start.UTC(), 30, 4)
	require.NoError(t, err)

	for _, m := range []time.Duration{10 * time.Minute, 29*time.Minute + 47*time.Second, 31 * time.Minute, 95 * time.Minute} {
		require.NoError(t, f.writeUntil(start.Add(m)))
	}
	require.NoError(t, f.finish(start.Add(2*time.Hour)))

	day := filepath.Join(dir, "NV12-rack 2", "2025-03-04") // stoi: the zeros go
	entries, err := os.ReadDir(day)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.ElementsMatch(t, []string{
		"cage7_2025-03-04_23-30-12.avi",
		"cage7_2025-03-05_00-00-00.avi",
		"cage7_2025-03-05_01-00-00.avi",
		"cage7_timestamps.txt",
		"cage7_start_timestamp.txt",
	}, names)
	// The first fragment runs to the top of the hour: 1787 whole seconds of 4 bytes.
	first := readFile(t, filepath.Join(day, "cage7_2025-03-04_23-30-12.avi"))
	assert.Len(t, first, len(aviHeader)+1787*4+len(aviTrailer))
	for _, n := range names {
		if strings.HasSuffix(n, ".avi") {
			assert.True(t, finalised(t, filepath.Join(day, n)), n)
		}
	}
	assert.Equal(t, "2025-03-04T23:30:12.500000+05:30\n", string(readFile(t, filepath.Join(day, "cage7_start_timestamp.txt"))))
	// 30 fps x 7200 s is above maxFrameLines: one line per simulated second.
	ts := lines(t, filepath.Join(day, "cage7_timestamps.txt"))
	require.Len(t, ts, 7200)
	assert.Equal(t, "0.000000", ts[0])
	assert.Equal(t, "7199.000000", ts[7199])
}

func TestVideoFilesSingleFilePerFrameAndUnfinalised(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2025, 6, 1, 8, 59, 59, 0, time.UTC)
	p := startParams{Duration: 2, FilePrefix: "m_", TargetFPS: 10}
	f, err := newVideoFiles(dir, "NV5", "", time.UTC, p, start, 10, 4)
	require.NoError(t, err)
	require.NoError(t, f.writeUntil(start.Add(1500*time.Millisecond)))
	day := filepath.Join(dir, "NV5-", "2025-06-01")
	avi := filepath.Join(day, "m_.avi")
	assert.False(t, finalised(t, avi), "not finalised while being written (or after a reboot)")
	ts := lines(t, filepath.Join(day, "m_timestamps.txt"))
	assert.Len(t, ts, 15)

	require.NoError(t, f.finish(start.Add(2*time.Second)))
	assert.True(t, finalised(t, avi))
	ts = lines(t, filepath.Join(day, "m_timestamps.txt"))
	require.Len(t, ts, 20)
	assert.Equal(t, "0.100000", ts[1])
	assert.Equal(t, "1.900000", ts[19])
	assert.Len(t, mustGlob(t, day, "*.avi"), 1, "no hourly split across 09:00 without fragment_hourly")
}

// End to end: a 2-hour recording compressed into about 2 s, crossing midnight.
func TestTimeScaleCompressesHourlyRecording(t *testing.T) {
	srv := newTestServer(t)
	cfg := testConfig(t, srv)
	cfg.TimeScale, cfg.Zone, cfg.VideoDir, cfg.Location = 3600, time.UTC, t.TempDir(), "roomA"
	cfg.SimStart = time.Date(2025, 3, 4, 23, 30, 0, 0, time.UTC)
	cfg.NamePrefix, cfg.FirstNumber = "NV", 7
	srv.assign("NV7", startParams{Duration: 7200, FragmentHourly: true, FilePrefix: "cage", TargetFPS: 30})
	t0 := time.Now()
	sim := startSim(t, cfg)

	eventually(t, func() bool { return srv.snapshot("NV7").result != "" })
	took := time.Since(t0)
	assert.Greater(t, took, 1900*time.Millisecond)
	assert.Less(t, took, 5*time.Second)
	d := srv.snapshot("NV7")
	assert.Equal(t, "finished", d.result)
	assert.Equal(t, int64(7200), d.finalDur)

	day := filepath.Join(cfg.VideoDir, "NV7-roomA", "2025-03-04")
	avis := mustGlob(t, day, "*.avi")
	require.Len(t, avis, 3, "%v", avis)
	// START lands within the first interval (20 ms = 72 simulated s) after 23:30:00.
	assert.Regexp(t, regexp.MustCompile(`/cage_2025-03-04_23-3[01]-\d\d\.avi$`), avis[0])
	assert.True(t, strings.HasSuffix(avis[1], "/cage_2025-03-05_00-00-00.avi"), avis[1])
	assert.True(t, strings.HasSuffix(avis[2], "/cage_2025-03-05_01-00-00.avi"), avis[2])
	for _, a := range avis {
		assert.True(t, finalised(t, a), a)
	}
	assert.Len(t, lines(t, filepath.Join(day, "cage_timestamps.txt")), 7200)
	assert.FileExists(t, filepath.Join(day, "cage_start_timestamp.txt"))
	assert.Zero(t, sim.Stats().Violations)
}
