-- What an enclosure reported about its part in a session, kept on its session row so that a
-- workflow that runs late (Temporal slow or down, the worker started after the enclosure had
-- finished) or again (an operator's reset) settles with the enclosure's report instead of
-- sending START a second time.
ALTER TABLE session_devices ADD COLUMN end_report jsonb; -- the "ended" transition, as queued for the workflow
-- Refused at creation (busy in another session): the session's workflow never drives it.
ALTER TABLE session_devices ADD COLUMN refused boolean NOT NULL DEFAULT false;
UPDATE session_devices SET refused = true WHERE status = 'FAILED' AND started_at IS NULL AND segments = 0
    AND message LIKE 'device % is already assigned to a recording session (%)';
-- The enclosure's workflow has written its end (or the fleet monitor released it): a report that
-- arrives later is added by the heartbeat path, since no workflow will (a status of CANCELED
-- alone does not say so: a cancel shows at once, while the workflow still stops the enclosure).
ALTER TABLE session_devices ADD COLUMN workflow_ended boolean NOT NULL DEFAULT false;
UPDATE session_devices SET workflow_ended = true WHERE status IN ('COMPLETE', 'FAILED', 'CANCELED') AND ended_at IS NOT NULL;
-- Honest accounting of reboots: the seconds not recorded between segments, and each gap
-- (from the last heartbeat of the lost segment to the start of the next).
ALTER TABLE session_devices ADD COLUMN seconds_lost bigint NOT NULL DEFAULT 0;
ALTER TABLE session_devices ADD COLUMN gaps jsonb NOT NULL DEFAULT '[]';
