DROP TABLE user_notification_prefs;
DROP TABLE notification_deliveries;
DROP TABLE alert_events;
DROP TABLE alerts;
