ALTER TABLE device_assignments DROP COLUMN resume;
