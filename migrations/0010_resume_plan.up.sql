-- What the heartbeat path needs to resume a rebooted enclosure on the heartbeat that shows the
-- reboot (heartbeat.ResumePlan, written by the workflow once the recording started): its
-- planned end, the minimum segment, the segments started and the first START. NULL: the
-- workflow decides (sessions without resume, and those started before this column).
ALTER TABLE device_assignments ADD COLUMN resume jsonb;
