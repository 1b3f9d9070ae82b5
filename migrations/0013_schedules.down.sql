DROP INDEX sessions_schedule_idx;
DROP INDEX sessions_idempotency_idx;
ALTER TABLE sessions DROP COLUMN idempotency_hash;
ALTER TABLE sessions DROP COLUMN idempotency_key;
ALTER TABLE sessions DROP COLUMN schedule_id;
DROP TABLE schedule_fires;
DROP TABLE schedules;
