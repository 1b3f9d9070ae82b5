-- A short detail (what changed) next to the action, and indexes for the admin search by actor
-- and by subject (GET /api/audit), newest first.
ALTER TABLE audit_log ADD COLUMN detail text NOT NULL DEFAULT '';
CREATE INDEX audit_log_actor_idx ON audit_log (actor_id, at);
CREATE INDEX audit_log_subject_idx ON audit_log (subject, at);
