-- Heartbeat gaps for the enclosure plots: the longest gap between two heartbeats in each
-- telemetry bucket, and the running maximum of the current bucket on the enclosure's row.
ALTER TABLE devices ADD COLUMN bucket_max_gap_ms bigint;
ALTER TABLE device_telemetry ADD COLUMN max_gap_ms bigint;
