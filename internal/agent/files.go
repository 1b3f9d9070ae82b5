package agent

import (
	"github.com/jax-mba/mba/protocol"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// matchName finds the prefix (index into prefixes) whose file name is, with the kind of the
// client's file (protocol.MatchFile) and, for an hourly fragment, its time stamp. A P.avi of
// an hourly session, or a fragment of a non-hourly one, is not the session's.
func matchName(name string, prefixes []string, hourly bool) (idx int, kind, stamp string, ok bool) {
	for i, p := range prefixes {
		if p == "" {
			continue
		}
		kind, ok := protocol.MatchFile(p, name)
		switch {
		case !ok, kind == protocol.FileVideo && hourly, kind == protocol.FileFragment && !hourly:
			continue
		case kind == protocol.FileFragment:
			stamp = name[len(p) : len(p)+len(protocol.FragmentTimeLayout)]
		}
		return i, kind, stamp, true
	}
	return 0, "", "", false
}

// localFile is a file of the client that belongs to a session of the manifest.
type localFile struct {
	path, name string
	session    *ManifestSession
	prefix     int    // index into session.Prefixes
	kind       string // protocol.FileVideo, FileFragment, ...
	stamp      string // fragment time (protocol.FileFragment)
	size       int64
	mtime      time.Time
	finished   bool
}

// seen is when a file was first observed with its current size and mtime.
type seen struct {
	size  int64
	mtime time.Time
	since time.Time
}

// scanner finds the client's files and decides which are finished. It remembers when each file
// was first seen unchanged, so that "stable for StableFor" needs no clock agreement.
type scanner struct {
	cfg  Config
	seen map[string]seen
}

func newScanner(cfg Config) *scanner { return &scanner{cfg: cfg, seen: map[string]seen{}} }

// ownDir reports whether a directory of the video directory is this enclosure's: the one it
// was told, or NV<stoi(trailing digits of its name)>-<location> as the client names it. On a
// shared disk, another enclosure's files with the same prefix are never this one's.
func (sc *scanner) ownDir(name string) bool {
	if sc.cfg.EnclosureDir != "" {
		return name == sc.cfg.EnclosureDir
	}
	return sc.cfg.Enclosure == "" || strings.HasPrefix(name, protocol.EnclosureDirPrefix(sc.cfg.Enclosure))
}

// scan returns every file of the manifest's sessions found under the video directory, finished
// or not. A file is given to at most one session: sessions are tried newest first, and a file
// last modified before a session started (less ClockSlack) is left to older sessions, so a
// prefix re-used on another day never hands one session's files to the other.
func (sc *scanner) scan(m *Manifest, now time.Time) ([]localFile, error) {
	subs, err := os.ReadDir(sc.cfg.VideoDir)
	if err != nil {
		return nil, err
	}
	sessions := make([]*ManifestSession, 0, len(m.Sessions))
	for i := range m.Sessions {
		sessions = append(sessions, &m.Sessions[i])
	}
	sort.SliceStable(sessions, func(i, j int) bool { return sessions[i].StartedAt.After(sessions[j].StartedAt) })

	listed := map[string][]os.DirEntry{}
	list := func(dir string) []os.DirEntry {
		if e, ok := listed[dir]; ok {
			return e
		}
		e, _ := os.ReadDir(dir) // a date directory that does not exist is simply empty
		listed[dir] = e
		return e
	}
	assigned := map[string]bool{}
	var out []localFile
	present := map[string]seen{}
	for _, s := range sessions {
		if len(s.Prefixes) == 0 {
			continue
		}
		byName := map[string]int{} // index into out, this session only
		first := len(out)
		for _, day := range sc.days(s, now) {
			for _, sub := range subs {
				if !sub.IsDir() || !sc.ownDir(sub.Name()) {
					continue
				}
				dir := filepath.Join(sc.cfg.VideoDir, sub.Name(), day)
				for _, e := range list(dir) {
					if !e.Type().IsRegular() {
						continue
					}
					path := filepath.Join(dir, e.Name())
					if assigned[path] {
						continue
					}
					idx, kind, stamp, ok := matchName(e.Name(), s.Prefixes, s.FragmentHourly)
					if !ok {
						continue
					}
					info, err := e.Info()
					if err != nil {
						continue // removed meanwhile
					}
					if info.ModTime().Before(s.StartedAt.Add(-sc.cfg.ClockSlack)) {
						continue // older than the session: an earlier session's file
					}
					f := localFile{path: path, name: e.Name(), session: s, prefix: idx, kind: kind, stamp: stamp,
						size: info.Size(), mtime: info.ModTime()}
					if j, dup := byName[f.name]; dup {
						// The same name in two directories: keep the newer, leave the other.
						if !f.mtime.After(out[j].mtime) {
							continue
						}
						delete(assigned, out[j].path)
						out[j] = f
					} else {
						byName[f.name] = len(out)
						out = append(out, f)
					}
					assigned[path] = true
				}
			}
		}
		sc.finish(s, out[first:], now, present)
	}
	sc.seen = present
	return out, nil
}

// days lists the date directories a session's files may be in: from the local date of its
// start minus one day (clock and time-zone slack) to the local date of its end (or now).
func (sc *scanner) days(s *ManifestSession, now time.Time) []string {
	end := now
	if s.EndedAt != nil && !s.EndedAt.IsZero() {
		end = *s.EndedAt
	}
	loc := sc.cfg.Location
	st := s.StartedAt.In(loc)
	from := time.Date(st.Year(), st.Month(), st.Day(), 12, 0, 0, 0, loc).AddDate(0, 0, -1)
	en := end.In(loc)
	// A day either side: an enclosure clock that is off, or a recording that crossed midnight
	// by the enclosure's clock but not by the server's.
	to := time.Date(en.Year(), en.Month(), en.Day(), 12, 0, 0, 0, loc).AddDate(0, 0, 1)
	var days []string
	for d := from; !d.After(to) && len(days) < 400; d = d.AddDate(0, 0, 1) {
		days = append(days, d.Format("2006-01-02"))
	}
	if len(days) < 2 { // end before start (clock trouble): at least the start's date and the day before
		days = []string{from.Format("2006-01-02"), from.AddDate(0, 0, 1).Format("2006-01-02")}
	}
	return days
}

// finish marks the session's finished files: an hourly fragment once a later fragment of the
// same prefix exists; anything else once the prefix's recording is over (the session stopped
// recording, or a later segment prefix exists) and the file has not changed for StableFor.
func (sc *scanner) finish(s *ManifestSession, files []localFile, now time.Time, present map[string]seen) {
	last := map[int]string{} // newest fragment stamp per prefix
	for _, f := range files {
		if f.kind == protocol.FileFragment && f.stamp > last[f.prefix] {
			last[f.prefix] = f.stamp
		}
	}
	for i := range files {
		f := &files[i]
		st, ok := sc.seen[f.path]
		if !ok || st.size != f.size || !st.mtime.Equal(f.mtime) {
			st = seen{size: f.size, mtime: f.mtime, since: now}
		}
		present[f.path] = st
		if f.kind == protocol.FileFragment && f.stamp < last[f.prefix] {
			f.finished = true
			continue
		}
		ended := !s.Recording || f.prefix < len(s.Prefixes)-1
		age := now.Sub(f.mtime)
		stable := now.Sub(st.since) >= sc.cfg.StableFor || age >= sc.cfg.StableFor
		f.finished = ended && stable
	}
}
