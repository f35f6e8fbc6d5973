-- jobrepo schema version 4 for SQLite: operators in control.
-- A job can be paused, asked to run again once its running run ends, and
-- carries its last outcome and its count of consecutive failures (the
-- back-off every server reads). A run carries why it ended, its attempt
-- number and an operator's request to cancel it.

ALTER TABLE job ADD COLUMN paused INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1));
ALTER TABLE job ADD COLUMN run_requested INTEGER NOT NULL DEFAULT 0 CHECK (run_requested IN (0, 1));
ALTER TABLE job ADD COLUMN consecutive_failures INTEGER NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0);
ALTER TABLE job ADD COLUMN last_status TEXT
  CHECK (last_status IS NULL OR last_status IN ('completed', 'failed', 'interrupted'));
ALTER TABLE job ADD COLUMN last_end_time INTEGER;
ALTER TABLE job ADD COLUMN last_message TEXT CHECK (length(last_message) <= 1023);
ALTER TABLE job ADD COLUMN last_success_time INTEGER;

ALTER TABLE job_run ADD COLUMN message TEXT CHECK (length(message) <= 1023);
ALTER TABLE job_run ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1 CHECK (attempt >= 1);
ALTER TABLE job_run ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1));

-- The servers that are serving (their proof of life) and the jobs each one
-- serves, with a fingerprint of its definition there.
CREATE TABLE server (
  plugin_id TEXT NOT NULL,
  server_id TEXT NOT NULL CHECK (length(trim(server_id)) BETWEEN 1 AND 255),
  seen_time INTEGER NOT NULL,
  expire_time INTEGER NOT NULL,
  PRIMARY KEY (plugin_id, server_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE job_server (
  plugin_id TEXT NOT NULL,
  job_name TEXT NOT NULL,
  server_id TEXT NOT NULL,
  fingerprint TEXT NOT NULL CHECK (length(fingerprint) BETWEEN 1 AND 64),
  registered_time INTEGER NOT NULL,
  PRIMARY KEY (plugin_id, job_name, server_id),
  FOREIGN KEY (plugin_id, job_name) REFERENCES job (plugin_id, name) ON DELETE CASCADE ON UPDATE CASCADE,
  FOREIGN KEY (plugin_id, server_id) REFERENCES server (plugin_id, server_id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

CREATE INDEX job_server_by_server ON job_server (plugin_id, server_id);
