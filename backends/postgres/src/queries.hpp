// The SQL of the PostgreSQL store, in one place (the tests EXPLAIN it too).
// Placeholders are SOCI's :name, bound in order of appearance. Times leave
// the server as integer microseconds since the Unix epoch. "Now" is always
// current_timestamp (the transaction's start) plus the test clock offset.
#pragma once

namespace jobrepo::postgres_backend::queries {

#define JR_EPOCH_US(column) "CAST(extract(epoch FROM " column ") * 1000000 AS bigint)"
#define JR_RUN_COLUMNS(p)                                                                                            \
  p "private_id, " p "job_plugin_id, " p "job_name, " p "server_id, " JR_EPOCH_US(p "create_time") ", " JR_EPOCH_US( \
      p "update_time") ", " JR_EPOCH_US(p "end_time") ", " p "completed_count, " p "total_count, " p "status"
#define JR_JOB_COLUMNS "plugin_id, name, description, " JR_EPOCH_US("next_scheduled_run") ", schedule"
#define JR_CLOCK "clock AS (SELECT current_timestamp + CAST(:clock AS bigint) * interval '1 microsecond' AS now)"
// A due time (store.hpp's Due): `at` (microseconds since the epoch) when not
// NULL, else `now` + `delta` microseconds.
#define JR_DUE(now, delta, at)                                                                              \
  "COALESCE(timestamptz 'epoch' + CAST(" at " AS bigint) * interval '1 microsecond', " now " + CAST(" delta \
  " AS bigint) * interval '1 microsecond')"

inline constexpr const char* now =
    "SELECT " JR_EPOCH_US("current_timestamp + CAST(:clock AS bigint) * interval '1 microsecond'");

inline constexpr const char* schema_version = "SELECT max(version) FROM jobrepo_schema_version";

// A WHERE condition that is always true and, evaluated once, sends NOTIFY
// jobrepo_due (payload: the plugin id) at commit when the CTE `cte` has rows:
// the wake-up of schedulers that wait (listener.hpp).
#define JR_NOTIFY_DUE(cte, plugin_column)                                                           \
  " WHERE (SELECT count(*) FROM (SELECT pg_notify('jobrepo_due', min(" plugin_column ")) FROM " cte \
  " HAVING count(*) > 0) notified) >= 0"

inline constexpr const char* create_job =
    "WITH created AS (INSERT INTO job (plugin_id, name, description, schedule, next_scheduled_run)"
    " VALUES (:plugin, :name, :description, :schedule, " JR_DUE("current_timestamp", ":delta", ":at") ")"
    " RETURNING *)"
    " SELECT " JR_EPOCH_US("next_scheduled_run") " FROM created" JR_NOTIFY_DUE("created", "plugin_id");

// Registration: insert, or keep the due time and update the description and
// the schedule text.
inline constexpr const char* ensure_job =
    "WITH ensured AS (INSERT INTO job (plugin_id, name, description, schedule, next_scheduled_run)"
    " VALUES (:plugin, :name, :description, :schedule, " JR_DUE("current_timestamp", ":delta", ":at") ")"
    " ON CONFLICT (plugin_id, name) DO UPDATE SET description = excluded.description, schedule = excluded.schedule"
    " RETURNING *)"
    " SELECT " JR_JOB_COLUMNS " FROM ensured" JR_NOTIFY_DUE("ensured", "plugin_id");

inline constexpr const char* lookup_job =
    "SELECT " JR_JOB_COLUMNS " FROM job WHERE plugin_id = :plugin AND name = :name";

// LIMIT NULL is no limit.
inline constexpr const char* list_jobs = "SELECT " JR_JOB_COLUMNS
                                         " FROM job WHERE plugin_id = :plugin"
                                         " AND (CAST(:filtered AS integer) = 0 OR name = :name)"
                                         " ORDER BY name LIMIT CAST(:limit AS bigint)";

inline constexpr const char* reschedule_job =
    "WITH rescheduled AS (UPDATE job"
    " SET next_scheduled_run = " JR_DUE("current_timestamp", ":delta", ":at")
    " WHERE plugin_id = :plugin AND name = :name RETURNING *)"
    " SELECT " JR_JOB_COLUMNS " FROM rescheduled" JR_NOTIFY_DUE("rescheduled", "plugin_id");

// The claim, one statement: lock due jobs that have no running run (skipping
// rows other claims hold), insert a running run for each (a run inserted by a
// claim that committed meanwhile makes ON CONFLICT skip that job instead of
// failing), and return the new runs in claim order.
// The running runs of the plugin are read once, through a partial index on
// status = 'running' (its size is the number of running runs, never the
// history), into a hashed NOT IN set. NOT EXISTS was slower by far: the
// planner made it an anti join that, with statistics taken while job_run was
// small, compared every due job with every running run (a claim among 1,000
// running runs took milliseconds); LATERAL ... LIMIT 1 still cost ~20 us per
// due job. The conflict arbiter is the partial unique index
// job_run_one_running. Run ids: 128 random bits from gen_random_uuid(), as 22
// base64url characters.
inline constexpr const char* claim_runs =
    "WITH " JR_CLOCK ","
    " due AS ("
    "  SELECT j.plugin_id, j.name, j.next_scheduled_run FROM job j CROSS JOIN clock c"
    "  WHERE j.plugin_id = :plugin AND j.next_scheduled_run <= c.now"
    "  AND j.name NOT IN (SELECT r.job_name FROM job_run r WHERE r.job_plugin_id = :plugin2"
    "                     AND r.status = 'running')"
    "  AND (CAST(:filtered AS integer) = 0 OR j.name IN (SELECT jsonb_array_elements_text(CAST(:names AS jsonb))))"
    "  ORDER BY j.next_scheduled_run, j.name"
    "  LIMIT CAST(:limit AS bigint)"
    "  FOR UPDATE OF j SKIP LOCKED),"
    " ins AS ("
    "  INSERT INTO job_run (private_id, job_plugin_id, job_name, server_id, create_time, update_time)"
    "  SELECT translate(encode(decode(replace(CAST(gen_random_uuid() AS text), '-', ''), 'hex'), 'base64'),"
    "                   '+/=', '-_'),"
    "         d.plugin_id, d.name, :server, c.now, c.now"
    "  FROM due d, clock c"
    "  ON CONFLICT (job_plugin_id, job_name) WHERE status = 'running' DO NOTHING"
    "  RETURNING *)"
    " SELECT " JR_RUN_COLUMNS("ins.") " FROM ins JOIN due ON due.plugin_id = ins.job_plugin_id AND due.name = ins.job_name"
    " ORDER BY due.next_scheduled_run, due.name";

// Progress, fail: touches the run row only.
inline constexpr const char* update_run =
    "WITH " JR_CLOCK
    " UPDATE job_run r SET status = :status, update_time = c.now,"
    "  end_time = CASE WHEN CAST(:final AS integer) = 1 THEN c.now END,"
    "  completed_count = COALESCE(CAST(:completed AS bigint), r.completed_count),"
    "  total_count = COALESCE(CAST(:total AS bigint), r.total_count)"
    " FROM clock c"
    " WHERE r.private_id = :id AND r.job_plugin_id = :plugin AND r.status = 'running'"
    " RETURNING " JR_RUN_COLUMNS("r.");

// Complete: ends the run and reschedules its job. Locks the job row first,
// as the claim does, so that a claim and a completion never wait for each
// other in opposite orders (no deadlock).
inline constexpr const char* update_run_and_reschedule =
    "WITH " JR_CLOCK
    ","
    " locked AS ("
    "  SELECT r.private_id FROM job_run r JOIN job j ON j.plugin_id = r.job_plugin_id AND j.name = r.job_name"
    "  WHERE r.private_id = :id AND r.job_plugin_id = :plugin AND r.status = 'running'"
    "  FOR UPDATE OF j),"
    " run AS ("
    "  UPDATE job_run r SET status = :status, update_time = c.now,"
    "   end_time = CASE WHEN CAST(:final AS integer) = 1 THEN c.now END,"
    "   completed_count = COALESCE(CAST(:completed AS bigint), r.completed_count),"
    "   total_count = COALESCE(CAST(:total AS bigint), r.total_count)"
    "  FROM locked l, clock c"
    "  WHERE r.private_id = l.private_id AND r.status = 'running'"
    "  RETURNING r.*),"
    " rescheduled AS ("
    "  UPDATE job j SET next_scheduled_run = " JR_DUE("c.now", ":delta", ":at")
    "  FROM run, clock c WHERE j.plugin_id = run.job_plugin_id AND j.name = run.job_name)"
    " SELECT " JR_RUN_COLUMNS("run.") " FROM run";

// Many run transitions in one statement (Repository::update_runs): the
// changes arrive as one JSON array; the runs (found through the primary key:
// ANY of an array, whatever the planner guesses of the JSON's size) and
// their jobs are locked in run id order first, so that two batches (one
// server's completions and its heartbeats) never deadlock; each result row
// carries its change's position.
inline constexpr const char* update_runs_batch =
    "WITH " JR_CLOCK
    ","
    " input AS (SELECT * FROM jsonb_to_recordset(CAST(:changes AS jsonb)) AS i(ord integer, id text, plugin text,"
    "  status text, final integer, completed bigint, total bigint, reschedule integer, delta bigint, at bigint)),"
    " locked AS ("
    "  SELECT r.private_id FROM job_run r JOIN job j ON j.plugin_id = r.job_plugin_id AND j.name = r.job_name"
    "  WHERE r.private_id = ANY (ARRAY(SELECT id FROM input)) AND r.status = 'running'"
    "  AND EXISTS (SELECT 1 FROM input i WHERE i.id = r.private_id AND i.plugin = r.job_plugin_id)"
    "  ORDER BY r.private_id FOR UPDATE OF r, j),"
    " run AS ("
    "  UPDATE job_run r SET status = i.status, update_time = c.now,"
    "   end_time = CASE WHEN i.final = 1 THEN c.now END,"
    "   completed_count = COALESCE(i.completed, r.completed_count),"
    "   total_count = COALESCE(i.total, r.total_count)"
    "  FROM locked l, input i, clock c"
    "  WHERE r.private_id = l.private_id AND i.id = r.private_id AND i.plugin = r.job_plugin_id"
    "  AND r.status = 'running'"
    "  RETURNING r.*, i.ord, i.reschedule, i.delta, i.at),"
    " rescheduled AS ("
    "  UPDATE job j SET next_scheduled_run = " JR_DUE("c.now", "run.delta", "run.at")
    "  FROM run, clock c WHERE run.reschedule = 1 AND j.plugin_id = run.job_plugin_id AND j.name = run.job_name)"
    " SELECT run.ord, " JR_RUN_COLUMNS("run.") " FROM run ORDER BY run.ord";

inline constexpr const char* interrupt_stale_runs =
    "WITH " JR_CLOCK
    ", interrupted AS ("
    " UPDATE job_run r SET status = 'interrupted', update_time = c.now, end_time = c.now"
    " FROM clock c"
    " WHERE r.job_plugin_id = :plugin AND r.status = 'running'"
    " AND r.update_time <= c.now - CAST(:threshold AS bigint) * interval '1 microsecond'"
    " AND (CAST(:filtered AS integer) = 0 OR r.server_id = :server)"
    " RETURNING r.*)"
    " SELECT " JR_RUN_COLUMNS("interrupted.") " FROM interrupted" JR_NOTIFY_DUE("interrupted", "job_plugin_id");

inline constexpr const char* lookup_run =
    "SELECT " JR_RUN_COLUMNS("") " FROM job_run WHERE private_id = :id AND job_plugin_id = :plugin";

inline constexpr const char* delete_job = "DELETE FROM job WHERE plugin_id = :plugin AND name = :name";

// LIMIT NULL is no limit.
inline constexpr const char* list_runs =
    "SELECT " JR_RUN_COLUMNS("") " FROM job_run WHERE job_plugin_id = :plugin"
    " AND (CAST(:has_job AS integer) = 0 OR job_name = :job)"
    " AND (CAST(:has_status AS integer) = 0 OR status = :status)"
    " ORDER BY create_time DESC, private_id LIMIT CAST(:limit AS bigint)";

inline constexpr const char* prune_runs =
    "DELETE FROM job_run WHERE job_plugin_id = :plugin AND status <> 'running'"
    " AND end_time <= current_timestamp + CAST(:delta AS bigint) * interval '1 microsecond'";

#undef JR_EPOCH_US
#undef JR_RUN_COLUMNS
#undef JR_JOB_COLUMNS
#undef JR_CLOCK
#undef JR_NOTIFY_DUE
#undef JR_DUE

}  // namespace jobrepo::postgres_backend::queries
