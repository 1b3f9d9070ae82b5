package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/jax-mba/mba/activities"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/protocol"
)

// changeVerifyFiles is the version change that added file verification after a recording.
const changeVerifyFiles = "verify-files"

// verifyAtOnce bounds the files of one enclosure hashed at the same time.
const verifyAtOnce = 4

// fileScope is all the file checks know of the enclosure's recording, given once by the
// device workflow: the checks never reach into the device.
type fileScope struct {
	SessionID, DeviceID int64
	Enclosure           string // the enclosure's name, part of the storage key
	FilePrefix          string // the first segment's (protocol.SegmentPrefix derives the others)
	Hourly              bool   // the recording is fragmented by the hour
	Settings            Settings
	// Update writes the enclosure's part of the read model (the timeline's summary line).
	Update func(ctx workflow.Context, u activities.DeviceUpdate)
	// Events are the device's transitions, read once its recording is over; Fresh says
	// whether one is new (delivery is at least once) and marks it seen.
	Events workflow.ReceiveChannel
	Fresh  func(recording.Event) bool
}

// verifier checks every file of an enclosure's recording: each fragment as soon as the agent
// has sent it, the rest once the recording is over. For each file it waits for the upload,
// has it hashed from storage and records VERIFIED, or asks the agent for it again, and
// finally records MISSING or CORRUPT. One file's trouble never holds up another: each file
// has a goroutine of its own.
type verifier struct {
	scope    fileScope
	st       *FileChecks
	deadline workflow.Future // set when the recording is over: the last moment an upload may arrive
	expired  bool
	wake     map[string]workflow.Channel // file -> its goroutine's wake-up
	running  int                         // file goroutines not finished
	active   int                         // VerifyFile activities running
	recorded time.Duration               // what the timestamp files say, all segments
	reported time.Duration               // what the enclosure reported recording, all segments
	problems []string                    // segments whose file list may be incomplete
}

// newVerifier checks the files of scope's recording, keeping its state in st (the device's,
// carried across continue-as-new).
func newVerifier(scope fileScope, st *FileChecks) *verifier {
	for _, m := range []*map[string]int{&st.Uploads, &st.Checked, &st.Asked} {
		if *m == nil {
			*m = map[string]int{}
		}
	}
	if st.Reason == nil {
		st.Reason = map[string]string{}
	}
	for _, m := range []*map[string]recording.FileState{&st.Last, &st.Final} {
		if *m == nil {
			*m = map[string]recording.FileState{}
		}
	}
	return &verifier{scope: scope, st: st, wake: map[string]workflow.Channel{}}
}

// resume restarts the checks an earlier run (before continue-as-new) left unfinished.
func (v *verifier) resume(ctx workflow.Context) {
	for _, name := range v.st.Names {
		if v.st.Final[name] == "" {
			v.run(ctx, name)
		}
	}
}

// wakeAll wakes the checks still running (a check finished in an earlier run has no channel).
func (v *verifier) wakeAll() {
	for _, name := range v.st.Names {
		if c, ok := v.wake[name]; ok {
			c.SendAsync(true)
		}
	}
}

// uploaded records a file-uploaded event and starts or wakes the file's check.
func (v *verifier) uploaded(ctx workflow.Context, ev recording.Event) {
	if v.scope.Settings.SkipFileChecks {
		return
	}
	v.st.Uploads[ev.File] = max(v.st.Uploads[ev.File], ev.Upload)
	if c, ok := v.wake[ev.File]; ok {
		c.SendAsync(true)
		return
	}
	v.start(ctx, ev.File)
}

// checkAll checks the recording's files once it is over, to the last one: segments were
// started, recorded is what the enclosure reported recording (seconds).
func (v *verifier) checkAll(ctx workflow.Context, segments int, recorded int64) {
	var a *activities.Files
	if segments == 0 || v.scope.Settings.SkipFileChecks {
		return
	}
	v.reported = time.Duration(recorded) * time.Second
	v.deadline = workflow.NewTimer(ctx, v.uploadDeadline())
	var known []activities.KnownFile
	if err := dbWrite(ctx, a.FileStates, v.ref(""), &known); err != nil {
		workflow.GetLogger(ctx).Error("reading the file manifest", "error", err)
	}
	for _, f := range known {
		if f.State != recording.FilePending && f.State != recording.FileUploading || f.Uploads > 0 {
			v.st.Uploads[f.Name] = max(v.st.Uploads[f.Name], f.Uploads)
		}
	}
	v.wakeAll() // for uploads the manifest knows of
	workflow.Go(ctx, v.listen)
	workflow.Go(ctx, func(ctx workflow.Context) {
		if v.deadline.Get(ctx, nil) == nil {
			v.expired = true
			v.wakeAll()
		}
	})
	for seg := 1; seg <= segments; seg++ {
		v.running++
		workflow.Go(ctx, func(ctx workflow.Context) {
			defer func() { v.running-- }()
			v.segment(ctx, protocol.FileNamePrefix(protocol.SegmentPrefix(v.scope.FilePrefix, seg)))
		})
	}
	_ = workflow.Await(ctx, func() bool { return v.running == 0 })
	if ctx.Err() == nil {
		v.summarize(ctx)
	}
}

// ref names one of the recording's files for the file activities.
func (v *verifier) ref(name string) activities.FileRef {
	return activities.FileRef{SessionID: v.scope.SessionID, DeviceID: v.scope.DeviceID, Enclosure: v.scope.Enclosure, Name: name}
}

// listen routes file-uploaded events to the files' checks once the recording is over (while it
// runs, the recording's own loop does).
func (v *verifier) listen(ctx workflow.Context) {
	for {
		var ev recording.Event
		if !v.scope.Events.Receive(ctx, &ev) {
			return
		}
		if v.scope.Fresh(ev) && ev.Kind == recording.EventFileUploaded {
			v.uploaded(ctx, ev)
		}
	}
}

// segment checks the files of one segment: the timestamp files first, since they tell
// which hourly fragments there must be.
func (v *verifier) segment(ctx workflow.Context, prefix string) {
	var a *activities.Files
	fixed := protocol.SegmentFiles(prefix, v.scope.Hourly)
	if err := dbWrite(ctx, a.ExpectFiles,
		activities.ExpectRequest{SessionID: v.scope.SessionID, DeviceID: v.scope.DeviceID, Names: fixed}, nil); err != nil {
		workflow.GetLogger(ctx).Error("recording the expected files", "error", err)
	}
	for _, name := range fixed {
		v.start(ctx, name)
	}
	_ = workflow.Await(ctx, func() bool { return v.st.Final[fixed[0]] != "" && v.st.Final[fixed[1]] != "" })
	if ctx.Err() != nil {
		return
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 10 * time.Second, MaximumInterval: 5 * time.Minute, MaximumAttempts: 10}})
	var plan activities.SegmentPlan
	err := workflow.ExecuteActivity(actx, a.PlanSegment, activities.SegmentRequest{SessionID: v.scope.SessionID,
		DeviceID: v.scope.DeviceID, Enclosure: v.scope.Enclosure, Prefix: prefix, Hourly: v.scope.Hourly}).Get(ctx, &plan)
	if err != nil {
		plan.Problem = fmt.Sprintf("could not work out the video files: %v", err)
	}
	v.recorded += plan.Recorded
	if plan.Problem != "" {
		v.problems = append(v.problems, prefix+": "+plan.Problem)
	}
	for _, name := range plan.Videos {
		v.start(ctx, name)
	}
}

// start begins checking a file, once.
func (v *verifier) start(ctx workflow.Context, name string) {
	if _, ok := v.wake[name]; ok || v.st.Final[name] != "" {
		return
	}
	v.st.Names = append(v.st.Names, name)
	v.run(ctx, name)
}

// run runs the file's check in a goroutine of its own.
func (v *verifier) run(ctx workflow.Context, name string) {
	v.wake[name] = workflow.NewBufferedChannel(ctx, 1)
	v.running++
	workflow.Go(ctx, func(ctx workflow.Context) {
		defer func() { v.running-- }()
		v.check(ctx, name)
	})
}

// check waits for the file's upload, verifies it, and asks again for a bad copy up to
// Settings.Reuploads times.
func (v *verifier) check(ctx workflow.Context, name string) {
	st := v.st
	for ctx.Err() == nil {
		for st.Uploads[name] <= st.Checked[name] && !v.expired && ctx.Err() == nil {
			v.wake[name].Receive(ctx, nil)
		}
		if ctx.Err() != nil {
			return
		}
		if st.Uploads[name] <= st.Checked[name] { // the deadline passed first
			state, reason := st.Last[name], st.Reason[name]
			if state == "" {
				state, reason = recording.FileMissing, fmt.Sprintf("not uploaded within %s of the recording's end", v.uploadDeadline())
			} else {
				reason += "; no new copy arrived in time"
			}
			v.record(ctx, name, state, reason, false, "file-"+strings.ToLower(string(state)))
			return
		}
		res, err := v.verify(ctx, name)
		if err != nil {
			if ctx.Err() == nil {
				v.record(ctx, name, recording.FileMissing, fmt.Sprintf("could not be read from storage: %v", err), false, "file-missing")
			}
			return
		}
		st.Checked[name] = max(res.Upload, st.Checked[name]+1)
		if res.State == recording.FileVerified {
			v.record(ctx, name, recording.FileVerified, res.Reason, false, "")
			return
		}
		state := recording.FileCorrupt
		if res.State == activities.FileAbsent {
			state = recording.FileMissing
		}
		st.Last[name], st.Reason[name] = state, res.Reason
		if st.Asked[name] >= v.scope.Settings.Reuploads {
			v.record(ctx, name, state, fmt.Sprintf("%s (after %d new copies)", res.Reason, st.Asked[name]), false, "file-"+strings.ToLower(string(state)))
			return
		}
		st.Asked[name]++
		// The agent sees reupload in its manifest and sends the file again.
		v.record(ctx, name, state, res.Reason+"; asked the agent for a new copy", true, "file-reupload")
	}
}

func (v *verifier) uploadDeadline() time.Duration {
	if d := v.scope.Settings.UploadDeadline; d > 0 {
		return d
	}
	return DefaultSettings.UploadDeadline
}

// verify runs VerifyFile, a few files of the enclosure at a time.
func (v *verifier) verify(ctx workflow.Context, name string) (activities.Verification, error) {
	var a *activities.Files
	_ = workflow.Await(ctx, func() bool { return v.active < verifyAtOnce })
	v.active++
	defer func() { v.active-- }()
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 6 * time.Hour, // tens of GB from a slow store; heartbeats watch progress
		HeartbeatTimeout:    2 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 10 * time.Second, BackoffCoefficient: 2,
			MaximumInterval: 10 * time.Minute, MaximumAttempts: 10},
	})
	var res activities.Verification
	err := workflow.ExecuteActivity(actx, a.VerifyFile, v.ref(name)).Get(ctx, &res)
	return res, err
}

// record writes a file's state; a final one ends its check.
func (v *verifier) record(ctx workflow.Context, name string, state recording.FileState, reason string, reupload bool, event string) {
	var a *activities.Files
	if !reupload {
		v.st.Final[name] = state
	}
	r := activities.FileResult{SessionID: v.scope.SessionID, DeviceID: v.scope.DeviceID, Name: name, State: state,
		Reason: reason, Reupload: reupload, Event: event, At: workflow.Now(ctx)}
	if err := dbWrite(ctx, a.RecordFileResult, r, nil); err != nil {
		workflow.GetLogger(ctx).Error("recording a file's state", "file", name, "error", err)
	}
	if !reupload && (state == recording.FileMissing || state == recording.FileCorrupt) && alertConditions(ctx) {
		// One alert per enclosure and session: a later bad file updates its summary.
		signalAlert(ctx, activities.AlertSignal{Kind: recording.AlertFileBad, SessionID: v.scope.SessionID, DeviceID: v.scope.DeviceID,
			Active: true, Summary: fmt.Sprintf("%s in session %d: %s is %s: %s",
				enclosureName(v.scope.Enclosure, v.scope.DeviceID), v.scope.SessionID, name, state, reason)})
	}
}

// summarize puts one line about the recording's files on the timeline, and flags files that
// cover less than was recorded.
func (v *verifier) summarize(ctx workflow.Context) {
	counts := map[recording.FileState]int{}
	for _, name := range v.st.Names {
		counts[v.st.Final[name]]++
	}
	n := len(v.st.Names)
	kind := "files-verified"
	msg := fmt.Sprintf("all %d files verified", n)
	if counts[recording.FileVerified] != n {
		kind = "files-incomplete"
		msg = fmt.Sprintf("%d of %d files verified, %d missing, %d corrupt", counts[recording.FileVerified], n,
			counts[recording.FileMissing], counts[recording.FileCorrupt])
	}
	reported := v.reported
	if v.recorded > 0 && v.recorded < reported*9/10 {
		kind = "files-incomplete"
		msg += fmt.Sprintf("; the timestamp files cover %s of the %s recorded", v.recorded.Round(time.Second), reported)
	}
	if len(v.problems) > 0 {
		msg += "; " + strings.Join(v.problems, "; ")
	}
	v.scope.Update(ctx, activities.DeviceUpdate{Event: kind, EventMessage: msg})
}
