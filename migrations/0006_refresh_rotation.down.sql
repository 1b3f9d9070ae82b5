DROP INDEX refresh_tokens_family_idx;
ALTER TABLE refresh_tokens DROP COLUMN rotated_at, DROP COLUMN family;
