-- Enclosure admission (PROTOCOL.md section 8) and live recorded time.
ALTER TABLE devices
    -- Heartbeats must carry the enclosure's token (they come through its relay, mba agent).
    ADD COLUMN relayed         boolean     NOT NULL DEFAULT false,
    -- Tokenless heartbeats for it are accepted only from this address; NULL = any allowed one.
    ADD COLUMN bound_address   inet,
    ADD COLUMN registered_from inet,
    -- approved, or pending (a new name waiting for an administrator), or rejected.
    ADD COLUMN admission       text        NOT NULL DEFAULT 'approved'
        CHECK (admission IN ('approved', 'pending', 'rejected')),
    -- Retired enclosures are out of the fleet; their sessions' history stays.
    ADD COLUMN retired_at      timestamptz;

-- Live recorded seconds from the heartbeats: the segments before this one (live_base) and
-- the current segment's last reported duration (live_last).
ALTER TABLE session_devices
    ADD COLUMN live_base bigint NOT NULL DEFAULT 0,
    ADD COLUMN live_last bigint NOT NULL DEFAULT 0;
