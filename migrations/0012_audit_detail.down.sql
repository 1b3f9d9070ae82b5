DROP INDEX audit_log_subject_idx;
DROP INDEX audit_log_actor_idx;
ALTER TABLE audit_log DROP COLUMN detail;
