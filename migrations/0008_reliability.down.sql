DROP TABLE api_listening;
DROP INDEX outbox_undeliverable_idx;
ALTER TABLE outbox DROP COLUMN undeliverable;
DROP TABLE leases;
