-- jobrepo schema version 3 for PostgreSQL: a job's schedule as the servers
-- that run it describe it ("every 1h", "cron 0 3 * * * in Europe/Berlin"), for
-- people; empty when unknown.
ALTER TABLE job ADD COLUMN schedule text NOT NULL DEFAULT '' CHECK (length(schedule) <= 1023);
