package agent

import (
	"bytes"
	"github.com/jax-mba/mba/protocol"
	"strings"
	"testing"
)

var suffixes = []string{".avi", "timestamps.txt", "start_timestamp.txt", "2026-11-26_10-00-00.avi"}

// FuzzMatchName: whatever the names and prefixes, a match is exactly prefix + a client suffix,
// and a name built from a prefix ending in "_" matches that prefix and no other.
func FuzzMatchName(f *testing.F) {
	f.Add("m_s2_timestamps.txt", "m_", "m_s2_", true)
	f.Add("m_2026-11-26_10-00-00.avi", "m_", "m_2026-11-26_", true)
	f.Add("a_start_timestamp.txt", "a_", "a_start_", false)
	f.Add("x_.avi", "x_", "x_.avi", false)
	f.Fuzz(func(t *testing.T, name, p1, p2 string, hourly bool) {
		prefixes := []string{p1, p2}
		idx, kind, stamp, ok := matchName(name, prefixes, hourly)
		if ok {
			p := prefixes[idx]
			rest, found := strings.CutPrefix(name, p)
			if !found || p == "" {
				t.Fatalf("%q matched %q", name, p)
			}
			switch kind {
			case protocol.FileVideo:
				if rest != ".avi" || hourly {
					t.Fatalf("%q: video with rest %q hourly=%v", name, rest, hourly)
				}
			case protocol.FileTimestamps:
				if rest != "timestamps.txt" {
					t.Fatalf("%q: timestamps with rest %q", name, rest)
				}
			case protocol.FileStartTimestamp:
				if rest != "start_timestamp.txt" {
					t.Fatalf("%q: start timestamp with rest %q", name, rest)
				}
			case protocol.FileFragment:
				if !hourly || rest != stamp+".avi" || len(stamp) != len(protocol.FragmentTimeLayout) {
					t.Fatalf("%q: fragment with rest %q stamp %q", name, rest, stamp)
				}
			}
		}
		// Round trip: for prefixes ending in "_" (the client adds it), p + suffix is p's.
		for i, p := range prefixes {
			if !strings.HasSuffix(p, "_") || !validPrefix(p) {
				continue
			}
			for _, s := range suffixes {
				if (s == ".avi" && hourly) || (s != ".avi" && strings.HasSuffix(s, ".avi") && !hourly) {
					continue
				}
				j, _, _, ok := matchName(p+s, prefixes, hourly)
				if !ok {
					t.Fatalf("%q does not match %q", p+s, p)
				}
				if prefixes[j] != p {
					t.Fatalf("%q matched %q, not %q (index %d)", p+s, prefixes[j], p, i)
				}
			}
		}
	})
}

// FuzzDecodeManifest: any body decodes or fails without panicking, and no prefix that could
// leave the date directory survives.
func FuzzDecodeManifest(f *testing.F) {
	f.Add([]byte(`{"enclosure":"NV1","sessions":[{"session_id":12,"started_at":"2026-11-26T10:00:00Z","ended_at":null,"recording":true,"fragment_hourly":true,"prefixes":["mouse1_","mouse1_s2_"],"files":[{"name":"mouse1_timestamps.txt","state":"UPLOADING","size":123,"sha256":"ab","upload_url":"/api/agent/uploads/x","reupload":false}]}]}`))
	f.Add([]byte(`{"sessions":[{"prefixes":["../x_","a/b_","", ".", "ok_"]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := decodeManifest(bytes.NewReader(body))
		if err != nil {
			return
		}
		for _, s := range m.Sessions {
			for _, p := range s.Prefixes {
				if !validPrefix(p) || strings.ContainsAny(p, "/\\\x00") {
					t.Fatalf("prefix %q kept", p)
				}
			}
		}
	})
}
