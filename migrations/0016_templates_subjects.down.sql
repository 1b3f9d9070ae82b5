DROP TABLE session_subjects;
DROP INDEX sessions_name_idx;
ALTER TABLE sessions DROP COLUMN template_version, DROP COLUMN template_id;
DROP TABLE session_template_versions;
DROP TABLE session_templates;
