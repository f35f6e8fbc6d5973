-- jobrepo schema version 2 for PostgreSQL: reading and pruning run history.

-- list_runs without a job filter: a plugin's runs, newest first.
CREATE INDEX job_run_history ON job_run (job_plugin_id, create_time);
-- prune_runs: final runs by end time.
CREATE INDEX job_run_ended ON job_run (job_plugin_id, end_time) WHERE status <> 'running';
