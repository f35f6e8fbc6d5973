-- jobrepo schema version 5 for PostgreSQL: the promise at the edges.
-- A server id is a lease held by one instance of a server (a process's
-- Scheduler) at a time: the instance and where it runs. A run records when
-- its owner's work ended when someone else had ended the run while that
-- work went on (jobctl audit reports such a run).

ALTER TABLE server
  ADD COLUMN instance text NOT NULL DEFAULT '' CHECK (length(instance) <= 255),
  ADD COLUMN address text NOT NULL DEFAULT '' CHECK (length(address) <= 255);

ALTER TABLE job_run ADD COLUMN work_end_time timestamptz;
