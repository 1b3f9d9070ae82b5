ALTER TABLE device_telemetry DROP COLUMN max_gap_ms;
ALTER TABLE devices DROP COLUMN bucket_max_gap_ms;
