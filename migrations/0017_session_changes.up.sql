-- Per-session timeouts (seconds; NULL: the server-wide setting when the session ran), the
-- session's notes (edited while it runs), and how many times an enclosure was retried (its
-- workflow id gets the count: the failed one may still be checking its files).
ALTER TABLE sessions ADD COLUMN start_deadline bigint CHECK (start_deadline >= 1);
ALTER TABLE sessions ADD COLUMN silence_timeout bigint CHECK (silence_timeout >= 1);
ALTER TABLE sessions ADD COLUMN end_grace bigint CHECK (end_grace >= 1);
ALTER TABLE sessions ADD COLUMN notes text NOT NULL DEFAULT '';
ALTER TABLE session_devices ADD COLUMN retries integer NOT NULL DEFAULT 0;
