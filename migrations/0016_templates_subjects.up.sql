-- Templates (issue 16): a named protocol whose every edit is a new version; old versions stay,
-- since sessions name the version they were made from.
CREATE TABLE session_templates (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name           text        NOT NULL,
    archived       boolean     NOT NULL DEFAULT false,
    latest_version integer     NOT NULL DEFAULT 1,
    created_by     bigint      REFERENCES users (id) ON DELETE SET NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
-- One live template per name, whatever the case; an archived name may be used again.
CREATE UNIQUE INDEX session_templates_name_idx ON session_templates (lower(name)) WHERE NOT archived;

CREATE TABLE session_template_versions (
    template_id     bigint      NOT NULL REFERENCES session_templates (id) ON DELETE CASCADE,
    version         integer     NOT NULL CHECK (version >= 1),
    duration        bigint      NOT NULL CHECK (duration >= 1), -- seconds
    fragment_hourly boolean     NOT NULL,
    target_fps      integer     NOT NULL CHECK (target_fps >= 1),
    apply_filter    boolean     NOT NULL,
    device_ids      bigint[]    NOT NULL DEFAULT '{}', -- the enclosure set, in order
    prefix_pattern  text        NOT NULL,
    -- Per-session timeouts, as the session-changes work defines them; kept as given.
    timeouts        jsonb       NOT NULL DEFAULT '{}',
    notes           text        NOT NULL DEFAULT '',
    created_by      bigint      REFERENCES users (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (template_id, version)
);

-- The template version a session was made from (NULL: made without one).
ALTER TABLE sessions ADD COLUMN template_id bigint, ADD COLUMN template_version integer,
    ADD FOREIGN KEY (template_id, template_version) REFERENCES session_template_versions (template_id, version);
CREATE INDEX sessions_template_idx ON sessions (template_id, template_version) WHERE template_id IS NOT NULL;
CREATE INDEX sessions_name_idx ON sessions (lower(name) text_pattern_ops);

-- Who was in each enclosure of a session. Kept here, never in the workflow: it is edited while
-- the session runs and after it ended.
CREATE TABLE session_subjects (
    session_id    bigint      NOT NULL,
    device_id     bigint      NOT NULL,
    subject_ids   text[]      NOT NULL DEFAULT '{}',
    -- lower-cased copy of subject_ids, for the case-blind search
    subject_keys  text[]      NOT NULL DEFAULT '{}',
    strain        text        NOT NULL DEFAULT '',
    sex           text        NOT NULL DEFAULT '' CHECK (sex IN ('', 'female', 'male', 'unknown')),
    date_of_birth date,
    cage          text        NOT NULL DEFAULT '',
    extra         jsonb       NOT NULL DEFAULT '{}', -- free-form key-values
    notes         text        NOT NULL DEFAULT '',
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, device_id),
    FOREIGN KEY (session_id, device_id) REFERENCES session_devices (session_id, device_id) ON DELETE CASCADE
);
CREATE INDEX session_subjects_keys_idx ON session_subjects USING gin (subject_keys);
CREATE INDEX session_subjects_strain_idx ON session_subjects (lower(strain)) WHERE strain <> '';
