DROP TABLE mail_log;
DROP TABLE user_tokens;
DROP TABLE refresh_tokens;
DROP TABLE users;
