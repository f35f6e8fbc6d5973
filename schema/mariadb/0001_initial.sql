-- jobrepo schema version 1 for MariaDB (10.6 and later): the whole schema
-- of the other backends' versions 1 to 6 at once, in one file.
-- Times are DATETIME(6) in UTC from the server's clock (the store's sessions
-- use time_zone '+00:00'). Text compares byte for byte and without padding
-- (utf8mb4_nopad_bin): "a" and "a " are two names, as on PostgreSQL and SQLite.
-- A run's payload and a job's requested arguments are JSON text of at most
-- 64 KiB (jobrepo checks the JSON; the schema, the size in bytes).

CREATE TABLE job (
  plugin_id VARCHAR(255) NOT NULL,
  name VARCHAR(255) NOT NULL,
  description VARCHAR(1100) NOT NULL,
  next_scheduled_run DATETIME(6) NOT NULL,
  schedule VARCHAR(1023) NOT NULL DEFAULT '',
  paused BOOLEAN NOT NULL DEFAULT FALSE,
  run_requested BOOLEAN NOT NULL DEFAULT FALSE,
  consecutive_failures BIGINT NOT NULL DEFAULT 0,
  last_status VARCHAR(16) NULL,
  last_end_time DATETIME(6) NULL,
  last_message VARCHAR(1023) NULL,
  last_success_time DATETIME(6) NULL,
  requested_payload MEDIUMTEXT NULL,
  PRIMARY KEY (plugin_id, name),
  -- The claim scans due jobs of one plugin, earliest first, ties by name.
  KEY job_due (plugin_id, next_scheduled_run, name),
  CONSTRAINT job_plugin_id CHECK (CHAR_LENGTH(TRIM(plugin_id)) BETWEEN 1 AND 127),
  CONSTRAINT job_name CHECK (CHAR_LENGTH(TRIM(name)) BETWEEN 1 AND 127),
  CONSTRAINT job_description CHECK (CHAR_LENGTH(TRIM(description)) BETWEEN 1 AND 1023),
  CONSTRAINT job_failures CHECK (consecutive_failures >= 0),
  CONSTRAINT job_last_status CHECK (last_status IN ('completed', 'failed', 'interrupted')),
  CONSTRAINT job_requested_payload CHECK (OCTET_LENGTH(requested_payload) <= 65536)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

CREATE TABLE job_run (
  private_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
  job_plugin_id VARCHAR(255) NOT NULL,
  job_name VARCHAR(255) NOT NULL,
  server_id VARCHAR(255) NOT NULL,
  create_time DATETIME(6) NOT NULL,
  update_time DATETIME(6) NOT NULL,
  end_time DATETIME(6) NULL,
  completed_count BIGINT NOT NULL DEFAULT 0,
  total_count BIGINT NOT NULL DEFAULT 0,
  status VARCHAR(16) NOT NULL DEFAULT 'running',
  message VARCHAR(1023) NULL,
  attempt BIGINT NOT NULL DEFAULT 1,
  cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
  work_end_time DATETIME(6) NULL,
  payload MEDIUMTEXT NULL,
  -- At most one running run per job: the promise the whole library rests on.
  -- Both columns are NULL unless the run is running, and a unique key allows
  -- any number of NULLs; the claim's probe for a running run reads this key.
  running_plugin_id VARCHAR(255) AS (IF(status = 'running', job_plugin_id, NULL)) STORED,
  running_job_name VARCHAR(255) AS (IF(status = 'running', job_name, NULL)) STORED,
  UNIQUE KEY job_run_one_running (running_plugin_id, running_job_name),
  -- Runs of a job (cascading deletes, history).
  KEY job_run_job (job_plugin_id, job_name, create_time),
  -- list_runs without a job filter: a plugin's runs, newest first.
  KEY job_run_history (job_plugin_id, create_time),
  -- Stale running runs by age, final runs by end time (prune_runs).
  KEY job_run_age (job_plugin_id, status, update_time),
  KEY job_run_ended (job_plugin_id, end_time),
  CONSTRAINT job_run_id CHECK (CHAR_LENGTH(private_id) >= 16 AND private_id REGEXP '^[A-Za-z0-9_-]+$'),
  CONSTRAINT job_run_server_id CHECK (CHAR_LENGTH(TRIM(server_id)) BETWEEN 1 AND 255),
  CONSTRAINT job_run_counts CHECK (completed_count >= 0 AND total_count >= 0),
  CONSTRAINT job_run_completed_le_total CHECK (completed_count <= total_count),
  CONSTRAINT job_run_status CHECK (status IN ('running', 'completed', 'failed', 'interrupted')),
  -- end_time is set exactly when the run is final.
  CONSTRAINT job_run_end_time_iff_final CHECK ((status = 'running') = (end_time IS NULL)),
  CONSTRAINT job_run_attempt CHECK (attempt >= 1),
  CONSTRAINT job_run_payload CHECK (OCTET_LENGTH(payload) <= 65536),
  CONSTRAINT job_run_of_job FOREIGN KEY (job_plugin_id, job_name) REFERENCES job (plugin_id, name) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

-- A final run never changes state again.
CREATE TRIGGER job_run_final_is_final BEFORE UPDATE ON job_run FOR EACH ROW
  IF OLD.status <> 'running' AND NEW.status <> OLD.status THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'job_run_final_is_final: a final run cannot change state';
  END IF;

-- The servers that are serving (their proof of life, and the instance of a
-- server that holds its id) and the jobs each one serves, with a
-- fingerprint of its definition there.
CREATE TABLE server (
  plugin_id VARCHAR(255) NOT NULL,
  server_id VARCHAR(255) NOT NULL,
  seen_time DATETIME(6) NOT NULL,
  expire_time DATETIME(6) NOT NULL,
  instance VARCHAR(255) NOT NULL DEFAULT '',
  address VARCHAR(255) NOT NULL DEFAULT '',
  PRIMARY KEY (plugin_id, server_id),
  CONSTRAINT server_id CHECK (CHAR_LENGTH(TRIM(server_id)) BETWEEN 1 AND 255)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

CREATE TABLE job_server (
  plugin_id VARCHAR(255) NOT NULL,
  job_name VARCHAR(255) NOT NULL,
  server_id VARCHAR(255) NOT NULL,
  fingerprint VARCHAR(64) NOT NULL,
  registered_time DATETIME(6) NOT NULL,
  PRIMARY KEY (plugin_id, job_name, server_id),
  KEY job_server_by_server (plugin_id, server_id, job_name),
  CONSTRAINT job_server_fingerprint CHECK (CHAR_LENGTH(fingerprint) BETWEEN 1 AND 64),
  CONSTRAINT job_server_job FOREIGN KEY (plugin_id, job_name) REFERENCES job (plugin_id, name) ON DELETE CASCADE,
  CONSTRAINT job_server_server FOREIGN KEY (plugin_id, server_id) REFERENCES server (plugin_id, server_id)
    ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;
