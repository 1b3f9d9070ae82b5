-- Alerts (issue 15): one row per alert lifecycle workflow run, written only by that workflow
-- (through its record activity), with every transition in alert_events; the deliveries of its
-- notifications, so a broken channel is visible; and each user's notification preferences.

CREATE TABLE alerts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- workflow ID + first run ID: the workflow ID repeats when a resolved condition returns.
    alert_key       text        NOT NULL UNIQUE,
    workflow_id     text        NOT NULL,
    kind            text        NOT NULL,
    -- NULL for fleet alerts (an idle enclosure) / alerts about no enclosure.
    session_id      bigint      REFERENCES sessions (id) ON DELETE CASCADE,
    device_id       bigint      REFERENCES devices (id) ON DELETE CASCADE,
    summary         text        NOT NULL DEFAULT '',
    -- open, notified, escalated, acknowledged, silenced, resolved
    state           text        NOT NULL,
    tier            integer     NOT NULL DEFAULT 0,
    reopens         integer     NOT NULL DEFAULT 0,
    acked_by        text,
    acked_at        timestamptz,
    ack_note        text,
    silenced_until  timestamptz,
    opened_at       timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    resolved_at     timestamptz
);
CREATE INDEX alerts_state_idx ON alerts (state, opened_at DESC);
CREATE INDEX alerts_session_idx ON alerts (session_id) WHERE session_id IS NOT NULL;
CREATE INDEX alerts_device_idx ON alerts (device_id) WHERE device_id IS NOT NULL;

CREATE TABLE alert_events (
    alert_id   bigint      NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    -- the workflow's own counter: an activity retried after a lost reply writes nothing twice.
    seq        integer     NOT NULL,
    state      text        NOT NULL,
    actor      text        NOT NULL DEFAULT '', -- who acknowledged or silenced; '' for the service
    note       text        NOT NULL DEFAULT '',
    at         timestamptz NOT NULL,
    PRIMARY KEY (alert_id, seq)
);

CREATE TABLE notification_deliveries (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_key  text        NOT NULL, -- the alert may not have a row yet (or it was deleted)
    channel    text        NOT NULL, -- email, webhook, slack
    target     text        NOT NULL, -- the address, or the webhook's name (its URL is a secret)
    -- the notice: notify, escalate, renotify, recover
    notice     text        NOT NULL,
    attempt    integer     NOT NULL,
    outcome    text        NOT NULL CHECK (outcome IN ('sent', 'failed')),
    error      text        NOT NULL DEFAULT '',
    at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notification_deliveries_key_idx ON notification_deliveries (alert_key);
CREATE INDEX notification_deliveries_at_idx ON notification_deliveries (at DESC);

CREATE TABLE user_notification_prefs (
    user_id     bigint   PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    -- the alert kinds the user wants; empty: all of them
    kinds       text[]   NOT NULL DEFAULT '{}',
    channel     text     NOT NULL DEFAULT 'email' CHECK (channel IN ('email', 'none')),
    -- quiet hours, minutes after midnight in tz; equal: none. May wrap past midnight.
    quiet_start smallint NOT NULL DEFAULT 0 CHECK (quiet_start BETWEEN 0 AND 1439),
    quiet_end   smallint NOT NULL DEFAULT 0 CHECK (quiet_end BETWEEN 0 AND 1439),
    tz          text     NOT NULL DEFAULT 'UTC'
);
