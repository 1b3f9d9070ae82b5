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

// verifier checks every file of an enclosure's recording: each fragment as soon as the agent
// has sent it, the rest once the recording is over. For each file it waits for the upload,
// has it hashed from storage and records VERIFIED, or asks the agent for it again, and
// finally records MISSING or CORRUPT. One file's trouble never holds up another: each file
// has a goroutine of its own.
type verifier struct {
	d        *device
	st       *FileChecks
	deadline workflow.Future // set when the recording is over: the last moment an upload may arrive
	expired  bool
	wake     map[string]workflow.Channel // file -> its goroutine's wake-up
	running  int                         // file goroutines not finished
	active   int                         // VerifyFile activities running
	recorded time.Duration               // what the timestamp files say, all segments
	problems []string                    // segments whose file list may be incomplete
}

func newVerifier(d *device) *verifier {
	st := &d.st.Files
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
	return &verifier{d: d, st: st, wake: map[string]workflow.Channel{}}
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
	if v.d.in.Settings.SkipFileChecks {
		return
	}
	v.st.Uploads[ev.File] = max(v.st.Uploads[ev.File], ev.Upload)
	if c, ok := v.wake[ev.File]; ok {
		c.SendAsync(true)
		return
	}
	v.start(ctx, ev.File)
}

// verifyFiles checks the recording's files once it is over, to the last one.
func (d *device) verifyFiles(ctx workflow.Context) {
	var a *activities.Files
	if d.st.Segments == 0 || d.in.Settings.SkipFileChecks {
		return
	}
	v := d.files
	v.deadline = workflow.NewTimer(ctx, v.uploadDeadline())
	var known []activities.KnownFile
	if err := dbWrite(ctx, a.FileStates, d.fileRef(""), &known); err != nil {
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
	for seg := 1; seg <= d.st.Segments; seg++ {
		v.running++
		workflow.Go(ctx, func(ctx workflow.Context) {
			defer func() { v.running-- }()
			v.segment(ctx, protocol.FileNamePrefix(protocol.SegmentPrefix(d.in.FilePrefix, seg)))
		})
	}
	_ = workflow.Await(ctx, func() bool { return v.running == 0 })
	if ctx.Err() == nil {
		v.summarize(ctx)
	}
}

func (d *device) fileRef(name string) activities.FileRef {
	return activities.FileRef{SessionID: d.in.SessionID, DeviceID: d.in.DeviceID, Enclosure: d.in.DeviceName, Name: name}
}

// listen routes file-uploaded events to the files' checks once the recording is over (while it
// runs, the recording's own loop does).
func (v *verifier) listen(ctx workflow.Context) {
	for {
		var ev recording.Event
		if !v.d.events.Receive(ctx, &ev) {
			return
		}
		if v.d.fresh(ev) && ev.Kind == recording.EventFileUploaded {
			v.uploaded(ctx, ev)
		}
	}
}

// segment checks the files of one segment: the timestamp files first, since they tell
// which hourly fragments there must be.
func (v *verifier) segment(ctx workflow.Context, prefix string) {
	var a *activities.Files
	fixed := protocol.SegmentFiles(prefix, v.d.in.FragmentHourly)
	if err := dbWrite(ctx, a.ExpectFiles,
		activities.ExpectRequest{SessionID: v.d.in.SessionID, DeviceID: v.d.in.DeviceID, Names: fixed}, nil); err != nil {
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
	err := workflow.ExecuteActivity(actx, a.PlanSegment, activities.SegmentRequest{SessionID: v.d.in.SessionID,
		DeviceID: v.d.in.DeviceID, Enclosure: v.d.in.DeviceName, Prefix: prefix, Hourly: v.d.in.FragmentHourly}).Get(ctx, &plan)
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
		if st.Asked[name] >= v.d.in.Settings.Reuploads {
			v.record(ctx, name, state, fmt.Sprintf("%s (after %d new copies)", res.Reason, st.Asked[name]), false, "file-"+strings.ToLower(string(state)))
			return
		}
		st.Asked[name]++
		// The agent sees reupload in its manifest and sends the file again.
		v.record(ctx, name, state, res.Reason+"; asked the agent for a new copy", true, "file-reupload")
	}
}

func (v *verifier) uploadDeadline() time.Duration {
	if d := v.d.in.Settings.UploadDeadline; d > 0 {
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
	err := workflow.ExecuteActivity(actx, a.VerifyFile, v.d.fileRef(name)).Get(ctx, &res)
	return res, err
}

// record writes a file's state; a final one ends its check.
func (v *verifier) record(ctx workflow.Context, name string, state recording.FileState, reason string, reupload bool, event string) {
	var a *activities.Files
	if !reupload {
		v.st.Final[name] = state
	}
	r := activities.FileResult{SessionID: v.d.in.SessionID, DeviceID: v.d.in.DeviceID, Name: name, State: state,
		Reason: reason, Reupload: reupload, Event: event, At: workflow.Now(ctx)}
	if err := dbWrite(ctx, a.RecordFileResult, r, nil); err != nil {
		workflow.GetLogger(ctx).Error("recording a file's state", "file", name, "error", err)
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
	reported := time.Duration(v.d.st.Recorded) * time.Second
	if v.recorded > 0 && v.recorded < reported*9/10 {
		kind = "files-incomplete"
		msg += fmt.Sprintf("; the timestamp files cover %s of the %s recorded", v.recorded.Round(time.Second), reported)
	}
	if len(v.problems) > 0 {
		msg += "; " + strings.Join(v.problems, "; ")
	}
	v.d.update(ctx, activities.DeviceUpdate{Event: kind, EventMessage: msg})
}
