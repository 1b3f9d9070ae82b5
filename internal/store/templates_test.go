package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/store"
)

var templateRules = recording.Rules{MaxEnclosures: 5, MinFPS: 1, MaxFPS: 120, MaxDuration: 24 * time.Hour}

func nightSpec(ids ...int64) recording.TemplateSpec {
	return recording.TemplateSpec{Name: "Night", Duration: 3600, TargetFPS: 30, DeviceIDs: ids,
		PrefixPattern: "{subject}_{date}_{enclosure}_s{session}", Timeouts: json.RawMessage(`{"start_deadline":"5m"}`)}
}

// TestTemplatesAreVersioned: an edit is a new version, old versions stay, and a session made
// from a version names it; the template's history lists it under that version.
func TestTemplatesAreVersioned(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	nv1, nv2 := f.device("NV1"), f.device("NV2")

	id, err := f.store.CreateTemplate(ctx, nightSpec(nv1, nv2), templateRules, 0)
	require.NoError(t, err)
	_, err = f.store.CreateTemplate(ctx, nightSpec(), templateRules, 0)
	require.ErrorIs(t, err, store.ErrConflict, "one live template per name")

	spec := nightSpec(nv1)
	spec.Duration = 600
	v, err := f.store.NewTemplateVersion(ctx, id, spec, templateRules, 0)
	require.NoError(t, err)
	require.Equal(t, 2, v)

	v1, err := f.store.TemplateVersion(ctx, id, 1)
	require.NoError(t, err)
	require.Equal(t, int64(3600), v1.Versions[0].Spec.Duration, "version 1 is kept as it was")
	require.Equal(t, []int64{nv1, nv2}, v1.Versions[0].Spec.DeviceIDs)
	require.JSONEq(t, `{"start_deadline":"5m"}`, string(v1.Versions[0].Spec.Timeouts))
	latest, err := f.store.TemplateVersion(ctx, id, 0)
	require.NoError(t, err)
	require.Equal(t, 2, latest.Versions[0].Version)

	// A session of version 1 with subjects: the pattern makes each prefix once the id is known.
	m1 := recording.Subject{IDs: []string{"M1", "M1b"}, Strain: "C57BL/6J", Sex: "female", Extra: map[string]string{"diet": "chow"}}
	created, err := f.store.CreateSession(ctx, recording.NewSession{Name: "cohort 3 night", Duration: 3600, TargetFPS: 30,
		PrefixPattern: v1.Versions[0].Spec.PrefixPattern, TemplateID: id, TemplateVersion: 1,
		Devices: []recording.NewSessionDevice{{DeviceID: &nv1, Subject: m1},
			{DeviceID: &nv2, FilePrefix: "own", Subject: recording.Subject{IDs: []string{"M2"}, Strain: "BALB/c"}}}},
		templateRules, store.WorkflowIDs{Session: sessionWorkflow, Device: deviceWorkflow}, f.now, time.Minute)
	require.NoError(t, err)
	x, err := f.store.Session(ctx, created.ID, f.now, time.Minute)
	require.NoError(t, err)
	require.Equal(t, &store.TemplateRef{ID: id, Version: 1, Name: "Night"}, x.Template)
	prefixes := map[string]string{}
	for _, d := range x.DeviceStatuses {
		prefixes[d.Device.Name] = d.FilenamePrefix
	}
	require.Equal(t, map[string]string{"NV1": "M1_" + f.now.UTC().Format("20060102") + "_NV1_s" + strconv.FormatInt(created.ID, 10), "NV2": "own"}, prefixes)

	history, err := f.store.Template(ctx, id)
	require.NoError(t, err)
	require.Len(t, history.Versions, 2)
	require.Equal(t, 2, history.Versions[0].Version, "newest first")
	require.Empty(t, history.Versions[0].Sessions)
	require.Len(t, history.Versions[1].Sessions, 1)
	require.Equal(t, created.ID, history.Versions[1].Sessions[0].ID, "the history shows which session ran which version")

	subjects, err := f.store.SessionSubjects(ctx, created.ID)
	require.NoError(t, err)
	require.Equal(t, m1, subjects[nv1])

	require.NoError(t, f.store.ArchiveTemplate(ctx, id))
	_, err = f.store.TemplateVersion(ctx, id, 0)
	require.ErrorIs(t, err, store.ErrNotFound, "an archived template makes no new sessions")
	_, err = f.store.NewTemplateVersion(ctx, id, spec, templateRules, 0)
	require.ErrorIs(t, err, store.ErrNotFound)
	list, err := f.store.ListTemplates(ctx, true)
	require.NoError(t, err)
	require.Len(t, list, 1)
	_, err = f.store.CreateTemplate(ctx, nightSpec(), templateRules, 0)
	require.NoError(t, err, "an archived template's name is free again")
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

// TestTemplateAndSubjectRefusals name each bad field, and nothing is stored.
func TestTemplateAndSubjectRefusals(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	nv1 := f.device("NV1")
	bad := recording.TemplateSpec{Name: " ", Duration: 0, TargetFPS: 500, DeviceIDs: []int64{nv1, nv1},
		PrefixPattern: "{mouse}_x", Timeouts: json.RawMessage(`[1]`)}
	_, err := f.store.CreateTemplate(ctx, bad, templateRules, 0)
	var refusal *recording.Refusal
	require.True(t, errors.As(err, &refusal), "%v", err)
	require.Equal(t, []string{"device_ids", "duration", "name", "prefix_pattern", "target_fps", "timeouts"}, sortedKeys(refusal.Fields))
	for _, p := range []string{"-{subject}", "a/{date}", "{subject}..x", ""} {
		require.NotEmpty(t, recording.ValidPrefixPattern(p), "%q", p)
	}

	// The pattern needs a subject; subjects are bounded.
	future := f.now.Add(48 * time.Hour)
	_, err = f.store.CreateSession(ctx, recording.NewSession{Name: "x", Duration: 60, TargetFPS: 30, PrefixPattern: "{subject}",
		Devices: []recording.NewSessionDevice{{DeviceID: &nv1, Subject: recording.Subject{Sex: "yes", DateOfBirth: &future,
			Extra: map[string]string{"k": "line\nbreak"}}}}},
		templateRules, store.WorkflowIDs{Session: sessionWorkflow, Device: deviceWorkflow}, f.now, time.Minute)
	require.True(t, errors.As(err, &refusal), "%v", err)
	require.Equal(t, []string{"device_spec[0].subject.date_of_birth", "device_spec[0].subject.extra.k",
		"device_spec[0].subject.sex", "device_spec[0].subject.subject_ids"}, sortedKeys(refusal.Fields))
	var n int
	require.NoError(t, f.pool.QueryRow(ctx, `SELECT count(*) FROM sessions`).Scan(&n))
	require.Zero(t, n)

	// An expansion that is too long is refused by the enclosure's field, in the transaction.
	long := recording.Subject{IDs: []string{"M1234567890123456789012345678901234567890123456789012345678901"}}
	_, err = f.store.CreateSession(ctx, recording.NewSession{Name: "x", Duration: 60, TargetFPS: 30, PrefixPattern: "{subject}_{subject}",
		Devices: []recording.NewSessionDevice{{DeviceID: &nv1, Subject: long}}},
		templateRules, store.WorkflowIDs{Session: sessionWorkflow, Device: deviceWorkflow}, f.now, time.Minute)
	require.True(t, errors.As(err, &refusal), "%v", err)
	require.Contains(t, refusal.Fields, "device_spec[0].filename_prefix")
	require.NoError(t, f.pool.QueryRow(ctx, `SELECT count(*) FROM sessions`).Scan(&n))
	require.Zero(t, n, "the refused session left nothing")
}

// TestSubjectsEditAndSearch: a subject is edited in any state; sessions are found by subject
// id and strain (any case) and by part of the name.
func TestSubjectsEditAndSearch(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	nv1, nv2 := f.device("NV1"), f.device("NV2")
	a, _ := f.session(nv1)
	b, _ := f.session(nv2)
	_, err := f.pool.Exec(ctx, `UPDATE sessions SET name = 'Cohort 100% night' WHERE id = $1`, b)
	require.NoError(t, err)

	require.NoError(t, f.store.SetSubject(ctx, a, nv1, recording.Subject{IDs: []string{"Mouse-7"}, Strain: "C57BL/6J"}, f.now))
	require.NoError(t, f.store.SetSubject(ctx, b, nv2, recording.Subject{IDs: []string{"m8"}, Strain: "c57bl/6j", Notes: "ok"}, f.now))
	require.ErrorIs(t, f.store.SetSubject(ctx, a, nv2, recording.Subject{IDs: []string{"x"}}, f.now), store.ErrNotFound,
		"NV2 is not in session a")
	var refusal *recording.Refusal
	require.True(t, errors.As(f.store.SetSubject(ctx, a, nv1, recording.Subject{IDs: []string{"a b"}}, f.now), &refusal))

	_, err = f.pool.Exec(ctx, `UPDATE sessions SET status = 'COMPLETE' WHERE id = $1`, a)
	require.NoError(t, err)
	require.NoError(t, f.store.SetSubject(ctx, a, nv1, recording.Subject{IDs: []string{"Mouse-7"}, Strain: "C57BL/6J", Cage: "C3"}, f.now),
		"edited after the end too")

	search := func(s store.SessionSearch) []int64 {
		t.Helper()
		list, err := f.store.SearchSessions(ctx, false, s, f.now, time.Minute)
		require.NoError(t, err)
		ids := []int64{}
		for _, x := range list {
			ids = append(ids, x.ID)
		}
		return ids
	}
	require.Equal(t, []int64{a}, search(store.SessionSearch{Subject: "mouse-7"}))
	require.Equal(t, []int64{b, a}, search(store.SessionSearch{Strain: "C57BL/6J"}))
	require.Equal(t, []int64{b}, search(store.SessionSearch{Name: "100%"}), "% is a character, not a wildcard")
	require.Equal(t, []int64{}, search(store.SessionSearch{Name: "100%", Subject: "mouse-7"}))
	require.Equal(t, []int64{b}, search(store.SessionSearch{Strain: "c57bl/6J", Limit: 1}), "bounded")
	require.Equal(t, []int64{}, search(store.SessionSearch{TemplateID: 1}), "made from no template")

	require.NoError(t, f.store.SetSubject(ctx, a, nv1, recording.Subject{}, f.now), "an empty subject removes it")
	subjects, err := f.store.SessionSubjects(ctx, a)
	require.NoError(t, err)
	require.Empty(t, subjects)
}
