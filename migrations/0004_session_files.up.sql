-- The files of each enclosure's recording: what the workflow expects, what the upload agent
-- sent (declared size and SHA-256) and what verification found.
CREATE TABLE session_files (
    session_id  bigint      NOT NULL,
    device_id   bigint      NOT NULL,
    name        text        NOT NULL,
    state       text        NOT NULL DEFAULT 'PENDING'
                CHECK (state IN ('PENDING', 'UPLOADING', 'UPLOADED', 'VERIFIED', 'CORRUPT', 'MISSING')),
    reason      text        NOT NULL DEFAULT '',
    expected    boolean     NOT NULL DEFAULT false, -- the workflow listed it (else it only arrived)
    size        bigint      CHECK (size >= 0),      -- as declared by the agent
    sha256      text,                               -- as declared by the agent, lowercase hex
    upload_id   text UNIQUE,                        -- the tus upload in progress or last finished
    uploads     integer     NOT NULL DEFAULT 0,     -- completed uploads
    reupload    boolean     NOT NULL DEFAULT false, -- the agent is asked to send it again
    uploaded_at timestamptz,
    verified_at timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, device_id, name),
    FOREIGN KEY (session_id, device_id) REFERENCES session_devices (session_id, device_id) ON DELETE CASCADE
);
