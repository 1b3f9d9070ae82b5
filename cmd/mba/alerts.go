package main

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/jax-mba/mba/activities"
	"github.com/jax-mba/mba/internal/mail"
	"github.com/jax-mba/mba/worker"
	"github.com/jax-mba/mba/workflows"
)

// alertsConfig is who is told of alerts, how, and when escalation goes on.
type alertsConfig struct {
	EscalateAfter   time.Duration `conf:"default:15m,help:an alert nobody acknowledged this long after a notice goes to the next escalation tier" yaml:"escalate_after"`
	Damping         time.Duration `conf:"default:2m,help:a condition that clears and returns within this time is the same alert (no new notice); it resolves once clear this long" yaml:"damping"`
	MaxSilence      time.Duration `conf:"default:168h,help:longest a person may silence an alert for" yaml:"max_silence"`
	FleetRecipients stringList    `conf:"help:e-mail addresses told of fleet alerts (enclosures in no session); default: the administrators" yaml:"fleet_recipients"`
	// Each item is a tier after the first (the session's creator, or the fleet recipients).
	Escalation     stringList `conf:"help:escalation tiers in order; each a space-separated list of e-mail addresses; webhook names or admins (e.g. oncall@lab.example chat;admins)" yaml:"escalation"`
	Webhooks       stringList `conf:"mask,help:generic JSON webhooks told of every alert as name=https://...; signed with webhook-secret (X-MBA-Signature)" yaml:"webhooks"`
	SlackWebhooks  stringList `conf:"mask,help:Slack-compatible incoming webhooks (Slack; Mattermost) as name=https://..." yaml:"slack_webhooks"`
	WebhookSecret  string     `conf:"mask,help:HMAC-SHA256 key of the generic webhooks (16+ bytes); receivers verify with it" yaml:"webhook_secret"`
	NotifyAttempts int        `conf:"default:8,help:delivery attempts of one notice (backoff from 1s to 5m between them)" yaml:"notify_attempts"`
	Digest         struct {
		Enabled   bool          `conf:"default:true,help:mail a digest of alerts; finished sessions and broken channels (a Temporal Schedule)" yaml:"enabled"`
		At        string        `conf:"default:08:00,help:time of day of the daily digest (HH:MM in time-zone)" yaml:"at"`
		Every     time.Duration `conf:"default:0s,help:run the digest at this interval instead of daily at at (e.g. 12h); 0 = daily" yaml:"every"`
		TimeZone  string        `conf:"default:UTC,help:the lab's IANA time zone (e.g. Europe/Berlin) for at and the times in the mail" yaml:"time_zone"`
		SendEmpty bool          `conf:"default:false,help:mail the digest even when nothing happened" yaml:"send_empty"`
	} `yaml:"digest"`
}

// webhooks parses the configured webhooks (validateAlerts checked them).
func (a alertsConfig) webhooks() ([]activities.Webhook, error) {
	var out []activities.Webhook
	for kind, list := range map[string]stringList{activities.ChannelWebhook: a.Webhooks, activities.ChannelSlack: a.SlackWebhooks} {
		for _, item := range list {
			name, raw, ok := strings.Cut(item, "=")
			u, err := url.Parse(raw)
			if !ok || name == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				// Never echo the item: a webhook URL is a secret.
				return nil, fmt.Errorf("alerts webhooks: each must be name=http(s)://host/path (webhook %q)", name)
			}
			out = append(out, activities.Webhook{Name: name, Kind: kind, URL: raw, Secret: []byte(a.WebhookSecret)})
		}
	}
	slices.SortFunc(out, func(x, y activities.Webhook) int { return strings.Compare(x.Name, y.Name) })
	return out, nil
}

func (a alertsConfig) tiers() [][]string {
	var out [][]string
	for _, t := range a.Escalation {
		out = append(out, strings.Fields(t))
	}
	return out
}

// validateAlerts adds what is wrong with the alert settings to problems.
func (c *config) validateAlerts(problems *[]string) {
	a := c.Alerts
	if a.EscalateAfter < time.Minute || a.Damping < 0 || a.MaxSilence < time.Minute || a.NotifyAttempts < 1 {
		*problems = append(*problems, "alerts escalate-after and max-silence must be at least 1m, damping not negative, notify-attempts at least 1")
	}
	if _, ok := digestAt(a.Digest.At); !ok {
		*problems = append(*problems, fmt.Sprintf("alerts digest at %q must be a time of day, HH:MM", a.Digest.At))
	}
	if _, err := time.LoadLocation(a.Digest.TimeZone); err != nil || a.Digest.TimeZone == "" || a.Digest.TimeZone == "Local" {
		*problems = append(*problems, fmt.Sprintf("alerts digest time-zone %q must be an IANA time zone, e.g. Europe/Berlin or UTC", a.Digest.TimeZone))
	}
	if a.Digest.Every != 0 && a.Digest.Every < time.Minute {
		*problems = append(*problems, "alerts digest every must be 0 (daily at at) or at least 1m")
	}
	hooks, err := a.webhooks()
	if err != nil {
		*problems = append(*problems, err.Error())
	}
	for i, h := range hooks {
		if i > 0 && hooks[i-1].Name == h.Name {
			*problems = append(*problems, fmt.Sprintf("alerts webhooks: the name %q is used twice", h.Name))
		}
	}
	if len(a.Webhooks) > 0 && len(a.WebhookSecret) < 16 {
		*problems = append(*problems, "alerts webhook-secret of at least 16 bytes is required with webhooks")
	}
	for _, tier := range a.tiers() {
		for _, t := range tier {
			if t != "admins" && !strings.Contains(t, "@") && !slices.ContainsFunc(hooks, func(h activities.Webhook) bool { return h.Name == t }) {
				*problems = append(*problems, fmt.Sprintf("alerts escalation: %q is no e-mail address, webhook name or admins", t))
			}
		}
	}
}

// digestAt reads HH:MM as minutes after midnight.
func digestAt(s string) (int, bool) {
	t, err := time.Parse("15:04", s)
	if err != nil || len(s) != 5 {
		return 0, false
	}
	return t.Hour()*60 + t.Minute(), true
}

// digestSchedule is when the digest runs (validate checked the settings).
func (c config) digestSchedule() worker.DigestSchedule {
	d := c.Alerts.Digest
	at, _ := digestAt(d.At)
	return worker.DigestSchedule{Enabled: d.Enabled, At: at, Every: d.Every, TimeZone: d.TimeZone, SendEmpty: d.SendEmpty}
}

// alertPolicy is the timing every new alert gets.
func (c config) alertPolicy() workflows.AlertPolicy {
	return workflows.AlertPolicy{EscalateAfter: c.Alerts.EscalateAfter, Tiers: 1 + len(c.Alerts.Escalation),
		Damping: c.Alerts.Damping, MaxSilence: c.Alerts.MaxSilence, NotifyAttempts: c.Alerts.NotifyAttempts}
}

// alertChannels are the worker's notification channels.
func (c config) alertChannels(mailer mail.Sender) activities.Alerts {
	hooks, _ := c.Alerts.webhooks() // checked by validate
	return activities.Alerts{Mail: mailer, Webhooks: hooks, FleetRecipients: c.Alerts.FleetRecipients, Tiers: c.Alerts.tiers()}
}
