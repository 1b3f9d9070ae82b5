package activities

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	"github.com/jax-mba/mba/internal/recording"
)

// ConditionFacts reports what the fleet scan judges the conditions low_disk, low_fps,
// upload_backlog and channel_broken by; the judging is here, in ConditionLimits' terms.
type ConditionFacts interface {
	OpenAlertSubjects(ctx context.Context, kind recording.AlertKind) ([]AlertSubjectRef, error)
	DiskFacts(ctx context.Context, now, windowStart time.Time, minSpan time.Duration) ([]DiskFacts, error)
	FPSFacts(ctx context.Context, margin float64, now time.Time) ([]FPSFacts, error)
	BacklogFacts(ctx context.Context, dueBefore, endedAfter time.Time) ([]BacklogFacts, error)
	ChannelFacts(ctx context.Context, n int, since time.Time) ([]ChannelFacts, error)
}

// ConditionLimits are the settings of those conditions; a zero limit turns its condition off.
type ConditionLimits struct {
	// DiskMargin is the safety margin of the free-disk projection (0.2: 20 % more than the
	// rest of the recording needs); DiskFloor an absolute minimum of free bytes.
	DiskMargin float64
	DiskFloor  int64
	// DiskWindow is how far back the free-disk slope is measured (over at least half of it).
	DiskWindow time.Duration
	// DiskRate is the bytes per second assumed when neither the slope nor uploaded files
	// tell (the sessions' own projection setting); 0: the projection waits for them.
	DiskRate int64
	// FPSMargin: a frame rate below the target by more than this fraction for FPSFor while
	// recording is an alert.
	FPSMargin float64
	FPSFor    time.Duration
	// BacklogFiles: more files than this due (BacklogGrace past their segment's end) and not
	// uploaded is an alert; it clears under it. Recordings that ended more than BacklogWithin
	// ago are left to the files' deadline.
	BacklogFiles  int
	BacklogGrace  time.Duration
	BacklogWithin time.Duration
	// ChannelFailures: a channel whose last this many deliveries failed is broken.
	ChannelFailures int
}

// ChannelWatch is how far back the channel_broken condition (and the broken gauge) looks for
// channel targets with deliveries.
const ChannelWatch = 7 * 24 * time.Hour

// AlertSubjectRef is the subject of an open alert.
type AlertSubjectRef struct {
	SessionID int64
	DeviceID  int64
	Subject   string
}

// DiskFacts: see store.DiskFacts.
type DiskFacts struct {
	SessionID int64
	DeviceID  int64
	Name      string
	FreeDisk  int64
	Remaining time.Duration
	SlopeBPS  *float64
	FilesBPS  *float64
	Down      bool
}

// FPSFacts: see store.FPSFacts.
type FPSFacts struct {
	SessionID int64
	DeviceID  int64
	Name      string
	FPS       float64
	TargetFPS int
	LowSince  *time.Time
	Down      bool
}

// BacklogFacts: see store.BacklogFacts.
type BacklogFacts struct {
	SessionID int64
	DeviceID  int64
	Name      string
	Files     int
	Bytes     int64
}

// ChannelFacts: see store.ChannelFacts.
type ChannelFacts struct {
	Channel     string
	Target      string
	LastOutcome string
	LastError   string
	Failed      int
}

// judgement is a condition's verdict on one subject: raise it (with what is wrong), clear it,
// or neither (a value between the raise and the clear thresholds keeps what is).
type judgement struct {
	subject AlertSubjectRef
	raise   bool
	clear   bool
	summary string
}

// conditionAlerts raises and clears the alerts of the conditions the limits turn on.
func (f *Fleet) conditionAlerts(ctx context.Context, now time.Time) error {
	if f.Facts == nil || f.Raiser == nil {
		return nil
	}
	l := f.Limits
	var errs []error
	if l.DiskMargin > 0 || l.DiskFloor > 0 {
		errs = append(errs, f.judge(ctx, recording.AlertLowDisk, true, func() ([]judgement, error) {
			list, err := f.Facts.DiskFacts(ctx, now, now.Add(-l.DiskWindow), l.DiskWindow/2)
			return judgeAll(list, l.disk), err
		}))
	}
	if l.FPSMargin > 0 {
		errs = append(errs, f.judge(ctx, recording.AlertLowFPS, true, func() ([]judgement, error) {
			list, err := f.Facts.FPSFacts(ctx, l.FPSMargin, now)
			return judgeAll(list, func(x FPSFacts) judgement { return l.fps(x, now) }), err
		}))
	}
	if l.BacklogFiles > 0 {
		errs = append(errs, f.judge(ctx, recording.AlertUploadBacklog, true, func() ([]judgement, error) {
			list, err := f.Facts.BacklogFacts(ctx, now.Add(-l.BacklogGrace), now.Add(-l.BacklogWithin))
			return judgeAll(list, l.backlog), err
		}))
	}
	if l.ChannelFailures > 0 {
		// A channel without recent deliveries keeps its alert: only a delivery that went
		// through proves it works again.
		errs = append(errs, f.judge(ctx, recording.AlertChannelBroken, false, func() ([]judgement, error) {
			list, err := f.Facts.ChannelFacts(ctx, l.ChannelFailures, now.Add(-ChannelWatch))
			return judgeAll(list, l.channel), err
		}))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("conditionAlerts: %w", err)
	}
	return nil
}

func judgeAll[T any](list []T, judge func(T) judgement) []judgement {
	out := make([]judgement, len(list))
	for i, x := range list {
		out[i] = judge(x)
	}
	return out
}

// judge raises what is wrong and has no open alert, and clears the open alerts whose subject
// is fine again, or, with absentClears, no longer watched (it left its session).
func (f *Fleet) judge(ctx context.Context, kind recording.AlertKind, absentClears bool, facts func() ([]judgement, error)) error {
	list, err := facts()
	if err != nil {
		return err
	}
	open, err := f.Facts.OpenAlertSubjects(ctx, kind)
	if err != nil {
		return err
	}
	isOpen := make(map[AlertSubjectRef]bool, len(open))
	for _, s := range open {
		isOpen[s] = true
	}
	seen := make(map[AlertSubjectRef]bool, len(list))
	var errs []error
	signal := func(s AlertSubjectRef, active bool, summary string) {
		errs = append(errs, f.Raiser.SignalAlert(ctx, AlertSignal{Kind: kind, SessionID: s.SessionID, DeviceID: s.DeviceID,
			Subject: s.Subject, Active: active, Summary: summary}))
	}
	for _, j := range list {
		seen[j.subject] = true
		switch {
		case j.raise && !isOpen[j.subject]:
			signal(j.subject, true, j.summary)
		case j.clear && isOpen[j.subject]:
			signal(j.subject, false, "")
		}
	}
	for _, s := range open {
		if absentClears && !seen[s] {
			signal(s, false, "")
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s: %w", kind, err)
	}
	return nil
}

// disk projects whether the free disk lasts the rest of the recording at its rate: the
// slope of its own free-disk telemetry, else its uploaded videos' bytes per second recorded,
// else the configured rate.
func (l ConditionLimits) disk(x DiskFacts) judgement {
	j := judgement{subject: AlertSubjectRef{SessionID: x.SessionID, DeviceID: x.DeviceID}}
	if x.Down {
		return j // unknown while it is DOWN (its DOWN alert tells): neither raised nor cleared
	}
	rate, how := float64(l.DiskRate), "the configured rate"
	switch {
	case x.SlopeBPS != nil:
		rate, how = max(*x.SlopeBPS, 0), "its free-disk trend"
	case x.FilesBPS != nil:
		rate, how = *x.FilesBPS, "its uploaded files"
	}
	free := float64(x.FreeDisk)
	need := rate * x.Remaining.Seconds() * (1 + l.DiskMargin)
	switch {
	case l.DiskFloor > 0 && x.FreeDisk < l.DiskFloor:
		j.raise, j.summary = true, fmt.Sprintf("%s in session %d: %s of disk free, under the floor of %s",
			x.Name, x.SessionID, bytesText(free), bytesText(float64(l.DiskFloor)))
	case l.DiskMargin > 0 && rate > 0 && free < need:
		j.raise, j.summary = true, fmt.Sprintf("%s in session %d: free disk lasts %.1f h at %s/s (%s); %.1f h of recording left "+
			"(needs %s with a %.0f %% margin, %s free)", x.Name, x.SessionID, free/rate/3600, bytesText(rate), how,
			x.Remaining.Hours(), bytesText(need), l.DiskMargin*100, bytesText(free))
	default:
		j.clear = true
	}
	return j
}

// fps: below the target by the margin for FPSFor while recording.
func (l ConditionLimits) fps(x FPSFacts, now time.Time) judgement {
	j := judgement{subject: AlertSubjectRef{SessionID: x.SessionID, DeviceID: x.DeviceID}}
	if x.Down {
		return j // as for the disk: no news while it is DOWN
	}
	if x.LowSince == nil {
		j.clear = true
		return j
	}
	if low := now.Sub(*x.LowSince); low >= l.FPSFor {
		j.raise, j.summary = true, fmt.Sprintf("%s in session %d records at %.1f fps, below its target of %d by more than %.0f %% for %s",
			x.Name, x.SessionID, x.FPS, x.TargetFPS, l.FPSMargin*100, low.Round(time.Second))
	}
	return j
}

// backlog: more files due than the limit raises; fewer clears (at the limit, it stays).
func (l ConditionLimits) backlog(x BacklogFacts) judgement {
	j := judgement{subject: AlertSubjectRef{SessionID: x.SessionID, DeviceID: x.DeviceID},
		raise: x.Files > l.BacklogFiles, clear: x.Files < l.BacklogFiles}
	if j.raise {
		size := ""
		if x.Bytes > 0 {
			size = fmt.Sprintf(" (%s known)", bytesText(float64(x.Bytes)))
		}
		j.summary = fmt.Sprintf("%s in session %d: %d files due more than %s ago are not uploaded%s (limit %d)",
			x.Name, x.SessionID, x.Files, l.BacklogGrace, size, l.BacklogFiles)
	}
	return j
}

// channel: its last ChannelFailures deliveries failed; one that went through clears it.
func (l ConditionLimits) channel(x ChannelFacts) judgement {
	j := judgement{subject: AlertSubjectRef{Subject: ChannelSubject(x.Channel, x.Target)},
		raise: x.Failed >= l.ChannelFailures, clear: x.LastOutcome == "sent"}
	if j.raise {
		j.summary = fmt.Sprintf("notification channel %s %s is broken: its last %d deliveries failed (last error: %s)",
			x.Channel, x.Target, x.Failed, truncateText(x.LastError, 300))
	}
	return j
}

// bytesText writes a size for people, in decimal units as disks are sold.
func bytesText(b float64) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB"}
	i := 0
	for math.Abs(b) >= 1000 && i < len(units)-1 {
		b /= 1000
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f B", b)
	}
	return fmt.Sprintf("%.1f %s", b, units[i])
}

// truncateText cuts s to at most n bytes, on a rune boundary.
func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
