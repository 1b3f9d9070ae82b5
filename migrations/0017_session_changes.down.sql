ALTER TABLE session_devices DROP COLUMN retries;
ALTER TABLE sessions DROP COLUMN notes;
ALTER TABLE sessions DROP COLUMN end_grace;
ALTER TABLE sessions DROP COLUMN silence_timeout;
ALTER TABLE sessions DROP COLUMN start_deadline;
