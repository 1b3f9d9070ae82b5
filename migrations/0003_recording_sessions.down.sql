DROP TABLE outbox;
DROP TABLE device_assignments;
DROP TABLE session_events;
DROP TABLE session_devices;
DROP TABLE sessions;
DROP TABLE device_telemetry;
DROP TABLE devices;
