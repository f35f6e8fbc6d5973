-- jobrepo schema version 4 for PostgreSQL: operators in control.
-- A job can be paused, asked to run again once its running run ends, and
-- carries its last outcome and its count of consecutive failures (the
-- back-off every server reads). A run carries why it ended, its attempt
-- number and an operator's request to cancel it.

ALTER TABLE job
  ADD COLUMN paused boolean NOT NULL DEFAULT false,
  ADD COLUMN run_requested boolean NOT NULL DEFAULT false,
  ADD COLUMN consecutive_failures bigint NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
  ADD COLUMN last_status text CHECK (last_status IN ('completed', 'failed', 'interrupted')),
  ADD COLUMN last_end_time timestamptz,
  ADD COLUMN last_message text CHECK (length(last_message) <= 1023),
  ADD COLUMN last_success_time timestamptz;

ALTER TABLE job_run
  ADD COLUMN message text CHECK (length(message) <= 1023),
  ADD COLUMN attempt bigint NOT NULL DEFAULT 1 CHECK (attempt >= 1),
  ADD COLUMN cancel_requested boolean NOT NULL DEFAULT false;

-- The servers that are serving (their proof of life) and the jobs each one
-- serves, with a fingerprint of its definition there.
CREATE TABLE server (
  plugin_id text NOT NULL,
  server_id text NOT NULL CHECK (length(trim(server_id)) BETWEEN 1 AND 255),
  seen_time timestamptz NOT NULL,
  expire_time timestamptz NOT NULL,
  PRIMARY KEY (plugin_id, server_id)
);

CREATE TABLE job_server (
  plugin_id text NOT NULL,
  job_name text NOT NULL,
  server_id text NOT NULL,
  fingerprint text NOT NULL CHECK (length(fingerprint) BETWEEN 1 AND 64),
  registered_time timestamptz NOT NULL,
  PRIMARY KEY (plugin_id, job_name, server_id),
  FOREIGN KEY (plugin_id, job_name) REFERENCES job (plugin_id, name) ON DELETE CASCADE ON UPDATE CASCADE,
  FOREIGN KEY (plugin_id, server_id) REFERENCES server (plugin_id, server_id) ON DELETE CASCADE
);

CREATE INDEX job_server_by_server ON job_server (plugin_id, server_id);
