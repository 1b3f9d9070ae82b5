DROP INDEX session_events_dedup_key_idx;
ALTER TABLE session_events DROP COLUMN dedup_key;
ALTER TABLE user_notification_prefs DROP COLUMN digest;
