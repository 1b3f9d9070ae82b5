package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jax-mba/mba/activities"
	"github.com/jax-mba/mba/internal/dispatch"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/store"
	"github.com/jax-mba/mba/workflows"
)

// AlertConfig is what channel health needs of the alert settings.
type AlertConfig struct {
	// ChannelFailures is the channel_broken condition's rule: a channel target whose last
	// this many deliveries failed is broken (0: the condition is off, nothing is broken).
	ChannelFailures int
	// Channels are the configured targets (webhooks by name, configured addresses): each has
	// a broken gauge from the start, before its first delivery.
	Channels []ChannelTarget
}

// ChannelTarget is one target of a notification channel (email, webhook, slack).
type ChannelTarget struct{ Channel, Target string }

// broken applies the channel_broken rule to a run of failed deliveries.
func (c AlertConfig) broken(failedInARow int) bool {
	return c.ChannelFailures > 0 && failedInARow >= c.ChannelFailures
}

// AlertStore reads the alerts the alert workflows record.
type AlertStore interface {
	ListAlerts(ctx context.Context, f store.AlertFilter) ([]store.Alert, error)
	AlertByID(ctx context.Context, id int64) (store.Alert, error)
	AlertEvents(ctx context.Context, id int64) ([]store.AlertEvent, error)
	ChannelHealth(ctx context.Context, since time.Time) ([]store.ChannelHealth, error)
}

// AlertWorkflows runs people's requests on the alert workflows (dispatch.Alerts): as
// Temporal updates, so the workflow's validator answers before anything is recorded.
type AlertWorkflows interface {
	Acknowledge(ctx context.Context, workflowID string, req workflows.AckRequest) (workflows.AlertLifecycleState, error)
	Silence(ctx context.Context, workflowID string, req workflows.SilenceRequest) (workflows.AlertLifecycleState, error)
}

// maxSilenceDays bounds a silence (the workflow checks its policy's MaxSilence too).
const maxSilenceDays = 7

// checkNote refuses a note over the workflows' limit with a 400, before it reaches the workflow.
func checkNote(note string) error {
	if len(note) > workflows.MaxAlertNote {
		return invalid(map[string]string{"note": fmt.Sprintf("must be at most %d bytes", workflows.MaxAlertNote)})
	}
	return nil
}

func alertRoutes(r chi.Router, s *Server) {
	r.Get("/alerts", s.handle(s.listAlerts))
	r.With(s.adminOnly).Get("/alerts/channels", s.handle(s.channelHealth))
	r.Get("/alerts/{aid}", s.handle(s.getAlert))
	r.Post("/alerts/{aid}/acknowledge", s.handle(s.acknowledgeAlert))
	r.Post("/alerts/{aid}/silence", s.handle(s.silenceAlert))
}

// listAlerts: ?state=open,notified (comma-separated) &kind= &session= &device= &limit=.
func (s *Server) listAlerts(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var f store.AlertFilter
	problems := map[string]string{}
	if raw := q.Get("state"); raw != "" {
		for _, st := range strings.Split(raw, ",") {
			if !slices.Contains(recording.AlertStates, recording.AlertState(st)) {
				problems["state"] = "must be a comma-separated list of " + joinStates()
				break
			}
			f.States = append(f.States, recording.AlertState(st))
		}
	}
	if k := q.Get("kind"); k != "" {
		if !slices.Contains(recording.AlertKinds, recording.AlertKind(k)) {
			problems["kind"] = "is not a kind of alert"
		}
		f.Kind = recording.AlertKind(k)
	}
	for name, into := range map[string]*int64{"session": &f.SessionID, "device": &f.DeviceID} {
		if raw := q.Get(name); raw != "" {
			id, err := strconv.ParseInt(raw, 10, 64)
			if err != nil || id <= 0 {
				problems[name] = "must be a positive id"
			}
			*into = id
		}
	}
	if raw := q.Get("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > 500 {
			problems["limit"] = "must be between 1 and 500"
		}
		f.Limit = n
	}
	if len(problems) > 0 {
		return invalid(problems)
	}
	list, err := s.alerts.ListAlerts(r.Context(), f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, views(list, alertView))
	return nil
}

// channelHealth shows administrators which notification channels work: every target's
// attempts and failures over the last ?days (default 7), failing ones first.
func (s *Server) channelHealth(w http.ResponseWriter, r *http.Request) error {
	days := 7
	if raw := r.URL.Query().Get("days"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > 365 {
			return invalid(map[string]string{"days": "must be between 1 and 365"})
		}
		days = n
	}
	list, err := s.alerts.ChannelHealth(r.Context(), s.now().Add(-time.Duration(days)*24*time.Hour))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, views(list, s.channelHealthView))
	return nil
}

func joinStates() string {
	names := make([]string, len(recording.AlertStates))
	for i, st := range recording.AlertStates {
		names[i] = string(st)
	}
	return strings.Join(names, ", ")
}

func (s *Server) alertParam(r *http.Request) (store.Alert, error) {
	id, err := idParam(r, "aid", "alert")
	if err != nil {
		return store.Alert{}, err
	}
	a, err := s.alerts.AlertByID(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return a, errorf(http.StatusNotFound, "alert %d Not Found", id)
	}
	return a, err
}

func (s *Server) getAlert(w http.ResponseWriter, r *http.Request) error {
	a, err := s.alertParam(r)
	if err != nil {
		return err
	}
	events, err := s.alerts.AlertEvents(r.Context(), a.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, AlertDetailView{AlertView: alertView(a), Events: views(events, alertEventView)})
	return nil
}

type ackBody struct {
	Note string `json:"note"`
}

// acknowledgeAlert: any signed-in user may take an alert (at 3 a.m. whoever answers does).
func (s *Server) acknowledgeAlert(w http.ResponseWriter, r *http.Request) error {
	var body ackBody
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	if err := checkNote(body.Note); err != nil {
		return err
	}
	return s.alertUpdate(w, r, recording.AuditAlertAcknowledge, body.Note, func(ctx context.Context, a store.Alert, who string) (workflows.AlertLifecycleState, error) {
		return s.alertWorkflows.Acknowledge(ctx, a.WorkflowID, workflows.AckRequest{Key: a.Key, Who: who, Note: body.Note})
	})
}

type silenceBody struct {
	Until   *time.Time `json:"until"`
	Minutes *int       `json:"minutes"`
	Note    string     `json:"note"`
}

// silenceAlert mutes an alert until a time (until) or for a while (minutes), one of them.
func (s *Server) silenceAlert(w http.ResponseWriter, r *http.Request) error {
	var body silenceBody
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	now := s.now()
	var until time.Time
	switch {
	case (body.Until == nil) == (body.Minutes == nil):
		return invalid(map[string]string{"until": "give either until (RFC 3339) or minutes"})
	case body.Minutes != nil:
		if *body.Minutes < 1 || *body.Minutes > maxSilenceDays*24*60 {
			return invalid(map[string]string{"minutes": "must be between 1 and 10080 (7 days)"})
		}
		until = now.Add(time.Duration(*body.Minutes) * time.Minute)
	default:
		until = *body.Until
		if !until.After(now) || until.Sub(now) > maxSilenceDays*24*time.Hour {
			return invalid(map[string]string{"until": "must be in the future, within 7 days"})
		}
	}
	if err := checkNote(body.Note); err != nil {
		return err
	}
	return s.alertUpdate(w, r, recording.AuditAlertSilence, fmt.Sprintf("until %s: %s", until.UTC().Format(time.RFC3339), body.Note), func(ctx context.Context, a store.Alert, who string) (workflows.AlertLifecycleState, error) {
		return s.alertWorkflows.Silence(ctx, a.WorkflowID, workflows.SilenceRequest{Key: a.Key, Who: who, Note: body.Note, Until: until})
	})
}

// alertUpdate runs a person's update on the {aid} alert's workflow and answers with the alert
// as recorded after it.
func (s *Server) alertUpdate(w http.ResponseWriter, r *http.Request, action recording.AuditAction, detail string,
	run func(context.Context, store.Alert, string) (workflows.AlertLifecycleState, error)) error {
	a, err := s.alertParam(r)
	if err != nil {
		return err
	}
	if a.State == recording.AlertResolved {
		return errorf(http.StatusConflict, "alert %d is resolved", a.ID)
	}
	if s.alertWorkflows == nil {
		return errorf(http.StatusServiceUnavailable, "alerts are not connected to Temporal")
	}
	me := currentUser(r)
	st, err := run(r.Context(), a, me.Email)
	var refused *dispatch.RefusedError
	switch {
	case errors.Is(err, dispatch.ErrAlertClosed):
		return errorf(http.StatusConflict, "alert %d is resolved", a.ID)
	case errors.As(err, &refused):
		return errorf(http.StatusConflict, "alert %d: %s", a.ID, refused.Reason)
	case err != nil:
		return err
	}
	s.audit(r, me.ID, action, strconv.FormatInt(a.ID, 10), detail)
	// The workflow records its transition through an activity that may not have run yet:
	// answer with the workflow's word, on the row's identity.
	a.State, a.Tier, a.Reopens = st.State, st.Tier, st.Reopens
	a.AckedBy, a.AckedAt, a.AckNote, a.SilencedUntil = optString(st.AckedBy), optTime(st.AckedAt), optString(st.AckNote), optTime(st.SilencedUntil)
	writeJSON(w, http.StatusOK, alertView(a))
	return nil
}

func optString(v string) *string {
	if v == "" {
		return nil
	}
	return &v
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

var alertDescs = struct{ deliveries, open, broken *prometheus.Desc }{
	deliveries: prometheus.NewDesc("mba_notifications_total",
		"Alert notification delivery attempts by channel (email, webhook, slack) and outcome (sent, failed); a channel whose failures grow is broken.",
		[]string{"channel", "outcome"}, nil),
	open: prometheus.NewDesc("mba_alerts_open", "Alerts not resolved, by kind.", []string{"kind"}, nil),
	broken: prometheus.NewDesc("mba_notification_channel_broken",
		"1 when a notification channel target (an e-mail address, a webhook's name) is broken: its last alerts channel-failures deliveries failed; "+
			"the configured targets and those with deliveries in the last 7 days.",
		[]string{"channel", "target"}, nil),
}

// alertsCollector exports the deliveries, open alerts and broken channels from their tables
// at scrape time, so the numbers are the same whichever process (worker or API) delivered.
type alertsCollector struct {
	pool *pgxpool.Pool
	now  func() time.Time
	cfg  AlertConfig
}

func (c alertsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- alertDescs.deliveries
	ch <- alertDescs.open
	ch <- alertDescs.broken
}

func (c alertsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeQueryTimeout)
	defer cancel()
	rows, err := c.pool.Query(ctx, `SELECT channel, outcome, count(*) FROM notification_deliveries GROUP BY channel, outcome`)
	if err == nil {
		var channel, outcome string
		var n float64
		for rows.Next() {
			if rows.Scan(&channel, &outcome, &n) == nil {
				ch <- prometheus.MustNewConstMetric(alertDescs.deliveries, prometheus.CounterValue, n, channel, outcome)
			}
		}
		rows.Close()
	}
	c.collectBroken(ctx, ch)
	// Every kind has a series (0 when none is open), so a rule on one never sees it vanish.
	open := map[string]float64{}
	for _, k := range recording.AlertKinds {
		open[string(k)] = 0
	}
	rows, err = c.pool.Query(ctx, `SELECT kind, count(*) FROM alerts WHERE state <> 'resolved' GROUP BY kind`)
	if err != nil {
		return
	}
	defer rows.Close()
	var kind string
	var n float64
	for rows.Next() {
		if rows.Scan(&kind, &n) == nil {
			open[kind] = n
		}
	}
	if rows.Err() != nil {
		return // no partial counts
	}
	for k, n := range open {
		ch <- prometheus.MustNewConstMetric(alertDescs.open, prometheus.GaugeValue, n, k)
	}
}

// collectBroken judges the channel targets the channel_broken condition watches by its rule;
// the configured ones have a series (0) before their first delivery. With the condition off
// there is none.
func (c alertsCollector) collectBroken(ctx context.Context, ch chan<- prometheus.Metric) {
	if c.cfg.ChannelFailures <= 0 {
		return
	}
	facts, err := store.New(c.pool).ChannelFacts(ctx, c.cfg.ChannelFailures, c.now().Add(-activities.ChannelWatch))
	if err != nil {
		return // no partial answer: a target missing would read as mended
	}
	broken := make(map[ChannelTarget]float64, len(c.cfg.Channels)+len(facts))
	for _, t := range c.cfg.Channels {
		broken[t] = 0
	}
	for _, f := range facts {
		v := 0.0
		if c.cfg.broken(f.Failed) {
			v = 1
		}
		broken[ChannelTarget{Channel: f.Channel, Target: f.Target}] = v
	}
	for t, v := range broken {
		ch <- prometheus.MustNewConstMetric(alertDescs.broken, prometheus.GaugeValue, v, t.Channel, t.Target)
	}
}
