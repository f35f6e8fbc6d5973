-- jobrepo schema version 1 for PostgreSQL.
-- Times are timestamptz from the server's clock (current_timestamp).

CREATE TABLE job (
  plugin_id text NOT NULL CHECK (length(trim(plugin_id)) BETWEEN 1 AND 127),
  name text NOT NULL CHECK (length(trim(name)) BETWEEN 1 AND 127),
  description text NOT NULL CHECK (length(trim(description)) BETWEEN 1 AND 1023),
  next_scheduled_run timestamptz NOT NULL,
  PRIMARY KEY (plugin_id, name)
);

-- The claim scans due jobs of one plugin, earliest first, ties by name.
CREATE INDEX job_due ON job (plugin_id, next_scheduled_run, name);

CREATE TABLE job_run (
  private_id text NOT NULL PRIMARY KEY
    CHECK (length(private_id) >= 16 AND private_id ~ '^[A-Za-z0-9_-]+$'),
  job_plugin_id text NOT NULL,
  job_name text NOT NULL,
  server_id text NOT NULL CHECK (length(trim(server_id)) BETWEEN 1 AND 255),
  create_time timestamptz NOT NULL,
  update_time timestamptz NOT NULL,
  end_time timestamptz,
  completed_count bigint NOT NULL DEFAULT 0 CHECK (completed_count >= 0),
  total_count bigint NOT NULL DEFAULT 0 CHECK (total_count >= 0),
  status text NOT NULL DEFAULT 'running'
    CHECK (status IN ('running', 'completed', 'failed', 'interrupted')),
  CONSTRAINT job_run_completed_le_total CHECK (completed_count <= total_count),
  -- end_time is set exactly when the run is final.
  CONSTRAINT job_run_end_time_iff_final CHECK ((status = 'running') = (end_time IS NULL)),
  FOREIGN KEY (job_plugin_id, job_name) REFERENCES job (plugin_id, name)
    ON DELETE CASCADE ON UPDATE CASCADE
);

-- At most one running run per job: the promise the whole library rests on.
-- Also the claim's NOT EXISTS probe: its size is the number of running runs,
-- not the run history.
CREATE UNIQUE INDEX job_run_one_running ON job_run (job_plugin_id, job_name) WHERE status = 'running';
-- Runs of a job (cascading deletes, history).
CREATE INDEX job_run_job ON job_run (job_plugin_id, job_name, create_time);
-- Stale running runs by age.
CREATE INDEX job_run_running_age ON job_run (job_plugin_id, update_time) WHERE status = 'running';

-- A final run never changes state again.
CREATE FUNCTION job_run_final_is_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'job_run: run % is %, a final run cannot change state', OLD.private_id, OLD.status
    USING ERRCODE = 'check_violation', CONSTRAINT = 'job_run_final_is_final';
END
$$;
CREATE TRIGGER job_run_final_is_final BEFORE UPDATE OF status ON job_run
  FOR EACH ROW WHEN (OLD.status <> 'running') EXECUTE FUNCTION job_run_final_is_final();
