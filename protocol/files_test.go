package protocol

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestMatchFile(t *testing.T) {
	for _, c := range []struct {
		prefix, name, kind string
	}{
		{"m_", "m_.avi", FileVideo},
		{"m_", "m_2026-11-26_14-23-05.avi", FileFragment},
		{"m_", "m_timestamps.txt", FileTimestamps},
		{"m_", "m_start_timestamp.txt", FileStartTimestamp},
		{"m_", "m_s2_timestamps.txt", ""},
		{"m_s2_", "m_s2_timestamps.txt", FileTimestamps},
		{"m_", "m_2026-13-26_14-23-05.avi", ""},
		{"m_", "m_2026-11-26_14-23-05.avi.part", ""},
		{"m_", "x_.avi", ""},
		{"m_", "m_.AVI", ""},
	} {
		kind, ok := MatchFile(c.prefix, c.name)
		require.Equal(t, c.kind, kind, "%s %s", c.prefix, c.name)
		require.Equal(t, c.kind != "", ok)
	}
}

func TestSegmentPrefixes(t *testing.T) {
	require.Equal(t, []string{"m_", "m_s2_", "m_s3_"}, SegmentFileNamePrefixes("m", 3))
	require.Equal(t, []string{"m_", "m__s2_"}, SegmentFileNamePrefixes("m_", 2))
	require.Equal(t, []string{"m_"}, SegmentFileNamePrefixes("m", 0))
}

func TestFragmentNames(t *testing.T) {
	zone := time.FixedZone("IST", 5*3600+1800)
	start := time.Date(2026, 11, 26, 14, 23, 5, 0, zone)
	require.Equal(t, []string{"p_2026-11-26_14-23-05.avi", "p_2026-11-26_15-00-00.avi", "p_2026-11-26_16-00-00.avi"},
		FragmentNames("p_", start, 2*time.Hour))
	// A recording ending exactly at the top of the hour opens no empty fragment.
	require.Equal(t, []string{"p_2026-11-26_14-23-05.avi"}, FragmentNames("p_", start, 37*time.Minute-5*time.Second))
	require.Len(t, FragmentNames("p_", start, 7*24*time.Hour), 7*24+1)
}

func TestParseTimestampFiles(t *testing.T) {
	start, err := ParseStartTimestamp([]byte("2026-11-26T14:23:05.123456+01:00\n"))
	require.NoError(t, err)
	require.Equal(t, 3600, func() int { _, off := start.Zone(); return off }())
	_, err = ParseStartTimestamp([]byte("yesterday"))
	require.ErrorContains(t, err, "RFC 3339")

	d, err := ParseLastTimestamp([]byte("0.000000\n0.033333\n7199.966667\n"))
	require.NoError(t, err)
	require.Equal(t, 7199966667*time.Microsecond, d.Round(time.Microsecond))
	d, err = ParseLastTimestamp(nil)
	require.NoError(t, err)
	require.Zero(t, d)
	_, err = ParseLastTimestamp([]byte("1.0\nNaN-ish\n"))
	require.Error(t, err)
}

func FuzzMatchFile(f *testing.F) {
	f.Add("m_", "m_2026-11-26_14-23-05.avi")
	f.Add("m_", "m_s2_timestamps.txt")
	f.Fuzz(func(t *testing.T, prefix, name string) {
		kind, ok := MatchFile(prefix, name)
		if ok != (kind != "") {
			t.Fatalf("ok %v with kind %q", ok, kind)
		}
		if ok && len(name) <= len(prefix) {
			t.Fatalf("%q matched with prefix %q but adds nothing", name, prefix)
		}
	})
}

func FuzzParseTimestamps(f *testing.F) {
	f.Add([]byte("2026-11-26T14:23:05.123456+01:00\n"))
	f.Add([]byte("0.0\n1.5\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ParseStartTimestamp(data)
		if d, err := ParseLastTimestamp(data); err == nil && d < 0 {
			t.Fatalf("negative duration %v", d)
		}
	})
}

// The client's directory is "NV" + std::to_string(std::stoi(trailing digits)) (PROTOCOL.md 6).
func TestEnclosureDir(t *testing.T) {
	for _, c := range []struct{ host, want string }{
		{"nv07", "NV7-lab"}, {"NV12", "NV12-lab"}, {"ltm-007", "NV7-lab"}, {"nv010", "NV10-lab"},
		{"nv1", "NV1-lab"}, {"nv00", "NV0-lab"}, {"lab-enc-007", "NV7-lab"}, {"rack2-nv100", "NV100-lab"},
		{"1234", "NV0-lab"}, {"9", "NV0-lab"}, // digits only: seen writing NV0
		{"host", "NV-lab"}, {"", "NV-lab"}, // no trailing digit: the client aborts at start
	} {
		require.Equal(t, c.want, EnclosureDir(c.host, "lab"), c.host)
	}
	require.Equal(t, "NV12-", EnclosureDirPrefix("NV12"))
	require.Equal(t, "NV7-", EnclosureDirPrefix("nv007"))
}
