DROP INDEX notification_deliveries_target_idx;
DROP TABLE alert_condition_since;
DROP INDEX alerts_subject_idx;
ALTER TABLE alerts DROP COLUMN subject;
