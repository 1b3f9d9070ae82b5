package activities

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jax-mba/mba/internal/mail"
	"github.com/jax-mba/mba/internal/recording"
)

// DigestStore answers what happened in a period and who may read about it.
type DigestStore interface {
	DigestFacts(ctx context.Context, since, until time.Time) (recording.DigestFacts, error)
	DigestReaders(ctx context.Context) ([]recording.DigestReader, error)
}

// Digest holds the activities of the periodic digest: writing it up for each reader and
// mailing it.
type Digest struct {
	Store DigestStore
	Mail  mail.Sender // nil: no digest can be mailed
}

// DigestPeriod is the period one digest covers, and how to write it.
type DigestPeriod struct {
	Since, Until time.Time
	TimeZone     string // IANA zone the times are written in
	SendEmpty    bool   // mail readers even when nothing happened for them
}

// DigestMail is one reader's digest.
type DigestMail struct {
	To      string
	Subject string
	Body    string
}

// DigestMails writes the period's digest for each reader who gets one: administrators (unless
// they turned it off) read about the whole lab; other people, about their own sessions, when
// they turned the digest on or by default when one of their sessions had an alert. A reader for
// whom nothing happened gets nothing unless p.SendEmpty.
func (d *Digest) DigestMails(ctx context.Context, p DigestPeriod) ([]DigestMail, error) {
	loc, err := time.LoadLocation(p.TimeZone)
	if err != nil {
		loc = time.UTC
	}
	facts, err := d.Store.DigestFacts(ctx, p.Since, p.Until)
	if err != nil {
		return nil, fmt.Errorf("DigestMails: %w", err)
	}
	readers, err := d.Store.DigestReaders(ctx)
	if err != nil {
		return nil, fmt.Errorf("DigestMails: %w", err)
	}
	out := []DigestMail{}
	for _, r := range readers {
		if r.Digest != nil && !*r.Digest {
			continue
		}
		scope := facts
		if !r.Admin {
			scope = ownFacts(facts, r.UserID)
			if r.Digest == nil && len(scope.Alerts) == 0 {
				continue
			}
		}
		w := writeDigest(scope, loc)
		if w.empty() && !p.SendEmpty {
			continue
		}
		out = append(out, DigestMail{To: r.Email, Subject: w.subject(), Body: w.body()})
	}
	return out, nil
}

// MailDigest sends one reader's digest (retried by the workflow's policy).
func (d *Digest) MailDigest(ctx context.Context, m DigestMail) error {
	if d.Mail == nil {
		return fmt.Errorf("MailDigest %s: no mail sender configured", m.To)
	}
	if err := d.Mail.Send(ctx, mail.Message{To: m.To, Subject: m.Subject, Body: m.Body}); err != nil {
		return fmt.Errorf("MailDigest %s: %w", m.To, err)
	}
	return nil
}

// ownFacts is the part of f about the sessions userID created (no fleet alerts, no channels).
func ownFacts(f recording.DigestFacts, userID int64) recording.DigestFacts {
	own := recording.DigestFacts{Since: f.Since, Until: f.Until}
	for _, a := range f.Alerts {
		if a.SessionID != 0 && a.CreatorID == userID {
			own.Alerts = append(own.Alerts, a)
		}
	}
	for _, s := range f.Sessions {
		if s.CreatorID == userID {
			own.Sessions = append(own.Sessions, s)
		}
	}
	return own
}

// digestWriting is a digest sorted into its sections, each a list of lines.
type digestWriting struct {
	loc                                           *time.Location
	since, until                                  time.Time
	opened, escalated, taken, resolved, stillOpen []string
	sessions, channels                            []string
}

func writeDigest(f recording.DigestFacts, loc *time.Location) digestWriting {
	w := digestWriting{loc: loc, since: f.Since, until: f.Until}
	in := func(t time.Time) bool { return !t.Before(f.Since) && t.Before(f.Until) }
	for _, a := range f.Alerts {
		line := alertLine(a)
		if in(a.OpenedAt) {
			w.opened = append(w.opened, line+" — opened "+w.at(a.OpenedAt))
		}
		for _, e := range a.Events {
			switch e.State {
			case recording.AlertEscalated:
				w.escalated = append(w.escalated, line+" — escalated "+w.at(e.At))
			case recording.AlertAcknowledged, recording.AlertSilenced:
				taken := fmt.Sprintf("%s — %s by %s %s", line, e.State, cmp.Or(e.Actor, "someone"), w.at(e.At))
				if e.Note != "" {
					taken += fmt.Sprintf(": %q", e.Note)
				}
				w.taken = append(w.taken, taken)
			}
		}
		switch {
		case a.State != recording.AlertResolved:
			w.stillOpen = append(w.stillOpen, fmt.Sprintf("%s — %s since %s", line, a.State, w.at(a.OpenedAt)))
		case a.ResolvedAt != nil && in(*a.ResolvedAt):
			w.resolved = append(w.resolved, line+" — resolved "+w.at(*a.ResolvedAt))
		}
	}
	for _, s := range f.Sessions {
		w.sessions = append(w.sessions, fmt.Sprintf("%q (session %d): %s, %s", s.Name, s.ID, s.Status, w.at(s.EndedAt)))
	}
	for _, c := range f.BrokenChannels {
		w.channels = append(w.channels, fmt.Sprintf("%s %s: %d failed deliveries, the last %s: %s", c.Channel, c.Target,
			c.Failures, w.at(c.LastAt), c.LastError))
	}
	return w
}

func alertLine(a recording.DigestAlert) string {
	where := "fleet"
	if a.SessionID != 0 {
		where = fmt.Sprintf("session %d %q", a.SessionID, a.SessionName)
	}
	return fmt.Sprintf("[%s] %s (%s)", a.Kind, a.Summary, where)
}

func (w digestWriting) at(t time.Time) string { return t.In(w.loc).Format("Mon 2 Jan 15:04") }

func (w digestWriting) empty() bool {
	return len(w.opened)+len(w.escalated)+len(w.taken)+len(w.resolved)+len(w.stillOpen)+len(w.sessions)+len(w.channels) == 0
}

func (w digestWriting) subject() string {
	if w.empty() {
		return "MBA digest: nothing happened"
	}
	var parts []string
	for _, c := range []struct {
		n    int
		what string
	}{{len(w.stillOpen), "still open"}, {len(w.opened), "opened"}, {len(w.sessions), "sessions finished"},
		{len(w.channels), "channels broken"}} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	if len(parts) == 0 {
		parts = []string{"alerts handled"}
	}
	return "MBA digest: " + strings.Join(parts, ", ")
}

func (w digestWriting) body() string {
	var b strings.Builder
	zone := w.until.In(w.loc).Format("MST")
	fmt.Fprintf(&b, "What happened from %s to %s (%s, %s).\n", w.at(w.since), w.at(w.until), w.loc, zone)
	if w.empty() {
		b.WriteString("\nNothing: no alerts, no sessions finished, every channel delivering.\n")
	}
	for _, s := range []struct {
		title string
		lines []string
	}{{"Alerts still open", w.stillOpen}, {"Alerts opened", w.opened}, {"Alerts escalated (nobody acknowledged in time)", w.escalated},
		{"Alerts acknowledged or silenced", w.taken}, {"Alerts resolved", w.resolved},
		{"Sessions finished", w.sessions}, {"Broken notification channels", w.channels}} {
		if len(s.lines) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n%s (%d)\n", s.title, len(s.lines))
		for _, l := range s.lines {
			b.WriteString("  - " + l + "\n")
		}
	}
	return b.String()
}
