package main

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/jax-mba/mba/activities"
	"github.com/jax-mba/mba/api"
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
	// The conditions the fleet scan judges (0 turns one off).
	LowDiskMargin   float64       `conf:"default:0.2,help:low_disk: free disk must last the rest of the recording at the enclosure's rate with this margin (0.2 = 20 %; 0 = projection off)" yaml:"low_disk_margin"`
	LowDiskFloor    int64         `conf:"default:2000000000,help:low_disk: fewer free bytes than this in a session is an alert whatever the projection (0 = off)" yaml:"low_disk_floor"`
	LowDiskWindow   time.Duration `conf:"default:30m,help:low_disk: the recording rate is the free-disk slope over this window (at least half of it)" yaml:"low_disk_window"`
	LowFPSMargin    float64       `conf:"default:0.1,help:low_fps: a frame rate below the session's target by more than this fraction (0.1 = 10 %; 0 = off) for low-fps-for while recording is an alert" yaml:"low_fps_margin"`
	LowFPSFor       time.Duration `conf:"default:2m,help:low_fps: how long the frame rate must stay low" yaml:"low_fps_for"`
	BacklogFiles    int           `conf:"default:3,help:upload_backlog: more files than this due and not uploaded is an alert; fewer clears it (0 = off)" yaml:"backlog_files"`
	BacklogGrace    time.Duration `conf:"default:1h,help:upload_backlog: a file is due this long after its segment ended" yaml:"backlog_grace"`
	ChannelFailures int           `conf:"default:3,help:channel_broken: a notification channel whose last this many deliveries failed is broken (0 = off)" yaml:"channel_failures"`
	Digest          struct {
		Enabled   bool          `conf:"default:true,help:mail a digest of alerts; finished sessions and broken channels (a Temporal Schedule)" yaml:"enabled"`
		At        string        `conf:"default:08:00,help:time of day of the daily digest (HH:MM in the lab's time zone, schedules.time_zone)" yaml:"at"`
		Every     time.Duration `conf:"default:0s,help:run the digest at this interval instead of daily at at (e.g. 12h); 0 = daily" yaml:"every"`
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

// minEscalateAfter is the shortest escalation delay accepted.
const minEscalateAfter = 10 * time.Second

// validateAlerts adds what is wrong with the alert settings to problems.
func (c *config) validateAlerts(problems *[]string) {
	a := c.Alerts
	// Seconds are allowed for escalation: a rehearsal of the alert path (make run, the tests)
	// should not take a quarter of an hour.
	if a.EscalateAfter < minEscalateAfter || a.Damping < 0 || a.MaxSilence < time.Minute || a.NotifyAttempts < 1 {
		*problems = append(*problems, "alerts escalate-after must be at least 10s, max-silence at least 1m, damping not negative, notify-attempts at least 1")
	}
	if a.LowDiskMargin < 0 || a.LowDiskFloor < 0 || a.LowDiskWindow < 2*time.Minute || a.LowFPSMargin < 0 ||
		a.LowFPSMargin >= 1 || a.LowFPSFor < 0 || a.BacklogFiles < 0 || a.BacklogGrace < 0 || a.ChannelFailures < 0 {
		*problems = append(*problems, "alerts low-disk-margin, low-disk-floor, backlog-files, backlog-grace, channel-failures and "+
			"low-fps-for must not be negative, low-fps-margin must be under 1, low-disk-window at least 2m")
	}
	if _, ok := digestAt(a.Digest.At); !ok {
		*problems = append(*problems, fmt.Sprintf("alerts digest at %q must be a time of day, HH:MM", a.Digest.At))
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

// digestSchedule is when the digest runs, in the lab's time zone (validate checked the settings).
func (c config) digestSchedule() worker.DigestSchedule {
	d := c.Alerts.Digest
	at, _ := digestAt(d.At)
	return worker.DigestSchedule{Enabled: d.Enabled, At: at, Every: d.Every, TimeZone: c.Schedules.TimeZone, SendEmpty: d.SendEmpty}
}

// alertPolicy is the timing every new alert gets.
func (c config) alertPolicy() workflows.AlertPolicy {
	return workflows.AlertPolicy{EscalateAfter: c.Alerts.EscalateAfter, Tiers: 1 + len(c.Alerts.Escalation),
		Damping: c.Alerts.Damping, MaxSilence: c.Alerts.MaxSilence, NotifyAttempts: c.Alerts.NotifyAttempts}
}

// conditionLimits are the settings of the conditions the fleet scan judges.
func (c config) conditionLimits() activities.ConditionLimits {
	a := c.Alerts
	return activities.ConditionLimits{DiskMargin: a.LowDiskMargin, DiskFloor: a.LowDiskFloor, DiskWindow: a.LowDiskWindow,
		DiskRate: c.Sessions.BytesPerSecond, FPSMargin: a.LowFPSMargin, FPSFor: a.LowFPSFor, BacklogFiles: a.BacklogFiles,
		BacklogGrace: a.BacklogGrace, BacklogWithin: c.Storage.UploadDeadline, ChannelFailures: a.ChannelFailures}
}

// apiAlerts is what the API's channel health and broken gauge need: the channel_broken rule
// and the configured targets (webhooks, the addresses of fleet-recipients and escalation).
func (c config) apiAlerts() api.AlertConfig {
	hooks, _ := c.Alerts.webhooks() // checked by validate
	var targets []api.ChannelTarget
	for _, h := range hooks {
		targets = append(targets, api.ChannelTarget{Channel: h.Kind, Target: h.Name})
	}
	addresses := slices.Concat(c.Alerts.FleetRecipients, slices.Concat(c.Alerts.tiers()...))
	for _, a := range addresses {
		t := api.ChannelTarget{Channel: activities.ChannelEmail, Target: a}
		if strings.Contains(a, "@") && !slices.Contains(targets, t) {
			targets = append(targets, t)
		}
	}
	return api.AlertConfig{ChannelFailures: c.Alerts.ChannelFailures, Channels: targets}
}

// alertChannels are the worker's notification channels.
func (c config) alertChannels(mailer mail.Sender) activities.Alerts {
	hooks, _ := c.Alerts.webhooks() // checked by validate
	return activities.Alerts{Mail: mailer, Webhooks: hooks, FleetRecipients: c.Alerts.FleetRecipients, Tiers: c.Alerts.tiers(),
		AlertsURL: c.HTTP.PublicURL}
}
