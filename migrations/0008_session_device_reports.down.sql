ALTER TABLE session_devices DROP COLUMN refused;
ALTER TABLE session_devices DROP COLUMN end_report;
