-- The daily digest (issue 15): each user's choice whether to get it (NULL: the default, on for
-- administrators and for the creators of sessions with alerts in the period). And actions taken
-- on a session's workflows from the Temporal CLI or Web UI (cancel, terminate, reset), written to
-- the session's timeline by the fleet monitor: the key (run and event) makes a rescan write
-- each once.
ALTER TABLE user_notification_prefs ADD COLUMN digest boolean;
ALTER TABLE session_events ADD COLUMN dedup_key text;
CREATE UNIQUE INDEX session_events_dedup_key_idx ON session_events (dedup_key) WHERE dedup_key IS NOT NULL;
