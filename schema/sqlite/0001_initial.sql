-- jobrepo schema version 1 for SQLite.
-- Times are INTEGER microseconds since the Unix epoch (UTC), taken from
-- SQLite's own clock. STRICT tables keep every column to its declared type.

CREATE TABLE job (
  plugin_id TEXT NOT NULL CHECK (length(trim(plugin_id)) BETWEEN 1 AND 127),
  name TEXT NOT NULL CHECK (length(trim(name)) BETWEEN 1 AND 127),
  description TEXT NOT NULL CHECK (length(trim(description)) BETWEEN 1 AND 1023),
  next_scheduled_run INTEGER NOT NULL,
  PRIMARY KEY (plugin_id, name)
) STRICT, WITHOUT ROWID;

-- The claim scans due jobs of one plugin, earliest first, ties by name.
CREATE INDEX job_due ON job (plugin_id, next_scheduled_run, name);

CREATE TABLE job_run (
  private_id TEXT NOT NULL PRIMARY KEY
    CHECK (length(private_id) >= 16 AND private_id NOT GLOB '*[^A-Za-z0-9_-]*'),
  job_plugin_id TEXT NOT NULL,
  job_name TEXT NOT NULL,
  server_id TEXT NOT NULL CHECK (length(trim(server_id)) BETWEEN 1 AND 255),
  create_time INTEGER NOT NULL,
  update_time INTEGER NOT NULL,
  end_time INTEGER,
  completed_count INTEGER NOT NULL DEFAULT 0 CHECK (completed_count >= 0),
  total_count INTEGER NOT NULL DEFAULT 0 CHECK (total_count >= 0),
  status TEXT NOT NULL DEFAULT 'running'
    CHECK (status IN ('running', 'completed', 'failed', 'interrupted')),
  CHECK (completed_count <= total_count),
  -- end_time is set exactly when the run is final.
  CHECK ((status = 'running') = (end_time IS NULL)),
  FOREIGN KEY (job_plugin_id, job_name) REFERENCES job (plugin_id, name)
    ON DELETE CASCADE ON UPDATE CASCADE
) STRICT;

-- At most one running run per job: the promise the whole library rests on.
CREATE UNIQUE INDEX job_run_one_running ON job_run (job_plugin_id, job_name) WHERE status = 'running';
-- Runs of a job (cascading deletes, history); stale running runs by age.
CREATE INDEX job_run_job ON job_run (job_plugin_id, job_name, create_time);
CREATE INDEX job_run_running_age ON job_run (job_plugin_id, update_time) WHERE status = 'running';

-- A final run never changes state again.
CREATE TRIGGER job_run_final_is_final BEFORE UPDATE OF status ON job_run
  WHEN OLD.status <> 'running'
BEGIN
  SELECT RAISE(ABORT, 'job_run: a final run cannot change state');
END;
