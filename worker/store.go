package worker

import (
	"context"
	"strconv"
	"time"

	"github.com/jax-mba/mba/activities"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/store"
	"github.com/jax-mba/mba/workflows"
)

// StoreDeps are the activities' dependencies served by the one PostgreSQL store; the caller
// adds Storage (and may set Workflow). The activities speak types of their own, so the
// workflows that call them never depend on the store: the conversions live here, at the one
// place that sees both.
func StoreDeps(st *store.Store) Deps {
	return Deps{Auth: st, Audit: st, Mailbox: st, ReadModel: readModel{st}, Devices: st, Orphans: orphanStore{st}, Files: fileManifest{st},
		Alerts: alertStore{st}, FleetConditions: fleetConditions{st}, ConditionFacts: conditionFacts{st}, Digest: st,
		Timeline: st}
}

// conditionFacts adapts the store to activities.ConditionFacts.
type conditionFacts struct{ *store.Store }

func (c conditionFacts) OpenAlertSubjects(ctx context.Context, kind recording.AlertKind) ([]activities.AlertSubjectRef, error) {
	list, err := c.Store.OpenAlertSubjects(ctx, kind)
	return convertAll(list, func(x store.OpenAlertSubject) activities.AlertSubjectRef { return activities.AlertSubjectRef(x) }), err
}

func (c conditionFacts) DiskFacts(ctx context.Context, now, windowStart time.Time, minSpan time.Duration) ([]activities.DiskFacts, error) {
	list, err := c.Store.DiskFacts(ctx, now, windowStart, minSpan)
	return convertAll(list, func(x store.DiskFacts) activities.DiskFacts { return activities.DiskFacts(x) }), err
}

func (c conditionFacts) FPSFacts(ctx context.Context, margin float64, now time.Time) ([]activities.FPSFacts, error) {
	list, err := c.Store.FPSFacts(ctx, margin, now)
	return convertAll(list, func(x store.FPSFacts) activities.FPSFacts { return activities.FPSFacts(x) }), err
}

func (c conditionFacts) BacklogFacts(ctx context.Context, dueBefore, endedAfter time.Time) ([]activities.BacklogFacts, error) {
	list, err := c.Store.BacklogFacts(ctx, dueBefore, endedAfter)
	return convertAll(list, func(x store.BacklogFacts) activities.BacklogFacts { return activities.BacklogFacts(x) }), err
}

func (c conditionFacts) ChannelFacts(ctx context.Context, n int, since time.Time) ([]activities.ChannelFacts, error) {
	list, err := c.Store.ChannelFacts(ctx, n, since)
	return convertAll(list, func(x store.ChannelFacts) activities.ChannelFacts { return activities.ChannelFacts(x) }), err
}

// convertAll converts a list of one layer's type to another's.
func convertAll[T, U any](list []T, to func(T) U) []U {
	out := make([]U, len(list))
	for i, x := range list {
		out[i] = to(x)
	}
	return out
}

// fleetConditions adapts the store to activities.FleetConditions.
type fleetConditions struct{ *store.Store }

func (f fleetConditions) FleetDown(ctx context.Context, since time.Time) ([]activities.DownEnclosure, []int64, error) {
	raise, clear, err := f.Store.FleetDown(ctx, since)
	out := make([]activities.DownEnclosure, len(raise))
	for i, d := range raise {
		out[i] = activities.DownEnclosure(d)
	}
	return out, clear, err
}

func (f fleetConditions) ClockSkew(ctx context.Context, threshold time.Duration) ([]activities.SkewedEnclosure, []activities.SessionDevice, error) {
	raise, clear, err := f.Store.ClockSkew(ctx, threshold)
	skewed := make([]activities.SkewedEnclosure, len(raise))
	for i, d := range raise {
		skewed[i] = activities.SkewedEnclosure(d)
	}
	cleared := make([]activities.SessionDevice, len(clear))
	for i, c := range clear {
		cleared[i] = activities.SessionDevice(c)
	}
	return skewed, cleared, err
}

// readModel adapts the store to activities.ReadModel; the methods it does not redefine are the
// store's own (they already speak the recording vocabulary).
type readModel struct{ *store.Store }

func (r readModel) SessionPlan(ctx context.Context, id int64) (activities.SessionPlan, error) {
	p, err := r.Store.SessionPlan(ctx, id)
	out := activities.SessionPlan{ID: p.ID, Duration: p.Duration, FragmentHourly: p.FragmentHourly,
		TargetFPS: p.TargetFPS, ApplyFilter: p.ApplyFilter, Timeouts: p.Timeouts}
	if p.Devices != nil { // an empty list stays one: the payload stays the store's
		out.Devices = make([]activities.PlannedDevice, len(p.Devices))
	}
	for i, d := range p.Devices {
		out.Devices[i] = activities.PlannedDevice(d)
	}
	return out, err
}

// UpdateSessionDevice: the two types have the same fields, so the conversion is checked by the
// compiler; a field added to one and not the other breaks the build, not a payload.
func (r readModel) UpdateSessionDevice(ctx context.Context, u activities.DeviceUpdate) error {
	return r.Store.UpdateSessionDevice(ctx, store.DeviceUpdate(u))
}

func (r readModel) CancelSession(ctx context.Context, c activities.SessionCancel, now time.Time) error {
	_, err := r.RequestStop(ctx, store.StopRequest{SessionID: c.SessionID, Reason: c.Reason}, "", now)
	return err
}

// fileManifest adapts the store to activities.FileManifest.
type fileManifest struct{ *store.Store }

func (m fileManifest) DeviceFiles(ctx context.Context, sessionID, deviceID int64) ([]activities.KnownFile, error) {
	files, err := m.Store.DeviceFiles(ctx, sessionID, deviceID)
	var out []activities.KnownFile
	if files != nil { // as above: an empty list stays one
		out = make([]activities.KnownFile, len(files))
	}
	for i, f := range files {
		out[i] = knownFile(f)
	}
	return out, err
}

func (m fileManifest) SessionFile(ctx context.Context, sessionID, deviceID int64, name string) (activities.KnownFile, error) {
	f, err := m.Store.SessionFile(ctx, sessionID, deviceID, name)
	return knownFile(f), err
}

func (m fileManifest) RecordFileResult(ctx context.Context, r activities.FileResult) error {
	return m.Store.RecordFileResult(ctx, store.FileResult(r))
}

// knownFile is a manifest row as the activities see it: without the ids the request already
// names, the upload's id (the API's) and the download link (the API adds it for people).
func knownFile(f store.SessionFile) activities.KnownFile {
	return activities.KnownFile{Name: f.Name, State: f.State, Reason: f.Reason, Expected: f.Expected, Size: f.Size,
		SHA256: f.SHA256, Uploads: f.Uploads, Reupload: f.Reupload, UploadedAt: f.UploadedAt, VerifiedAt: f.VerifiedAt,
		UpdatedAt: f.UpdatedAt}
}

// orphanStore adapts the store to activities.OrphanStore.
type orphanStore struct{ *store.Store }

func (o orphanStore) Orphans(ctx context.Context, settle time.Time) ([]activities.Orphan, error) {
	list, err := o.Store.Orphans(ctx, settle)
	out := make([]activities.Orphan, len(list))
	for i, x := range list {
		out[i] = activities.Orphan(x)
	}
	return out, err
}

func (o orphanStore) ReleaseOrphan(ctx context.Context, x activities.Orphan, reason string, now time.Time) error {
	return o.Store.ReleaseOrphan(ctx, store.Orphan(x), reason, now)
}

// alertStore adapts the store to activities.AlertStore.
type alertStore struct{ *store.Store }

func (a alertStore) RecordAlert(ctx context.Context, r activities.AlertRecord) error {
	return a.Store.RecordAlert(ctx, store.AlertRecord(r))
}

func (a alertStore) RecordDelivery(ctx context.Context, d activities.DeliveryRecord) error {
	return a.Store.RecordDelivery(ctx, store.Delivery(d))
}

func (a alertStore) SessionCreator(ctx context.Context, sessionID int64) (activities.Person, bool, error) {
	r, ok, err := a.Store.SessionCreator(ctx, sessionID)
	return person(r), ok, err
}

func (a alertStore) SubjectNames(ctx context.Context, sessionID, deviceID int64) (activities.SubjectNames, error) {
	n, err := a.Store.AlertSubjectNames(ctx, sessionID, deviceID)
	return activities.SubjectNames(n), err
}

func (a alertStore) Admins(ctx context.Context) ([]activities.Person, error) {
	list, err := a.Store.Admins(ctx)
	return people(list), err
}

func (a alertStore) PeopleByEmail(ctx context.Context, emails []string) ([]activities.Person, error) {
	list, err := a.Store.PeopleByEmail(ctx, emails)
	return people(list), err
}

func people(list []store.Person) []activities.Person {
	out := make([]activities.Person, len(list))
	for i, r := range list {
		out[i] = person(r)
	}
	return out
}

func person(r store.Person) activities.Person {
	kinds := make([]recording.AlertKind, len(r.Prefs.Kinds))
	for i, k := range r.Prefs.Kinds {
		kinds[i] = recording.AlertKind(k)
	}
	return activities.Person{UserID: r.UserID, Email: r.Email, Prefs: activities.NotificationPrefs{Kinds: kinds,
		Channel: r.Prefs.Channel, QuietStart: r.Prefs.QuietStart, QuietEnd: r.Prefs.QuietEnd, TZ: r.Prefs.TZ}}
}

// StoreSessions creates sessions through the store with the deployment's rules (the API's),
// judging enclosures silent for down DOWN, for the activity Sessions.CreateSession.
func StoreSessions(st *store.Store, rules recording.Rules, down time.Duration) activities.SessionCreator {
	return sessionCreator{st: st, rules: rules, down: down}
}

type sessionCreator struct {
	st    *store.Store
	rules recording.Rules
	down  time.Duration
}

func (c sessionCreator) CreateSession(ctx context.Context, ns recording.NewSession, now time.Time) (activities.CreatedSession, error) {
	created, err := c.st.CreateSession(ctx, ns, c.rules, sessionWorkflowIDs, now, c.down)
	return activities.CreatedSession(created), err
}

// StoreSchedules adapts the store to activities.ScheduleStore, judging enclosures silent for
// down DOWN.
func StoreSchedules(st *store.Store, down time.Duration) activities.ScheduleStore {
	return scheduleStore{st: st, down: down}
}

type scheduleStore struct {
	st   *store.Store
	down time.Duration
}

func (s scheduleStore) EnclosureStates(ctx context.Context, ids []int64, now time.Time) ([]activities.EnclosureState, error) {
	list, err := s.st.EnclosureStates(ctx, ids, now, s.down)
	out := make([]activities.EnclosureState, len(list))
	for i, x := range list {
		out[i] = activities.EnclosureState(x)
	}
	return out, err
}

func (s scheduleStore) RecordScheduleFire(ctx context.Context, f activities.ScheduleFire) error {
	var session *int64
	if f.SessionID != 0 {
		session = &f.SessionID
	}
	return s.st.RecordScheduleFire(ctx, store.ScheduleFire{ScheduleID: f.ScheduleID, WorkflowID: f.WorkflowID, FiredAt: f.FiredAt,
		Outcome: f.Outcome, Message: f.Message, SessionID: session})
}

// StoreSessionChanges makes the changes of running sessions through the store with the
// deployment's rules (the API's), for the activities SessionChanges.
func StoreSessionChanges(st *store.Store, rules recording.Rules, down time.Duration) activities.SessionChanger {
	return sessionChanger{st: st, rules: rules, down: down}
}

type sessionChanger struct {
	st    *store.Store
	rules recording.Rules
	down  time.Duration
}

// sessionWorkflowIDs are the workflow ids the store writes in the mailboxes.
var sessionWorkflowIDs = store.WorkflowIDs{Session: workflows.SessionWorkflowID, Device: workflows.DeviceWorkflowID,
	Retry: workflows.RetryWorkflowID}

// audited is ctx carrying the audit row of the person's change, written in its transaction.
func audited(ctx context.Context, by int64, action recording.AuditAction, sessionID int64) context.Context {
	return store.Audited(ctx, store.AuditEntry{ActorID: by, Action: action, Subject: strconv.FormatInt(sessionID, 10)})
}

func (c sessionChanger) AddSessionDevices(ctx context.Context, req activities.AddDevices, now time.Time) ([]activities.PlannedDevice, error) {
	devices := make([]recording.NewSessionDevice, len(req.Devices))
	for i, d := range req.Devices {
		devices[i] = recording.NewSessionDevice{DeviceID: &d.DeviceID, FilePrefix: d.FilePrefix}
	}
	added, err := c.st.AddSessionDevices(audited(ctx, req.By, recording.AuditSessionAddDevices, req.SessionID),
		store.AddDevices{SessionID: req.SessionID, Devices: devices, Seconds: req.Seconds}, c.rules, sessionWorkflowIDs, now, c.down, false)
	out := make([]activities.PlannedDevice, len(added))
	for i, d := range added {
		out[i] = activities.PlannedDevice(d)
	}
	return out, err
}

func (c sessionChanger) RetrySessionDevice(ctx context.Context, req activities.RetryDevice, now time.Time) (activities.RetriedDevice, error) {
	r, err := c.st.RetrySessionDevice(audited(ctx, req.By, recording.AuditSessionRetryDevice, req.SessionID),
		store.RetryDevice{SessionID: req.SessionID, DeviceID: req.DeviceID, Seconds: req.Seconds}, sessionWorkflowIDs, now, c.down, false)
	return activities.RetriedDevice{PlannedDevice: activities.PlannedDevice(r.PlannedDevice), Retry: r.Retry, WorkflowID: r.WorkflowID,
		Recorded: r.Recorded}, err
}

func (c sessionChanger) SetSessionDuration(ctx context.Context, req activities.SessionDuration, now time.Time) error {
	return c.st.SetSessionDuration(audited(ctx, req.By, recording.AuditSessionDuration, req.SessionID), req.SessionID, req.Duration, now)
}
