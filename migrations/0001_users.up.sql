-- Users, their refresh tokens and single-use invite/reset tokens.
CREATE TABLE users (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email            text        NOT NULL,
    -- NULL until the user sets a password through an invite link.
    password_hash    text,
    admin            boolean     NOT NULL DEFAULT false,
    disabled         boolean     NOT NULL DEFAULT false,
    -- Bumped on password reset; every token carries the generation it was issued in, so a reset ends them all.
    token_generation integer     NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
-- E-mail addresses are case-insensitive.
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE refresh_tokens (
    id         text        PRIMARY KEY, -- the JWT's jti
    user_id    bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    issued_at  timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX refresh_tokens_user_id_idx ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_expires_at_idx ON refresh_tokens (expires_at);

CREATE TABLE user_tokens (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    text        NOT NULL CHECK (purpose IN ('invite', 'reset')),
    -- SHA-256 of the token: a database leak reveals no usable link.
    token_hash bytea       NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX user_tokens_user_id_idx ON user_tokens (user_id);
CREATE INDEX user_tokens_expires_at_idx ON user_tokens (expires_at);

-- Mail the service would have sent when no SMTP server is configured (development, tests).
CREATE TABLE mail_log (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recipient  text        NOT NULL,
    subject    text        NOT NULL,
    body       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
