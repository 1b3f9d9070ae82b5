package protocol

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Files the client writes (PROTOCOL.md section 6). With prefix P (the client appends '_'):
// P.avi, or hourly fragments P<YYYY-MM-DD_HH-MM-SS>.avi, plus Ptimestamps.txt and
// Pstart_timestamp.txt.

// File kinds.
const (
	FileVideo          = "video"           // P.avi
	FileFragment       = "fragment"        // P<local time>.avi
	FileTimestamps     = "timestamps"      // Ptimestamps.txt
	FileStartTimestamp = "start_timestamp" // Pstart_timestamp.txt
)

// FragmentTimeLayout is the local time in an hourly fragment's name.
const FragmentTimeLayout = "2006-01-02_15-04-05"

const (
	timestampsSuffix      = "timestamps.txt"
	startTimestampSuffix  = "start_timestamp.txt"
	videoSuffix           = ".avi"
	maxSegmentsInFileName = 1000
)

// EnclosureDir is the directory under the video directory where the client of enclosure
// hostname writes: NV<n>-<location>.
func EnclosureDir(hostname, location string) string {
	return EnclosureDirPrefix(hostname) + location
}

// EnclosureDirPrefix is how the directories of enclosure hostname begin, whatever the location:
// "NV" + std::to_string(std::stoi(trailing digits)) + "-", as the client computes it, so the
// value loses its leading zeros (nv07 writes NV7-, ltm-007 NV7-, nv010 NV10-). A hostname of
// digits only was seen writing NV0- (PROTOCOL.md section 6); one without trailing digits makes
// the client abort, and gets "NV-" here.
func EnclosureDirPrefix(hostname string) string {
	i := len(hostname)
	for i > 0 && hostname[i-1] >= '0' && hostname[i-1] <= '9' {
		i--
	}
	digits := hostname[i:]
	switch {
	case digits == "":
	case i == 0:
		digits = "0"
	default:
		digits = strings.TrimLeft(digits, "0")
		if digits == "" {
			digits = "0"
		}
	}
	return "NV" + digits + "-"
}

// FileNamePrefix is how the client begins file names for a START's file_prefix.
func FileNamePrefix(filePrefix string) string {
	if strings.HasSuffix(filePrefix, "_") {
		return filePrefix
	}
	return filePrefix + "_"
}

// SegmentPrefix is the START file_prefix of segment n (1 = the first recording; later ones are
// resumes after a reboot, which must not overwrite the earlier files).
func SegmentPrefix(filePrefix string, n int) string {
	if n <= 1 {
		return filePrefix
	}
	return fmt.Sprintf("%s_s%d", filePrefix, n)
}

// SegmentFileNamePrefixes lists the file name prefixes of segments 1..n.
func SegmentFileNamePrefixes(filePrefix string, n int) []string {
	n = max(1, min(n, maxSegmentsInFileName))
	out := make([]string, n)
	for i := range out {
		out[i] = FileNamePrefix(SegmentPrefix(filePrefix, i+1))
	}
	return out
}

// MatchFile reports the kind of file name for the file name prefix p, or ok=false when name
// is not one of the files the client writes with p. Matching is exact: with p "m_", the file
// "m_s2_timestamps.txt" belongs to the resumed segment's prefix "m_s2_", not to "m_".
func MatchFile(p, name string) (kind string, ok bool) {
	rest, found := strings.CutPrefix(name, p)
	if !found {
		return "", false
	}
	switch rest {
	case videoSuffix:
		return FileVideo, true
	case timestampsSuffix:
		return FileTimestamps, true
	case startTimestampSuffix:
		return FileStartTimestamp, true
	}
	stamp, found := strings.CutSuffix(rest, videoSuffix)
	if !found || len(stamp) != len(FragmentTimeLayout) {
		return "", false
	}
	if _, err := time.Parse(FragmentTimeLayout, stamp); err != nil {
		return "", false
	}
	return FileFragment, true
}

// SegmentFiles are the names of the fixed files of prefix p: the video when not hourly, and
// the two timestamp files.
func SegmentFiles(p string, hourly bool) []string {
	names := []string{p + startTimestampSuffix, p + timestampsSuffix}
	if !hourly {
		names = append(names, p+videoSuffix)
	}
	return names
}

// FragmentNames are the hourly fragments of a recording of p that started at start (the
// enclosure's local time) and lasted recorded: the first is named after the start, the others
// after each local top of the hour before the end.
func FragmentNames(p string, start time.Time, recorded time.Duration) []string {
	names := []string{p + start.Format(FragmentTimeLayout) + videoSuffix}
	end := start.Add(recorded)
	// The local top of the hour (Truncate would round in absolute time: wrong for +05:30).
	next := time.Date(start.Year(), start.Month(), start.Day(), start.Hour(), 0, 0, 0, start.Location())
	for next = next.Add(time.Hour); next.Before(end); next = next.Add(time.Hour) {
		names = append(names, p+next.Format(FragmentTimeLayout)+videoSuffix)
	}
	return names
}

// ParseStartTimestamp reads Pstart_timestamp.txt: the local time the recording started, as
// RFC 3339 (fractional seconds allowed) on the first line.
func ParseStartTimestamp(data []byte) (time.Time, error) {
	line, _, _ := strings.Cut(string(data), "\n")
	line = strings.TrimSpace(line)
	t, err := time.Parse(time.RFC3339Nano, line)
	if err != nil {
		return time.Time{}, fmt.Errorf("start timestamp %q is not an RFC 3339 time", truncate(line, 64))
	}
	return t, nil
}

// ParseLastTimestamp reads the tail of Ptimestamps.txt (one line per frame, seconds since the
// first frame) and returns the last frame's offset: how long was recorded.
func ParseLastTimestamp(tail []byte) (time.Duration, error) {
	s := strings.TrimRight(string(tail), "\r\n ")
	if s == "" {
		return 0, nil // no frame
	}
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	s = strings.TrimSpace(s)
	secs, err := strconv.ParseFloat(s, 64)
	if err != nil || !(secs >= 0 && secs <= 1e9) { // also refuses NaN
		return 0, fmt.Errorf("last timestamp %q is not a number of seconds", truncate(s, 64))
	}
	return time.Duration(secs * float64(time.Second)), nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
