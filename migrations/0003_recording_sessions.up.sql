-- Enclosures, recording sessions and the heartbeat machinery (command mailbox and outbox).

CREATE TABLE devices (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                text        NOT NULL UNIQUE, -- the enclosure's hostname
    location            text        NOT NULL DEFAULT '',
    -- SHA-256 of the enclosure's own token; NULL = the unmodified client, which sends none.
    token_hash          bytea,
    created_at          timestamptz NOT NULL DEFAULT now(),
    last_seen_at        timestamptz,          -- server clock of the last heartbeat
    down_since          timestamptz,          -- set by the fleet monitor when silent too long
    -- Latest telemetry, as reported.
    recording           boolean     NOT NULL DEFAULT false,
    reported_session_id bigint,               -- the session the enclosure believes it is in
    rec_duration        bigint,
    fps                 double precision,
    uptime              bigint,
    load                double precision,
    total_ram           bigint,
    free_ram            bigint,
    total_disk          bigint,
    free_disk           bigint,
    release             text        NOT NULL DEFAULT '',
    err_msg             text        NOT NULL DEFAULT '',
    clock_skew_ms       bigint,               -- device timestamp minus server receive time
    stream_until        timestamptz           -- a viewer keeps the live stream on until then
);
CREATE INDEX devices_last_seen_at_idx ON devices (last_seen_at);

-- Telemetry downsampled for plots: one sample per bucket per enclosure (the first, or a change of recording state).
CREATE TABLE device_telemetry (
    device_id     bigint           NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    bucket        timestamptz      NOT NULL,
    recording     boolean          NOT NULL,
    fps           double precision,
    load          double precision,
    free_ram      bigint,
    free_disk     bigint,
    clock_skew_ms bigint,
    PRIMARY KEY (device_id, bucket)
);

CREATE TABLE sessions (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text        NOT NULL,
    duration        bigint      NOT NULL CHECK (duration >= 1), -- seconds
    fragment_hourly boolean     NOT NULL,
    target_fps      integer     NOT NULL CHECK (target_fps >= 1),
    apply_filter    boolean     NOT NULL,
    -- Written only by the session workflow (through its activities).
    status          text        NOT NULL DEFAULT 'IN_PROGRESS',
    archived        boolean     NOT NULL DEFAULT false,
    created_by      bigint      REFERENCES users (id) ON DELETE SET NULL,
    canceled_by     bigint      REFERENCES users (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    ended_at        timestamptz
);
CREATE INDEX sessions_archived_created_idx ON sessions (archived, created_at DESC);

CREATE TABLE session_devices (
    session_id     bigint      NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    device_id      bigint      NOT NULL REFERENCES devices (id),
    file_prefix    text        NOT NULL,
    -- PENDING, RECORDING, COMPLETE, FAILED, CANCELED; written only by the device workflow.
    status         text        NOT NULL DEFAULT 'PENDING',
    message        text        NOT NULL DEFAULT '',
    started_at     timestamptz,
    ended_at       timestamptz,
    recording_time bigint      NOT NULL DEFAULT 0, -- seconds recorded, all segments
    segments       integer     NOT NULL DEFAULT 0,
    PRIMARY KEY (session_id, device_id)
);
-- An enclosure records for one session at a time.
CREATE UNIQUE INDEX session_devices_one_active_idx ON session_devices (device_id)
    WHERE status IN ('PENDING', 'RECORDING');

-- The timeline of a session: starts, ends, gaps, silences, commands.
CREATE TABLE session_events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id bigint      NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    device_id  bigint      REFERENCES devices (id),
    at         timestamptz NOT NULL DEFAULT now(),
    kind       text        NOT NULL,
    message    text        NOT NULL DEFAULT ''
);
CREATE INDEX session_events_session_idx ON session_events (session_id, id);

-- The command mailbox: what the heartbeat handler tells an enclosure, and which pending
-- activity the enclosure's next transition completes.
CREATE TABLE device_assignments (
    device_id    bigint      PRIMARY KEY REFERENCES devices (id),
    session_id   bigint      NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    phase        text        NOT NULL CHECK (phase IN ('starting', 'recording', 'stopping', 'completing', 'reset')),
    start_params jsonb,
    workflow_id  text        NOT NULL,
    activity_id  text,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Transitions for Temporal, written in the same transaction as the state they describe and
-- drained by the dispatcher at least once.
CREATE TABLE outbox (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workflow_id   text        NOT NULL,
    activity_id   text,        -- complete this activity; NULL = signal the workflow
    kind          text        NOT NULL,
    payload       jsonb       NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    dispatched_at timestamptz,
    attempts      integer     NOT NULL DEFAULT 0,
    last_error    text        NOT NULL DEFAULT ''
);
CREATE INDEX outbox_pending_idx ON outbox (id) WHERE dispatched_at IS NULL;
