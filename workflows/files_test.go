package workflows

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/jax-mba/mba/activities"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/storage"
)

// fakeFiles is an in-memory file manifest and storage behind the real Files activities.
type fakeFiles struct {
	mu      sync.Mutex
	rows    map[string]*activities.KnownFile // by name (one enclosure)
	objects map[string][]byte                // by storage key
	results []activities.FileResult
}

func newFakeFiles() *fakeFiles {
	return &fakeFiles{rows: map[string]*activities.KnownFile{}, objects: map[string][]byte{}}
}

// register adds the Files activities over f to env.
func (f *fakeFiles) register(env *testsuite.TestWorkflowEnvironment) {
	env.RegisterActivity(&activities.Files{Manifest: f, Storage: f})
}

// upload stores content as the agent would, declaring its checksum (or declared, when set).
func (f *fakeFiles) upload(sessionID int64, enclosure, name string, content []byte, declared string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	sum := sha256.Sum256(content)
	sha := hex.EncodeToString(sum[:])
	if declared != "" {
		sha = declared
	}
	r := f.row(name)
	size := int64(len(content))
	r.Size, r.SHA256, r.State = &size, &sha, recording.FileUploaded
	r.Uploads++
	f.objects[storage.Key(sessionID, enclosure, name)] = bytes.Clone(content)
	return r.Uploads
}

func (f *fakeFiles) row(name string) *activities.KnownFile {
	r, ok := f.rows[name]
	if !ok {
		r = &activities.KnownFile{Name: name, State: recording.FilePending}
		f.rows[name] = r
	}
	return r
}

func (f *fakeFiles) states() map[string]recording.FileState {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]recording.FileState{}
	for name, r := range f.rows {
		out[name] = r.State
	}
	return out
}

func (f *fakeFiles) DeviceFiles(_ context.Context, _, _ int64) ([]activities.KnownFile, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []activities.KnownFile
	for _, r := range f.rows {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b activities.KnownFile) int { return bytes.Compare([]byte(a.Name), []byte(b.Name)) })
	return out, nil
}

func (f *fakeFiles) SessionFile(_ context.Context, _, _ int64, name string) (activities.KnownFile, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.rows[name]; ok {
		return *r, nil
	}
	return activities.KnownFile{}, errNoFile
}

// errNoFile is the fake manifest's answer for a file it does not know (the store's is
// store.ErrNotFound; workflows and their tests never import the store).
var errNoFile = errors.New("no such file in the manifest")

func (f *fakeFiles) ExpectFiles(_ context.Context, _, _ int64, names []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range names {
		f.row(n).Expected = true
	}
	return nil
}

func (f *fakeFiles) RecordFileResult(_ context.Context, r activities.FileResult) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	row := f.row(r.Name)
	row.State, row.Reason, row.Reupload = r.State, r.Reason, r.Reupload
	f.results = append(f.results, r)
	return nil
}

func (f *fakeFiles) Open(_ context.Context, key string, offset int64) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.objects[key]
	if !ok {
		return nil, storage.ErrNotFound
	}
	return io.NopCloser(bytes.NewReader(b[min(offset, int64(len(b))):])), nil
}

func (f *fakeFiles) Stat(_ context.Context, key string) (storage.Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.objects[key]
	if !ok {
		return storage.Info{}, storage.ErrNotFound
	}
	return storage.Info{Size: int64(len(b))}, nil
}

// recordingFiles uploads, in dt's fake storage, the files of a recording of prefix cage3_
// that started at start (local time) and lasted d, hourly fragments.
func (dt *deviceTest) recordingFiles(start time.Time, d time.Duration) []string {
	names := []string{"cage3_start_timestamp.txt", "cage3_timestamps.txt"}
	dt.files.upload(7, "NV3", names[0], []byte(start.Format(time.RFC3339Nano)+"\n"), "")
	dt.files.upload(7, "NV3", names[1], fmt.Appendf(nil, "0.000000\n%.6f\n", d.Seconds()), "")
	for t := start; t.Before(start.Add(d)); t = t.Truncate(time.Hour).Add(time.Hour) {
		name := "cage3_" + t.Format("2006-01-02_15-04-05") + ".avi"
		dt.files.upload(7, "NV3", name, []byte("RIFF video of "+name), "")
		names = append(names, name)
	}
	return names
}

func (dt *deviceTest) endsAfter(d time.Duration) {
	dt.startsAfter(time.Second)
	dt.at(time.Second+d, recording.Event{ID: 5, Kind: recording.EventEnded, Duration: int64(d / time.Second)})
}

func TestEveryFileOfTheRecordingIsVerified(t *testing.T) {
	dt := newDeviceTest(t)
	dt.endsAfter(3 * time.Hour)
	names := dt.recordingFiles(time.Date(2026, 11, 26, 9, 30, 0, 0, time.UTC), 3*time.Hour)
	require.Len(t, names, 2+4) // 09:30, 10:00, 11:00, 12:00

	dt.run(3 * time.Hour)
	states := dt.files.states()
	require.Len(t, states, len(names))
	for _, n := range names {
		require.Equal(t, recording.FileVerified, states[n], n)
	}
	require.Equal(t, "files-verified", dt.updates[len(dt.updates)-1].Event)
}

func TestCorruptFileIsAskedForAgainAndHealed(t *testing.T) {
	dt := newDeviceTest(t)
	dt.endsAfter(30 * time.Minute)
	names := dt.recordingFiles(time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC), 30*time.Minute)
	video := names[2]
	// The first copy does not match the checksum the agent declared.
	dt.files.upload(7, "NV3", video, []byte("flipped bits"), hex.EncodeToString(make([]byte, 32)))
	// The agent sends a good copy an hour after the recording ended.
	dt.env.RegisterDelayedCallback(func() {
		n := dt.files.upload(7, "NV3", video, []byte("the real video"), "")
		dt.env.SignalWorkflow(SignalDeviceEvent, recording.Event{ID: 100, Kind: recording.EventFileUploaded, File: video, Upload: n})
	}, 90*time.Minute)

	dt.run(30 * time.Minute)
	require.Equal(t, recording.FileVerified, dt.files.states()[video])
	var states []string
	for _, r := range dt.files.results {
		if r.Name == video {
			states = append(states, fmt.Sprintf("%s reupload=%v", r.State, r.Reupload))
		}
	}
	require.Equal(t, []string{"CORRUPT reupload=true", "VERIFIED reupload=false"}, states)
	require.Contains(t, dt.allEvents(), "file-reupload")
	require.Equal(t, "files-verified", dt.updates[len(dt.updates)-1].Event)
}

func TestFilesThatNeverArriveAreMissing(t *testing.T) {
	dt := newDeviceTest(t)
	dt.endsAfter(2 * time.Hour)
	start := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	names := dt.recordingFiles(start, 2*time.Hour)
	lost := names[3]
	dt.files.mu.Lock()
	delete(dt.files.rows, lost) // never uploaded
	dt.files.mu.Unlock()

	dt.run(2 * time.Hour)
	states := dt.files.states()
	require.Equal(t, recording.FileMissing, states[lost], "expected from the timestamp files though never uploaded")
	require.Equal(t, recording.FileVerified, states[names[2]])
	require.Contains(t, dt.allEvents(), "file-missing")
	require.Equal(t, "files-incomplete", dt.updates[len(dt.updates)-1].Event)
}

func TestCorruptForGoodAfterTheReuploads(t *testing.T) {
	dt := newDeviceTest(t)
	dt.endsAfter(10 * time.Minute)
	names := dt.recordingFiles(time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC), 10*time.Minute)
	bad := hex.EncodeToString(make([]byte, 32))
	dt.files.upload(7, "NV3", names[2], []byte("bad"), bad)
	for i := 1; i <= testSettings.Reuploads; i++ {
		dt.env.RegisterDelayedCallback(func() {
			n := dt.files.upload(7, "NV3", names[2], []byte("still bad"), bad)
			dt.env.SignalWorkflow(SignalDeviceEvent, recording.Event{ID: int64(100 + i), Kind: recording.EventFileUploaded, File: names[2], Upload: n})
		}, time.Duration(i)*time.Hour)
	}

	dt.run(10 * time.Minute)
	require.Equal(t, recording.FileCorrupt, dt.files.states()[names[2]])
	require.Contains(t, dt.allEvents(), "file-corrupt")
}

func TestFragmentsAreVerifiedWhileTheRecordingGoesOn(t *testing.T) {
	dt := newDeviceTest(t)
	dt.endsAfter(3 * time.Hour)
	names := dt.recordingFiles(time.Date(2026, 11, 26, 9, 30, 0, 0, time.UTC), 3*time.Hour)
	first := names[2]
	// The agent sends the first fragment once the second exists, 40 minutes in.
	dt.env.RegisterDelayedCallback(func() {
		dt.env.SignalWorkflow(SignalDeviceEvent, recording.Event{ID: 3, Kind: recording.EventFileUploaded, File: first, Upload: 1})
	}, 40*time.Minute)
	begin := dt.env.Now()

	require.Equal(t, recording.DeviceComplete, dt.run(3*time.Hour).Status)
	var verifiedAt time.Time
	for _, r := range dt.files.results {
		if r.Name == first && r.State == recording.FileVerified {
			verifiedAt = r.At
		}
	}
	require.False(t, verifiedAt.IsZero())
	require.Less(t, verifiedAt.Sub(begin), time.Hour, "verified during the recording, not after its end")
	require.Equal(t, "files-verified", dt.updates[len(dt.updates)-1].Event)
	for _, n := range names {
		require.Equal(t, recording.FileVerified, dt.files.states()[n], n)
	}
}

func TestContinueAsNewCarriesTheFileChecks(t *testing.T) {
	dt := newDeviceTest(t)
	dt.startsAfter(time.Second)
	names := dt.recordingFiles(time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC), 5*time.Hour)
	bad := hex.EncodeToString(make([]byte, 32))
	dt.files.upload(7, "NV3", names[2], []byte("bad"), bad) // corrupt: asked again
	dt.at(time.Hour, recording.Event{ID: 10, Kind: recording.EventFileUploaded, File: names[2], Upload: 1})
	dt.at(2*time.Hour, recording.Event{ID: 11, Kind: recording.EventFileUploaded, File: names[3], Upload: 1})
	dt.env.RegisterDelayedCallback(func() { dt.env.SetContinueAsNewSuggested(true) }, 3*time.Hour)
	dt.at(3*time.Hour+time.Minute, recording.Event{ID: 12, Kind: recording.EventSilent})
	dt.env.ExecuteWorkflow(DeviceRecording, DeviceInput{SessionID: 7, DeviceID: 3, DeviceName: "NV3", FilePrefix: "cage3",
		Duration: 30 * 24 * 3600, FragmentHourly: true, Settings: testSettings})
	var can *workflow.ContinueAsNewError
	require.ErrorAs(t, dt.env.GetWorkflowError(), &can)

	var next DeviceInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	f := next.State.Files
	require.Equal(t, []string{names[2], names[3]}, f.Names)
	require.Equal(t, recording.FileVerified, f.Final[names[3]])
	require.Empty(t, f.Final[names[2]], "still waiting for a good copy")
	require.Equal(t, 1, f.Asked[names[2]])
	require.Equal(t, recording.FileCorrupt, f.Last[names[2]])
	require.Equal(t, 2, f.Checked[names[2]], "the copy it checked (the second upload)")
}

func TestAContinuedRunFinishesTheChecksItCarries(t *testing.T) {
	dt := newDeviceTest(t)
	start := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	names := dt.recordingFiles(start, 2*time.Hour)
	// The run before continue-as-new verified the first fragment and was checking the second.
	state := DeviceState{Status: recording.DeviceRecording, Segments: 1, StartedAt: start, SegmentStart: start,
		PlannedEnd: start.Add(2 * time.Hour), LastEventID: 20,
		Files: FileChecks{Names: []string{names[2], names[3]}, Uploads: map[string]int{names[2]: 1, names[3]: 1},
			Checked: map[string]int{names[2]: 1}, Final: map[string]recording.FileState{names[2]: recording.FileVerified}}}
	dt.files.rows[names[2]].State = recording.FileVerified // as the earlier run recorded it
	dt.env.SetStartTime(start.Add(90 * time.Minute))
	dt.at(30*time.Minute, recording.Event{ID: 21, Kind: recording.EventEnded, Duration: 7200})
	dt.env.ExecuteWorkflow(DeviceRecording, DeviceInput{SessionID: 7, DeviceID: 3, DeviceName: "NV3", FilePrefix: "cage3",
		Duration: 7200, FragmentHourly: true, Settings: testSettings, State: state})
	require.True(t, dt.env.IsWorkflowCompleted())
	require.NoError(t, dt.env.GetWorkflowError())
	for _, n := range names {
		require.Equal(t, recording.FileVerified, dt.files.states()[n], n)
	}
	var again int
	for _, r := range dt.files.results {
		if r.Name == names[2] {
			again++
		}
	}
	require.Zero(t, again, "a file verified before continue-as-new is not checked again")
	require.Equal(t, "files-verified", dt.updates[len(dt.updates)-1].Event)
}

func TestNoFileChecksWhenTurnedOff(t *testing.T) {
	dt := newDeviceTest(t)
	dt.endsAfter(2 * time.Hour)
	names := dt.recordingFiles(time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC), 2*time.Hour)
	dt.at(time.Hour, recording.Event{ID: 3, Kind: recording.EventFileUploaded, File: names[2], Upload: 1})
	settings := testSettings
	settings.SkipFileChecks = true
	dt.env.ExecuteWorkflow(DeviceRecording, DeviceInput{SessionID: 7, DeviceID: 3, DeviceName: "NV3", FilePrefix: "cage3",
		Duration: 7200, FragmentHourly: true, Settings: settings})
	require.True(t, dt.env.IsWorkflowCompleted())
	require.NoError(t, dt.env.GetWorkflowError())
	require.Empty(t, dt.files.results, "nothing checked, nothing MISSING")
	require.Equal(t, recording.DeviceComplete, dt.final().Status)
}

func TestBadFileRaisesTheFileAlert(t *testing.T) {
	dt := newDeviceTest(t)
	dt.endsAfter(2 * time.Hour)
	names := dt.recordingFiles(time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC), 2*time.Hour)
	dt.files.mu.Lock()
	delete(dt.files.rows, names[3]) // never uploaded
	dt.files.mu.Unlock()
	dt.run(2 * time.Hour)

	require.Len(t, dt.alerts, 1, "one raise, for the one bad file: %+v", dt.alerts)
	bad := dt.alert(recording.AlertFileBad)
	require.True(t, bad.Active)
	require.Equal(t, int64(7), bad.SessionID)
	require.Equal(t, int64(3), bad.DeviceID)
	require.Equal(t, "NV3 in session 7: "+names[3]+" is MISSING: not uploaded within 24h0m0s of the recording's end", bad.Summary)
}
