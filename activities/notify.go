package activities

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/jax-mba/mba/internal/mail"
	"github.com/jax-mba/mba/internal/notify"
	"github.com/jax-mba/mba/internal/recording"
)

// Notification channels.
const (
	ChannelEmail   = "email"
	ChannelWebhook = "webhook" // generic JSON, signed (notify.Verify)
	ChannelSlack   = "slack"   // Slack-compatible incoming webhook
)

// AlertStore keeps alerts, their transitions and deliveries, and answers who to tell.
type AlertStore interface {
	RecordAlert(ctx context.Context, r AlertRecord) error
	RecordDelivery(ctx context.Context, d DeliveryRecord) error
	// SessionCreator is the person who created a session (ok false: nobody, e.g. deleted).
	SessionCreator(ctx context.Context, sessionID int64) (p Person, ok bool, err error)
	Admins(ctx context.Context) ([]Person, error)
	// PeopleByEmail finds the users among addresses (for their preferences); others are absent.
	PeopleByEmail(ctx context.Context, emails []string) ([]Person, error)
	// SubjectNames names an alert's session and enclosure for its notices.
	SubjectNames(ctx context.Context, sessionID, deviceID int64) (SubjectNames, error)
}

// SubjectNames are the names of an alert's session and enclosure (” when none).
type SubjectNames struct {
	Session string
	Device  string
}

// Person is a user to notify, with their preferences.
type Person struct {
	UserID int64
	Email  string
	Prefs  NotificationPrefs
}

// NotificationPrefs are a user's choices; the zero value is e-mail for every kind, always.
type NotificationPrefs struct {
	Kinds      []recording.AlertKind // empty: every kind
	Channel    string                // ChannelEmail or "none"
	QuietStart int                   // minutes after midnight in TZ; equal to QuietEnd: no quiet hours
	QuietEnd   int
	TZ         string
}

// Wants reports whether the user wants an alert of kind now.
func (p NotificationPrefs) Wants(kind recording.AlertKind, now time.Time) bool {
	if p.Channel == "none" || (len(p.Kinds) > 0 && !slices.Contains(p.Kinds, kind)) {
		return false
	}
	if p.QuietStart == p.QuietEnd {
		return true
	}
	loc, err := time.LoadLocation(p.TZ)
	if err != nil {
		loc = time.UTC
	}
	t := now.In(loc)
	m := t.Hour()*60 + t.Minute()
	if p.QuietStart < p.QuietEnd {
		return m < p.QuietStart || m >= p.QuietEnd
	}
	return m < p.QuietStart && m >= p.QuietEnd // quiet hours wrap past midnight
}

// AlertRecord is an alert's row after a transition, with the transitions since the last record.
type AlertRecord struct {
	Key           string
	WorkflowID    string
	Kind          recording.AlertKind
	SessionID     int64  // 0: none
	DeviceID      int64  // 0: none
	Subject       string // '' unless the alert is about something else (a channel)
	Summary       string
	State         recording.AlertState
	Tier          int
	Reopens       int
	AckedBy       string
	AckedAt       *time.Time
	AckNote       string
	SilencedUntil *time.Time
	OpenedAt      time.Time
	UpdatedAt     time.Time
	ResolvedAt    *time.Time
	Events        []AlertEvent
}

// AlertEvent is one transition of an alert (the vocabulary's: the store keeps the same).
type AlertEvent = recording.AlertEvent

// DeliveryRecord is one attempt to deliver a notice.
type DeliveryRecord struct {
	AlertKey string
	Channel  string
	Target   string
	Notice   string
	Attempt  int
	Outcome  string // "sent" or "failed"
	Error    string
}

// Recipient is where one notice goes: an e-mail address, or a configured webhook by name
// (its URL and secret stay in the worker's configuration, out of workflow histories).
type Recipient struct {
	Channel string
	Target  string
}

// RecipientQuery asks who to tell about an alert at an escalation tier.
type RecipientQuery struct {
	Kind      recording.AlertKind
	SessionID int64
	DeviceID  int64
	Subject   string // of a channel_broken alert: the broken channel (ChannelSubject)
	Tier      int
	Owner     string // AlertSignal.Owner
}

// NotifyRequest is one notice to one recipient.
type NotifyRequest struct {
	To     Recipient
	Notice notify.Notice
}

// Webhook is a configured webhook receiver.
type Webhook struct {
	Name   string
	Kind   string // ChannelWebhook or ChannelSlack
	URL    string
	Secret []byte // signs ChannelWebhook bodies
}

// Alerts holds the activities of alert lifecycles: recording transitions, finding recipients
// and delivering notices.
type Alerts struct {
	Store AlertStore
	Mail  mail.Sender
	// Webhooks are told of every alert at tier 0.
	Webhooks []Webhook
	// FleetRecipients are told of fleet alerts (no session) at tier 0; empty: the administrators.
	FleetRecipients []string
	// Tiers are the escalation tiers after the first: each a list of e-mail addresses, webhook
	// names, or "admins".
	Tiers [][]string
	// AlertsURL is the UI's address (http public-url): notices link to the alert there.
	AlertsURL string
	HTTP      *http.Client     // nil: a client with a 30 s timeout
	Now       func() time.Time // nil: time.Now
	// Raiser opens and clears alerts for the workflows that watch conditions; nil: alerts
	// are not raised (SignalAlert does nothing).
	Raiser AlertRaiser
}

// AlertRaiser opens an alert (SignalWithStart: one per condition and subject) or clears it.
type AlertRaiser interface {
	SignalAlert(ctx context.Context, s AlertSignal) error
}

// AlertSignal says a condition holds (Active) or cleared, for a subject.
type AlertSignal struct {
	Kind      recording.AlertKind
	SessionID int64 // 0: a fleet alert
	DeviceID  int64
	Subject   string // what a fleet alert is about when it is no enclosure (ChannelSubject); usually ''
	Active    bool
	Summary   string
	// Notice: the alert is told once and resolves at once (an event, not a condition that
	// clears: a session finished); only with Active.
	Notice bool
	// Owner is told at the first tier instead of the session's creator or the fleet's
	// recipients (a schedule's owner, for its skipped runs); "" for the usual ones.
	Owner string
}

// SignalAlert raises or clears an alert.
func (a *Alerts) SignalAlert(ctx context.Context, s AlertSignal) error {
	if a.Raiser == nil {
		return nil
	}
	if err := a.Raiser.SignalAlert(ctx, s); err != nil {
		return fmt.Errorf("SignalAlert %s: %w", s.Kind, err)
	}
	return nil
}

// RecordAlert writes an alert's row and its new transitions (idempotent by event Seq).
func (a *Alerts) RecordAlert(ctx context.Context, r AlertRecord) error {
	return a.Store.RecordAlert(ctx, r) // the store's error names the method and the alert
}

// AlertRecipients lists who to tell at q.Tier, honouring people's preferences now; none
// means the tier is empty (or everyone in it is in quiet hours).
func (a *Alerts) AlertRecipients(ctx context.Context, q RecipientQuery) ([]Recipient, error) {
	people, hooks, err := a.tier(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("AlertRecipients tier %d: %w", q.Tier, err)
	}
	now := a.now()
	out := []Recipient{}
	for _, p := range people {
		r := Recipient{Channel: ChannelEmail, Target: p.Email}
		if p.Prefs.Wants(q.Kind, now) && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	for _, h := range hooks {
		out = append(out, Recipient{Channel: h.Kind, Target: h.Name})
	}
	if q.Kind == recording.AlertChannelBroken {
		// A broken channel is told of through the others (and the dashboard), never through
		// itself: its failures would only feed its own alert.
		out = slices.DeleteFunc(out, func(r Recipient) bool { return ChannelSubject(r.Channel, r.Target) == q.Subject })
	}
	return out, nil
}

// ChannelSubject is the subject of a channel_broken alert: the channel and its target.
func ChannelSubject(channel, target string) string { return channel + ":" + target }

// tier is the people and webhooks of q's tier.
func (a *Alerts) tier(ctx context.Context, q RecipientQuery) ([]Person, []Webhook, error) {
	if q.Tier == 0 {
		if q.Owner != "" {
			people, err := a.targets(ctx, []string{q.Owner})
			return people, a.Webhooks, err
		}
		if q.SessionID != 0 {
			p, ok, err := a.Store.SessionCreator(ctx, q.SessionID)
			if err != nil || ok {
				return []Person{p}, a.Webhooks, err
			}
			// Nobody owns the session any more: it is the administrators' (below).
		}
		people, err := a.targets(ctx, a.FleetRecipients)
		return people, a.Webhooks, err
	}
	if q.Tier > len(a.Tiers) {
		return nil, nil, nil
	}
	var hooks []Webhook
	var addrs []string
	for _, t := range a.Tiers[q.Tier-1] {
		if i := slices.IndexFunc(a.Webhooks, func(h Webhook) bool { return h.Name == t }); i >= 0 {
			hooks = append(hooks, a.Webhooks[i])
		} else {
			addrs = append(addrs, t)
		}
	}
	people, err := a.targets(ctx, addrs)
	return people, hooks, err
}

// targets resolves addresses and "admins" (all of them when addrs is empty) to people, with the
// preferences of those who are users.
func (a *Alerts) targets(ctx context.Context, addrs []string) ([]Person, error) {
	var people []Person
	if len(addrs) == 0 || slices.Contains(addrs, "admins") {
		admins, err := a.Store.Admins(ctx)
		if err != nil {
			return nil, err
		}
		people = append(people, admins...)
	}
	addrs = slices.DeleteFunc(slices.Clone(addrs), func(s string) bool { return s == "admins" })
	if len(addrs) == 0 {
		return people, nil
	}
	users, err := a.Store.PeopleByEmail(ctx, addrs)
	if err != nil {
		return nil, err
	}
	for _, addr := range addrs {
		p := Person{Email: addr}
		if i := slices.IndexFunc(users, func(u Person) bool { return strings.EqualFold(u.Email, addr) }); i >= 0 {
			p = users[i]
		}
		people = append(people, p)
	}
	return people, nil
}

// Notify delivers one notice and records the attempt. The workflow's retry policy retries it
// with backoff; a receiver's refusal (4xx other than 429) is final.
func (a *Alerts) Notify(ctx context.Context, req NotifyRequest) error {
	req.Notice = a.describe(ctx, req.Notice)
	err := a.deliver(ctx, req)
	rec := DeliveryRecord{AlertKey: req.Notice.AlertKey, Channel: req.To.Channel, Target: req.To.Target,
		Notice: req.Notice.Notice, Attempt: int(activity.GetInfo(ctx).Attempt), Outcome: "sent"}
	if err != nil {
		rec.Outcome, rec.Error = "failed", err.Error()
	}
	if rerr := a.Store.RecordDelivery(ctx, rec); rerr != nil {
		activity.GetLogger(ctx).Error("recording a delivery", "error", rerr)
	}
	var final *temporal.ApplicationError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &final) && final.NonRetryable():
		return final // wrapped, it would lose its non-retryable mark (its message names the channel)
	}
	return fmt.Errorf("Notify %s %s: %w", req.To.Channel, req.To.Target, err)
}

// describe adds what the workflow does not know to a notice: the names of its session and
// enclosure, and the link to it on the Alerts page. Without the names it still goes out.
func (a *Alerts) describe(ctx context.Context, n notify.Notice) notify.Notice {
	if n.SessionID != 0 || n.DeviceID != 0 {
		names, err := a.Store.SubjectNames(ctx, n.SessionID, n.DeviceID)
		if err != nil {
			activity.GetLogger(ctx).Warn("naming an alert's subject", "error", err)
		}
		n.SessionName, n.DeviceName = names.Session, names.Device
	}
	if a.AlertsURL != "" {
		q := url.Values{"kind": {n.Kind}}
		if n.Notice == notify.NoticeRecovered {
			q.Set("tab", "resolved")
		}
		if n.SessionID != 0 {
			q.Set("session", strconv.FormatInt(n.SessionID, 10))
		}
		if n.DeviceID != 0 {
			q.Set("device", strconv.FormatInt(n.DeviceID, 10))
		}
		n.URL = strings.TrimRight(a.AlertsURL, "/") + "/#/alerts?" + q.Encode()
	}
	return n
}

func (a *Alerts) deliver(ctx context.Context, req NotifyRequest) error {
	n := req.Notice
	switch req.To.Channel {
	case ChannelEmail:
		if a.Mail == nil {
			return temporal.NewNonRetryableApplicationError("no mail sender configured", "NoChannel", nil)
		}
		return a.Mail.Send(ctx, mail.Message{To: req.To.Target, Subject: n.Subject(), Body: n.Text()})
	case ChannelWebhook, ChannelSlack:
		i := slices.IndexFunc(a.Webhooks, func(h Webhook) bool { return h.Name == req.To.Target })
		if i < 0 {
			return temporal.NewNonRetryableApplicationError("no webhook named "+req.To.Target, "NoChannel", nil)
		}
		return a.post(ctx, a.Webhooks[i], n)
	}
	return temporal.NewNonRetryableApplicationError("unknown channel "+req.To.Channel, "NoChannel", nil)
}

// post sends n to a webhook.
func (a *Alerts) post(ctx context.Context, h Webhook, n notify.Notice) error {
	body := n.JSON()
	if h.Kind == ChannelSlack {
		body = n.Slack()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return temporal.NewNonRetryableApplicationError("webhook "+h.Name+": bad URL", "NoChannel", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "mba-notify")
	if h.Kind == ChannelWebhook && len(h.Secret) > 0 {
		notify.SetHeaders(req.Header, h.Secret, a.now(), body)
	}
	client := a.HTTP
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	res, err := client.Do(req)
	if err != nil {
		return err // unreachable or timed out: retried
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10)) // reuse the connection
	switch {
	case res.StatusCode < 300:
		return nil
	case res.StatusCode == http.StatusTooManyRequests || res.StatusCode >= 500:
		return fmt.Errorf("webhook %s answered %s", h.Name, res.Status)
	}
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf("webhook %s refused the notice: %s", h.Name, res.Status),
		"WebhookRefused", errors.New(res.Status))
}

func (a *Alerts) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}
