-- Scheduled and recurring sessions (issue 16). Temporal Schedules are the authority for when a
-- schedule fires; this is the read model for listing, permissions and what each fire did.
CREATE TABLE schedules (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text        NOT NULL,
    owner_id        bigint      REFERENCES users (id) ON DELETE SET NULL,
    -- The request as given (kind, times in the lab's time zone, end, count, policies) and
    -- the session body each fire creates; the API's own JSON.
    spec            jsonb       NOT NULL,
    session         jsonb       NOT NULL,
    paused          boolean     NOT NULL DEFAULT false,
    note            text        NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz           -- deleted: gone from Temporal, kept for its sessions
);

-- What each fire did: created a session (maybe without some enclosures), skipped, waited.
CREATE TABLE schedule_fires (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    schedule_id  bigint      NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    workflow_id  text        NOT NULL UNIQUE, -- the fire's workflow: one row per fire
    fired_at     timestamptz NOT NULL,
    outcome      text        NOT NULL,        -- created, created_partial, skipped, failed
    message      text        NOT NULL DEFAULT '',
    session_id   bigint      REFERENCES sessions (id) ON DELETE SET NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX schedule_fires_schedule_idx ON schedule_fires (schedule_id, fired_at DESC);

-- A session knows the schedule that created it, and the Idempotency-Key it was created with
-- (per user: the same user and key is the same session; the hash tells a different body).
ALTER TABLE sessions ADD COLUMN schedule_id bigint REFERENCES schedules (id) ON DELETE SET NULL;
ALTER TABLE sessions ADD COLUMN idempotency_key text;
ALTER TABLE sessions ADD COLUMN idempotency_hash text;
CREATE UNIQUE INDEX sessions_idempotency_idx ON sessions (coalesce(created_by, 0), idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX sessions_schedule_idx ON sessions (schedule_id, created_at DESC) WHERE schedule_id IS NOT NULL;
