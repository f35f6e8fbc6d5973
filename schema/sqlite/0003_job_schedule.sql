-- jobrepo schema version 3 for SQLite: a job's schedule as the servers that
-- run it describe it ("every 1h", "cron 0 3 * * * in Europe/Berlin"), for
-- people; empty when unknown.
ALTER TABLE job ADD COLUMN schedule TEXT NOT NULL DEFAULT '' CHECK (length(schedule) <= 1023);
