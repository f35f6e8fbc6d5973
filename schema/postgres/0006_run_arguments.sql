-- jobrepo schema version 6 for PostgreSQL: run arguments.
-- An operator's request for a run may carry the run's arguments, JSON text
-- of at most 64 KiB (jobrepo checks the JSON; the schema, the size in
-- bytes): the job keeps them until a claim moves them onto the run it makes.
-- Plain text, not json or jsonb, so that the handler gets them byte for byte.

ALTER TABLE job ADD COLUMN requested_payload text CHECK (octet_length(requested_payload) <= 65536);

ALTER TABLE job_run ADD COLUMN payload text CHECK (octet_length(payload) <= 65536);
