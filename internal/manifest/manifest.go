// Package manifest describes a recording session for analysis pipelines: its enclosures and
// their subjects, segments and gaps, and every file with its size, SHA-256 and state, as JSON
// and as CSV (one row per file). The API serves it, and Writer stores it beside the session's
// files (sessions/<id>/manifest.json and manifest.csv) when the session ends and whenever a
// subject is edited after the end.
package manifest

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/storage"
	"github.com/jax-mba/mba/internal/store"
)

// Format is the manifest's version, for pipelines that read it.
const Format = 1

// Manifest is the document (its own type: neither the REST body nor a table row).
type Manifest struct {
	Format      int         `json:"format"`
	SessionID   int64       `json:"session_id"`
	Name        string      `json:"name"`
	Status      string      `json:"status"`
	CreatedAt   time.Time   `json:"created_at"`
	EndedAt     *time.Time  `json:"ended_at"`
	Duration    int64       `json:"duration"`
	TargetFPS   int         `json:"target_fps"`
	Template    *Template   `json:"template"`
	Enclosures  []Enclosure `json:"enclosures"`
	GeneratedAt time.Time   `json:"generated_at"`
}

// Template names the template version the session was made from.
type Template struct {
	ID      int64  `json:"id"`
	Version int    `json:"version"`
	Name    string `json:"name"`
}

// Enclosure is one enclosure's part in the session.
type Enclosure struct {
	Name          string     `json:"name"`
	DeviceID      int64      `json:"device_id"`
	FilePrefix    string     `json:"file_prefix"`
	Status        string     `json:"status"`
	StartedAt     *time.Time `json:"started_at"`
	EndedAt       *time.Time `json:"ended_at"`
	RecordingTime int64      `json:"recording_time"`
	Segments      int        `json:"segments"`
	SecondsLost   int64      `json:"seconds_lost"`
	Gaps          []Gap      `json:"gaps"`
	Subject       *Subject   `json:"subject"`
	Files         []File     `json:"files"`
}

// Gap is a time the enclosure did not record.
type Gap struct {
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	Seconds int64     `json:"seconds"`
}

// Subject is who was in the enclosure.
type Subject struct {
	SubjectIDs  []string          `json:"subject_ids"`
	Strain      string            `json:"strain"`
	Sex         string            `json:"sex"`
	DateOfBirth string            `json:"date_of_birth"` // YYYY-MM-DD or ""
	Cage        string            `json:"cage"`
	Extra       map[string]string `json:"extra"`
	Notes       string            `json:"notes"`
}

// File is one file of the enclosure's recording, keyed in storage as Key.
type File struct {
	Name   string `json:"name"`
	Key    string `json:"key"`
	State  string `json:"state"`
	Size   *int64 `json:"size"`
	SHA256 string `json:"sha256"`
}

// Build puts a session's manifest together.
func Build(x store.Session, subjects map[int64]recording.Subject, files []store.SessionFile, now time.Time) Manifest {
	m := Manifest{Format: Format, SessionID: x.ID, Name: x.Name, Status: string(x.Status), CreatedAt: x.CreationTime,
		EndedAt: x.EndedAt, Duration: x.Duration, TargetFPS: x.TargetFPS, Enclosures: []Enclosure{}, GeneratedAt: now.UTC()}
	if x.Template != nil {
		m.Template = &Template{ID: x.Template.ID, Version: x.Template.Version, Name: x.Template.Name}
	}
	byDevice := map[int64][]store.SessionFile{}
	for _, f := range files {
		byDevice[f.DeviceID] = append(byDevice[f.DeviceID], f)
	}
	for _, d := range x.DeviceStatuses {
		e := Enclosure{Name: d.Device.Name, DeviceID: d.Device.ID, FilePrefix: d.FilenamePrefix, Status: string(d.Status),
			StartedAt: d.StartedAt, EndedAt: d.EndedAt, RecordingTime: d.RecordingTime, Segments: d.Segments,
			SecondsLost: d.SecondsLost, Gaps: []Gap{}, Files: []File{}}
		for _, g := range d.Gaps {
			e.Gaps = append(e.Gaps, Gap(g))
		}
		if s, ok := subjects[d.Device.ID]; ok {
			e.Subject = subjectOf(s)
		}
		for _, f := range byDevice[d.Device.ID] {
			e.Files = append(e.Files, File{Name: f.Name, Key: storage.Key(x.ID, d.Device.Name, f.Name), State: string(f.State),
				Size: f.Size, SHA256: deref(f.SHA256)})
		}
		m.Enclosures = append(m.Enclosures, e)
	}
	return m
}

func subjectOf(s recording.Subject) *Subject {
	v := &Subject{SubjectIDs: s.IDs, Strain: s.Strain, Sex: s.Sex, Cage: s.Cage, Extra: s.Extra, Notes: s.Notes}
	if v.SubjectIDs == nil {
		v.SubjectIDs = []string{}
	}
	if v.Extra == nil {
		v.Extra = map[string]string{}
	}
	if s.DateOfBirth != nil {
		v.DateOfBirth = s.DateOfBirth.Format(time.DateOnly)
	}
	return v
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// JSON is the manifest as indented JSON.
func (m Manifest) JSON() []byte {
	raw, _ := json.MarshalIndent(m, "", "  ") // plain structs always encode
	return append(raw, '\n')
}

// csvHeader are the CSV's columns: one row per file, or one per enclosure without files, with
// the enclosure and its subject repeated on each (a spreadsheet filters by any column).
var csvHeader = []string{"session_id", "session_name", "session_status", "template", "enclosure", "enclosure_status",
	"file_prefix", "started_at", "ended_at", "recording_time", "segments", "seconds_lost", "gaps",
	"subject_ids", "strain", "sex", "date_of_birth", "cage", "extra", "subject_notes",
	"file", "key", "file_state", "size", "sha256"}

// CSV is the manifest as CSV.
func (m Manifest) CSV() []byte {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write(csvHeader)
	template := ""
	if m.Template != nil {
		template = fmt.Sprintf("%s v%d", m.Template.Name, m.Template.Version)
	}
	for _, e := range m.Enclosures {
		row := []string{strconv.FormatInt(m.SessionID, 10), m.Name, m.Status, template, e.Name, e.Status, e.FilePrefix,
			timeText(e.StartedAt), timeText(e.EndedAt), strconv.FormatInt(e.RecordingTime, 10), strconv.Itoa(e.Segments),
			strconv.FormatInt(e.SecondsLost, 10), gapsText(e.Gaps)}
		s := e.Subject
		if s == nil {
			s = &Subject{}
		}
		row = append(row, strings.Join(s.SubjectIDs, ";"), s.Strain, s.Sex, s.DateOfBirth, s.Cage, extraText(s.Extra), s.Notes)
		if len(e.Files) == 0 {
			_ = w.Write(append(row, "", "", "", "", ""))
			continue
		}
		for _, f := range e.Files {
			size := ""
			if f.Size != nil {
				size = strconv.FormatInt(*f.Size, 10)
			}
			_ = w.Write(append(slices.Clone(row), f.Name, f.Key, f.State, size, f.SHA256))
		}
	}
	w.Flush()
	return buf.Bytes()
}

func timeText(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// gapsText: from/to pairs separated by ';'.
func gapsText(gaps []Gap) string {
	parts := make([]string, len(gaps))
	for i, g := range gaps {
		parts[i] = g.From.UTC().Format(time.RFC3339) + "/" + g.To.UTC().Format(time.RFC3339)
	}
	return strings.Join(parts, ";")
}

// extraText: key=value pairs in key order, separated by ';'.
func extraText(extra map[string]string) string {
	parts := make([]string, 0, len(extra))
	for _, k := range slices.Sorted(maps.Keys(extra)) {
		parts = append(parts, k+"="+extra[k])
	}
	return strings.Join(parts, ";")
}

// Keys where the manifest is stored, beside the session's enclosure folders.
func Keys(sessionID int64) (jsonKey, csvKey string) {
	dir := "sessions/" + strconv.FormatInt(sessionID, 10) + "/"
	return dir + "manifest.json", dir + "manifest.csv"
}

// Source reads what a manifest is made of.
type Source interface {
	Session(ctx context.Context, id int64, now time.Time, down time.Duration) (store.Session, error)
	SessionSubjects(ctx context.Context, sessionID int64) (map[int64]recording.Subject, error)
	SessionFiles(ctx context.Context, sessionID int64) ([]store.SessionFile, error)
}

// Load builds the current manifest of a session.
func Load(ctx context.Context, src Source, sessionID int64, now time.Time) (Manifest, error) {
	x, err := src.Session(ctx, sessionID, now, time.Hour)
	if err != nil {
		return Manifest{}, fmt.Errorf("manifest.Load session %d: %w", sessionID, err)
	}
	subjects, err := src.SessionSubjects(ctx, sessionID)
	if err != nil {
		return Manifest{}, fmt.Errorf("manifest.Load session %d: %w", sessionID, err)
	}
	files, err := src.SessionFiles(ctx, sessionID)
	if err != nil {
		return Manifest{}, fmt.Errorf("manifest.Load session %d: %w", sessionID, err)
	}
	return Build(x, subjects, files, now), nil
}

// Writer stores sessions' manifests beside their files.
type Writer struct {
	Source  Source
	Storage storage.Storage
}

// Write (re)writes a session's manifest.json and manifest.csv as they are now: idempotent,
// each file replaced whole (Put is atomic).
func (w Writer) Write(ctx context.Context, sessionID int64) error {
	m, err := Load(ctx, w.Source, sessionID, time.Now())
	if err != nil {
		return err
	}
	jsonKey, csvKey := Keys(sessionID)
	for key, body := range map[string][]byte{jsonKey: m.JSON(), csvKey: m.CSV()} {
		if err := w.Storage.Put(ctx, key, bytes.NewReader(body), int64(len(body))); err != nil {
			return fmt.Errorf("manifest.Write session %d: %w", sessionID, err)
		}
	}
	return nil
}
