package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/activities"
	"github.com/jax-mba/mba/api"
)

func TestAlertSettings(t *testing.T) {
	valid := func() config {
		var c config
		c.HTTP.PublicURL = "https://mba.lab.example"
		c.Alerts = alertsConfig{EscalateAfter: 15 * time.Minute, Damping: 2 * time.Minute, MaxSilence: 168 * time.Hour,
			NotifyAttempts: 8, Webhooks: stringList{"lab=https://hooks.lab.example/mba"},
			SlackWebhooks: stringList{"chat=https://hooks.slack.com/services/T/B/secret"},
			WebhookSecret: strings.Repeat("k", 16), Escalation: stringList{"oncall@lab.example chat", "admins"},
			LowDiskMargin: 0.2, LowDiskFloor: 2e9, LowDiskWindow: 30 * time.Minute, LowFPSMargin: 0.1, LowFPSFor: 2 * time.Minute,
			BacklogFiles: 3, BacklogGrace: time.Hour, ChannelFailures: 3}
		c.Alerts.Digest.At = "08:00"
		c.Schedules.TimeZone = "Europe/Berlin"
		c.Sessions.BytesPerSecond = 1500000
		c.Storage.UploadDeadline = 72 * time.Hour
		return c
	}
	problems := func(c config) string {
		var p []string
		c.validateAlerts(&p)
		return strings.Join(p, "; ")
	}
	c := valid()
	require.Empty(t, problems(c))
	c.Alerts.EscalateAfter = 20 * time.Second
	require.Empty(t, problems(c), "a rehearsal escalates after seconds")
	c = valid()
	require.Equal(t, 3, c.alertPolicy().Tiers, "the first tier and two escalation tiers")
	require.Equal(t, activities.ConditionLimits{DiskMargin: 0.2, DiskFloor: 2e9, DiskWindow: 30 * time.Minute, DiskRate: 1500000,
		FPSMargin: 0.1, FPSFor: 2 * time.Minute, BacklogFiles: 3, BacklogGrace: time.Hour, BacklogWithin: 72 * time.Hour,
		ChannelFailures: 3}, c.conditionLimits())
	ch := c.alertChannels(nil)
	require.Equal(t, [][]string{{"oncall@lab.example", "chat"}, {"admins"}}, ch.Tiers)
	require.Equal(t, "https://mba.lab.example", ch.AlertsURL, "notices link to the UI")
	require.Equal(t, []activities.Webhook{
		{Name: "chat", Kind: activities.ChannelSlack, URL: "https://hooks.slack.com/services/T/B/secret", Secret: []byte(c.Alerts.WebhookSecret)},
		{Name: "lab", Kind: activities.ChannelWebhook, URL: "https://hooks.lab.example/mba", Secret: []byte(c.Alerts.WebhookSecret)},
	}, ch.Webhooks)
	c.Alerts.FleetRecipients = stringList{"ops@lab.example", "oncall@lab.example"}
	require.Equal(t, api.AlertConfig{ChannelFailures: 3, Channels: []api.ChannelTarget{{Channel: "slack", Target: "chat"},
		{Channel: "webhook", Target: "lab"}, {Channel: "email", Target: "ops@lab.example"}, {Channel: "email", Target: "oncall@lab.example"}}},
		c.apiAlerts(), "the broken gauges of the configured targets: webhooks, addresses once")

	for name, tc := range map[string]struct {
		change func(*config)
		want   string
	}{
		"bad webhook": {func(c *config) { c.Alerts.SlackWebhooks = stringList{"chat=ftp://x/secret-token"} },
			`each must be name=http(s)://host/path (webhook "chat")`},
		"short secret":     {func(c *config) { c.Alerts.WebhookSecret = "short" }, "webhook-secret of at least 16 bytes"},
		"unknown in tier":  {func(c *config) { c.Alerts.Escalation = stringList{"pager"} }, `"pager" is no e-mail address, webhook name or admins`},
		"name twice":       {func(c *config) { c.Alerts.SlackWebhooks = stringList{"lab=https://x/y"} }, `the name "lab" is used twice`},
		"no escalate time": {func(c *config) { c.Alerts.EscalateAfter = 0 }, "escalate-after must be at least 10s"},
		"escalate at once": {func(c *config) { c.Alerts.EscalateAfter = 5 * time.Second }, "escalate-after must be at least 10s"},
		"fps margin of 1":  {func(c *config) { c.Alerts.LowFPSMargin = 1 }, "low-fps-margin must be under 1"},
		"short window":     {func(c *config) { c.Alerts.LowDiskWindow = time.Minute }, "low-disk-window at least 2m"},
		"digest time":      {func(c *config) { c.Alerts.Digest.At = "8am" }, `alerts digest at "8am" must be a time of day, HH:MM`},
		"digest too often": {func(c *config) { c.Alerts.Digest.Every = 30 * time.Second }, "alerts digest every must be 0 (daily at at) or at least 1m"},
	} {
		c := valid()
		tc.change(&c)
		got := problems(c)
		require.Contains(t, got, tc.want, name)
		require.NotContains(t, got, "secret-token", "a webhook URL is a secret: never echoed")
	}
}
