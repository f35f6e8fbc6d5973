-- jobrepo schema version 6 for SQLite: run arguments.
-- An operator's request for a run may carry the run's arguments, JSON text
-- of at most 64 KiB (jobrepo checks the JSON; the schema, the size in
-- bytes): the job keeps them until a claim moves them onto the run it makes.

ALTER TABLE job ADD COLUMN requested_payload TEXT CHECK (length(CAST(requested_payload AS BLOB)) <= 65536);

ALTER TABLE job_run ADD COLUMN payload TEXT CHECK (length(CAST(payload AS BLOB)) <= 65536);
