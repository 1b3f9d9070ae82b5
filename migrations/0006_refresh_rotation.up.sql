-- Refresh tokens that rotate on use (the web UI's): each belongs to the family of one login, and
-- a spent (rotated) token presented again revokes the whole family.
ALTER TABLE refresh_tokens
    ADD COLUMN family     text,
    ADD COLUMN rotated_at timestamptz;
UPDATE refresh_tokens SET family = id;
ALTER TABLE refresh_tokens ALTER COLUMN family SET NOT NULL;
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family);
