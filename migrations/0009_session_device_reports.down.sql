ALTER TABLE session_devices DROP COLUMN workflow_ended;
ALTER TABLE session_devices DROP COLUMN gaps;
ALTER TABLE session_devices DROP COLUMN seconds_lost;
ALTER TABLE session_devices DROP COLUMN refused;
ALTER TABLE session_devices DROP COLUMN end_report;
