-- jobrepo schema version 5 for PostgreSQL: the promise at the edges.
-- A server id is a lease held by one instance of a server (a process's
-- Scheduler) at a time: the instance and where it runs. A run records when
-- its owner's work ended when someone else had ended the run while that
-- work went on (jobctl audit reports such a run).

ALTER TABLE server
  ADD COLUMN instance text NOT NULL DEFAULT '' CHECK (length(instance) <= 255),
  ADD COLUMN address text NOT NULL DEFAULT '' CHECK (length(address) <= 255);

ALTER TABLE job_run ADD COLUMN work_end_time timestamptz;

-- A claim with served_only looks one serving up by (plugin, job, server) per
-- due job. With the job name in the by-server index too, both indexes of
-- job_server answer that by the whole key: before job_server has statistics
-- the planner picked the by-server index and read every serving of the
-- server for each due job.
DROP INDEX job_server_by_server;
CREATE INDEX job_server_by_server ON job_server (plugin_id, server_id, job_name);
