DROP TABLE session_files;
