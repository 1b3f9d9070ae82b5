-- The remaining alert conditions (issue 15). An alert may be about something other than a
-- session or an enclosure (a notification channel): its subject, '' for the others.
ALTER TABLE alerts ADD COLUMN subject text NOT NULL DEFAULT '';
CREATE INDEX alerts_subject_idx ON alerts (kind, subject) WHERE subject <> '';

-- Since when the fleet scan has seen a condition hold that must last a while before it is an
-- alert (low_fps): kept in the database, so a restarted scan does not start counting again.
CREATE TABLE alert_condition_since (
    kind       text        NOT NULL,
    session_id bigint      NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    device_id  bigint      NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    since      timestamptz NOT NULL,
    PRIMARY KEY (kind, session_id, device_id)
);

-- A channel's last deliveries (channel_broken: the last N failed; resolved by one sent).
CREATE INDEX notification_deliveries_target_idx ON notification_deliveries (channel, target, id DESC);
