// The SQL of the PostgreSQL store, in one place (the tests EXPLAIN it too).
// Placeholders are named (:name): one parameter per name, bound by name
// (connection.hpp). Times leave
// the server as integer microseconds since the Unix epoch. "Now" is always
// clock_timestamp(), read once per statement while it executes, plus the test
// clock offset; never current_timestamp, the transaction's start: a claim
// whose transaction began before another server's interruption committed,
// but whose snapshot saw it, would start its run before the run it follows
// ended (an overlap in the history that never happened). Read during
// execution, every time a statement writes is later than the commit of each
// change it saw.
#pragma once

#include <array>
#include <string_view>
#include <utility>

namespace jobrepo::postgres_backend::queries {

#define JR_EPOCH_US(column) "CAST(extract(epoch FROM " column ") * 1000000 AS bigint)"
#define JR_RUN_COLUMNS(p)                                                                                          \
  p "private_id, " p "job_plugin_id, " p "job_name, " p                                                            \
    "server_id, " JR_EPOCH_US(p "create_time") ", " JR_EPOCH_US(p "update_time") ", " JR_EPOCH_US(                 \
        p "end_time") ", " p "completed_count, " p "total_count, " p "status, " p "message, " p "attempt, CAST(" p \
                      "cancel_requested AS integer), " JR_EPOCH_US(p "work_end_time") ", " p "payload"
#define JR_JOB_COLUMNS \
  "plugin_id, name, description, " JR_EPOCH_US("next_scheduled_run") ", schedule, CAST(paused AS integer),"           \
  " CAST(run_requested AS integer), consecutive_failures, last_status, " JR_EPOCH_US("last_end_time") ", last_message, " \
  JR_EPOCH_US("last_success_time") ", requested_payload"
// A CTE with a volatile function is evaluated once, never inlined.
#define JR_CLOCK "clock AS (SELECT clock_timestamp() + CAST(:clock AS bigint) * interval '1 microsecond' AS now)"
// Now without the test clock, once per statement (an InitPlan).
#define JR_NOW "(SELECT clock_timestamp())"
// A due time (store.hpp's Due): `at` (microseconds since the epoch) when not
// NULL, else `now` + `delta` microseconds.
#define JR_DUE(now, delta, at)                                                                              \
  "COALESCE(timestamptz 'epoch' + CAST(" at " AS bigint) * interval '1 microsecond', " now " + CAST(" delta \
  " AS bigint) * interval '1 microsecond')"

inline constexpr const char* now =
    "SELECT " JR_EPOCH_US("clock_timestamp() + CAST(:clock AS bigint) * interval '1 microsecond'");

inline constexpr const char* schema_version = "SELECT max(version) FROM jobrepo_schema_version";
inline constexpr const char* has_schema_table =
    "SELECT CAST(to_regclass('jobrepo_schema_version') IS NOT NULL AS integer)";
inline constexpr const char* create_schema_table =
    "CREATE TABLE jobrepo_schema_version (version integer PRIMARY KEY, name text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT current_timestamp)";
inline constexpr const char* record_schema_version =
    "INSERT INTO jobrepo_schema_version (version, name) VALUES (CAST(:version AS integer), :name)";
// migrate() holds this lock for its transaction, so that servers starting
// at once migrate one after the other.
inline constexpr const char* lock_migration = "SELECT pg_advisory_xact_lock(CAST(:key AS bigint))";

// A WHERE condition that is always true and, evaluated once, sends NOTIFY
// jobrepo_due (payload: the plugin id) at commit when the CTE `cte` has rows:
// the wake-up of schedulers that wait (wakeups.hpp).
#define JR_NOTIFY_DUE(cte, plugin_column)                                                           \
  " WHERE (SELECT count(*) FROM (SELECT pg_notify('jobrepo_due', min(" plugin_column ")) FROM " cte \
  " HAVING count(*) > 0) notified) >= 0"

inline constexpr const char* create_job =
    "WITH created AS (INSERT INTO job (plugin_id, name, description, schedule, next_scheduled_run)"
    " VALUES (:plugin, :name, :description, :schedule, " JR_DUE(JR_NOW, ":delta", ":at") ")"
    " RETURNING *)"
    " SELECT " JR_EPOCH_US("next_scheduled_run") " FROM created" JR_NOTIFY_DUE("created", "plugin_id");

// Registration: insert, or keep the due time and update the description and
// the schedule text.
inline constexpr const char* ensure_job =
    "WITH ensured AS (INSERT INTO job (plugin_id, name, description, schedule, next_scheduled_run)"
    " VALUES (:plugin, :name, :description, :schedule, " JR_DUE(JR_NOW, ":delta", ":at") ")"
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
    " SET next_scheduled_run = " JR_DUE(JR_NOW, ":delta", ":at")
    " WHERE plugin_id = :plugin AND name = :name RETURNING *)"
    " SELECT " JR_JOB_COLUMNS " FROM rescheduled" JR_NOTIFY_DUE("rescheduled", "plugin_id");

// The claim, one statement: lock due jobs that have no running run (skipping
// rows other claims hold), insert a running run for each (a run inserted by a
// claim that committed meanwhile makes ON CONFLICT skip that job instead of
// failing), and return the new runs in claim order. The new runs meet their
// jobs only through the job table's primary key (one probe per run, the
// request cleared on the locked row, the order read from it), never by
// joining two CTEs: with hash joins disabled (hot_path_settings) such a join
// is a nested loop, every new run against every due job (a claim of 500
// runs took 51 ms instead of 21).
// The running runs of the plugin are read once, through a partial index on
// status = 'running' (its size is the number of running runs, never the
// history), into a hashed NOT IN set. NOT EXISTS was slower by far: the
// planner made it an anti join that, with statistics taken while job_run was
// small, compared every due job with every running run (a claim among 1,000
// running runs took milliseconds); LATERAL ... LIMIT 1 still cost ~20 us per
// due job. served_only looks job_server up by its whole key, one probe per
// due job, with a scalar subquery (NULL: not served): an EXISTS there became
// a hashed set of every serving of the server id in all plugins, built by
// every claim. Both indexes of job_server hold the whole key (schema 0005),
// so the probe is one key whatever the planner's statistics. The conflict
// arbiter is the partial unique index
// job_run_one_running. Run ids: 128 random bits from gen_random_uuid(), as 22
// base64url characters, a leading '-' made '_' (as generate_run_id does).
inline constexpr const char* claim_runs =
    "WITH " JR_CLOCK ","
    " due AS ("
    "  SELECT j.plugin_id, j.name, j.next_scheduled_run, j.consecutive_failures, j.run_requested, j.requested_payload"
    "  FROM job j CROSS JOIN clock c"
    "  WHERE j.plugin_id = :plugin AND j.next_scheduled_run <= c.now AND NOT j.paused"
    "  AND j.name NOT IN (SELECT r.job_name FROM job_run r WHERE r.job_plugin_id = :plugin"
    "                     AND r.status = 'running')"
    "  AND (CAST(:filtered AS integer) = 0 OR j.name IN (SELECT jsonb_array_elements_text(CAST(:names AS jsonb))))"
    "  AND (CAST(:served AS integer) = 0 OR (SELECT true FROM job_server s"
    "       WHERE s.plugin_id = j.plugin_id AND s.job_name = j.name AND s.server_id = :served_by))"
    "  ORDER BY j.next_scheduled_run, j.name"
    "  LIMIT CAST(:limit AS bigint)"
    "  FOR UPDATE OF j SKIP LOCKED),"
    " ins AS ("
    "  INSERT INTO job_run (private_id, job_plugin_id, job_name, server_id, create_time, update_time, attempt,"
    "   payload)"
    "  SELECT regexp_replace(translate(encode(decode(replace(CAST(gen_random_uuid() AS text), '-', ''), 'hex'),"
    "                   'base64'), '+/=', '-_'), '^-', '_'),"
    "         d.plugin_id, d.name, :server, c.now, c.now, d.consecutive_failures + 1, d.requested_payload"
    "  FROM due d, clock c"
    "  ON CONFLICT (job_plugin_id, job_name) WHERE status = 'running' DO NOTHING"
    "  RETURNING *),"
    " cleared AS ("
    "  UPDATE job j SET run_requested = false, requested_payload = NULL FROM ins"
    "  WHERE j.plugin_id = ins.job_plugin_id AND j.name = ins.job_name"
    "  AND (j.run_requested OR j.requested_payload IS NOT NULL))"
    " SELECT " JR_RUN_COLUMNS("ins.") " FROM ins JOIN job o ON o.plugin_id = ins.job_plugin_id AND o.name = ins.job_name"
    " ORDER BY o.next_scheduled_run, o.name";

// What a run's change does to its job (`src`: a row with the run's status
// and message and the change's reschedule (0/1), delta and at; `c`: the
// clock): a reschedule, at now instead when an operator asked for a run
// meanwhile, and for a run that ended its last outcome and the count of
// consecutive failures.
#define JR_JOB_AFTER_RUN(src) \
  " next_scheduled_run = CASE WHEN " src ".reschedule = 0 THEN j.next_scheduled_run WHEN j.run_requested THEN c.now" \
  " ELSE " JR_DUE("c.now", src ".delta", src ".at") " END,"                                                          \
  " run_requested = CASE WHEN " src ".reschedule = 1 THEN false ELSE j.run_requested END,"                           \
  " consecutive_failures = CASE " src ".status WHEN 'failed' THEN j.consecutive_failures + 1"                        \
  "  WHEN 'completed' THEN 0 ELSE j.consecutive_failures END,"                                                       \
  " last_status = CASE WHEN " src ".status <> 'running' THEN " src ".status ELSE j.last_status END,"                 \
  " last_end_time = CASE WHEN " src ".status <> 'running' THEN c.now ELSE j.last_end_time END,"                      \
  " last_message = CASE WHEN " src ".status <> 'running' THEN " src ".message ELSE j.last_message END,"              \
  " last_success_time = CASE WHEN " src ".status = 'completed' THEN c.now ELSE j.last_success_time END"

// Every run transition, one or many (Repository::update_runs), in one
// statement: the only statement that changes a running run's status or
// counts (until 0.7 single changes had two statements of their own, through
// another layer, and the paths locked in opposite orders). The changes
// arrive as one JSON array. The lock order is that of every statement that
// changes a run and its job (the claim, run-now, interrupt_stale_runs): the
// job first, then its run; and jobs in (plugin_id, name) order. So for each
// change, in the order of its run's job, the job and then the run (by
// primary key) are locked: a batch (one server's completions, its
// heartbeats) and single completions of the same runs never wait for each
// other in opposite orders (with the run first here, 30 rounds of 24 runs
// completed one by one beside heartbeat batches deadlocked 7 times, each
// retried). The run's job is read first without a lock (a LATERAL
// subquery with LIMIT 1, which the planner cannot pull up into a join: it
// did, and scanned the whole run table), the run locked after its job (a
// LATERAL subquery that refers to the job's, so it runs after it, and
// finds the run by its primary key alone: not by the index of a job's runs,
// which holds its whole history).
// The locks are taken in LATERAL subqueries, which the planner cannot pull
// up: a nested loop driven by the changes, one primary-key probe each
// (with joins it chose from its guesses, a batch of 1,000 completions
// compared every change with every running run: 800 ms; on a new database,
// no statistics yet, it scanned the partial index of running runs, dead
// entries included, once per change: 10 s). The updates then find the rows
// by key, never by the ctid the lock returned: a row changed by a
// transaction that committed after this statement's snapshot (a heartbeat,
// an operator's run-now) has a newest version the snapshot does not see, so
// an update by its ctid would skip it, where one by key follows it: each
// locked row's key, one probe per change (until 0.7 the probe also tested
// the key against an array of every locked id, which the planner put in the
// probe: work in the square of the batch, 8,000 completions in 3.8 s, now
// 0.5 s; a stalled Scheduler's batches grew without end). Each result row
// carries its change's position.
inline constexpr const char* update_runs_batch =
    "WITH " JR_CLOCK
    ","
    " input AS (SELECT i.*, k.job_plugin_id AS job_plugin, k.job_name AS job"
    "  FROM jsonb_to_recordset(CAST(:changes AS jsonb)) AS i(ord integer, id text, plugin text,"
    "  status text, final integer, completed bigint, total bigint, message text, reschedule integer, delta bigint,"
    "  at bigint)"
    "  CROSS JOIN LATERAL (SELECT k.job_plugin_id, k.job_name FROM job_run k WHERE k.private_id = i.id LIMIT 1) k"
    "  ORDER BY k.job_plugin_id, k.job_name, i.id),"
    " locked AS ("
    "  SELECT i.*, r.private_id FROM input i"
    "  CROSS JOIN LATERAL (SELECT j.plugin_id, j.name FROM job j"
    "   WHERE j.plugin_id = i.job_plugin AND j.name = i.job FOR UPDATE OF j) j"
    "  CROSS JOIN LATERAL (SELECT r.private_id, r.job_plugin_id, r.job_name, r.status"
    "   FROM job_run r WHERE r.private_id = i.id AND j.name IS NOT NULL LIMIT 1 FOR UPDATE OF r) r"
    "  WHERE r.status = 'running' AND r.job_plugin_id = i.plugin),"
    " run AS ("
    "  UPDATE job_run r SET status = l.status, update_time = c.now,"
    "   end_time = CASE WHEN l.final = 1 THEN c.now END,"
    "   completed_count = COALESCE(l.completed, r.completed_count),"
    "   total_count = COALESCE(l.total, r.total_count),"
    "   message = CASE WHEN l.final = 1 THEN COALESCE(l.message, r.message) ELSE r.message END"
    "  FROM locked l, clock c"
    "  WHERE r.private_id = l.private_id"
    "  RETURNING r.*, l.ord, l.reschedule, l.delta, l.at),"
    " after AS ("
    "  UPDATE job j SET" JR_JOB_AFTER_RUN("run")
    "  FROM run, clock c WHERE (run.reschedule = 1 OR run.status <> 'running')"
    "  AND j.plugin_id = run.job_plugin_id AND j.name = run.job_name)"
    " SELECT run.ord, " JR_RUN_COLUMNS("run.") " FROM run ORDER BY run.ord";

// The stale runs are found first (a snapshot), then their jobs locked in
// (plugin_id, name) order, then the runs updated (each only while still
// running and stale: a heartbeat or an end committed meanwhile is seen by
// the update, which reads the newest version): the lock order of every run
// change, job before run (until 0.7 this statement locked the runs first).
// The jobs' locks are an InitPlan of the update, taken before it starts.
#define JR_STALE(r) \
  " " r ".job_plugin_id = :plugin AND " r ".status = 'running'"                                                     \
  " AND " r ".update_time <= c.now - CAST(:threshold AS bigint) * interval '1 microsecond'"                          \
  " AND (CAST(:filtered AS integer) = 0 OR " r ".server_id = :server)"                                              \
  " AND (CAST(:observed AS integer) = 0 OR (" r ".private_id, " JR_EPOCH_US(r ".update_time") ") IN"                \
  "  (SELECT o.id, o.updated FROM jsonb_to_recordset(CAST(:runs AS jsonb)) AS o(id text, updated bigint)))"
inline constexpr const char* interrupt_stale_runs =
    "WITH " JR_CLOCK
    ", stale AS (SELECT r.private_id, r.job_plugin_id, r.job_name FROM job_run r, clock c WHERE" JR_STALE("r") "),"
    " locked AS (SELECT j.plugin_id FROM job j WHERE (j.plugin_id, j.name) IN"
    "  (SELECT s.job_plugin_id, s.job_name FROM stale s) ORDER BY j.plugin_id, j.name FOR UPDATE OF j),"
    " interrupted AS ("
    " UPDATE job_run r SET status = 'interrupted', update_time = c.now, end_time = c.now,"
    "  message = CAST(:message AS text)"
    " FROM clock c"
    " WHERE (SELECT count(*) FROM locked) >= 0"
    " AND r.private_id = ANY (ARRAY(SELECT s.private_id FROM stale s)) AND" JR_STALE("r")
    " RETURNING r.*),"
    " noted AS (UPDATE job j SET last_status = 'interrupted', last_end_time = c.now,"
    "  last_message = interrupted.message"
    "  FROM interrupted, clock c WHERE j.plugin_id = interrupted.job_plugin_id AND j.name = interrupted.job_name)"
    " SELECT " JR_RUN_COLUMNS("interrupted.") " FROM interrupted" JR_NOTIFY_DUE("interrupted", "job_plugin_id");
#undef JR_STALE

inline constexpr const char* set_job_paused =
    "WITH changed AS (UPDATE job SET paused = CAST(:paused AS integer) = 1"
    " WHERE plugin_id = :plugin AND name = :name RETURNING *)"
    " SELECT " JR_JOB_COLUMNS " FROM changed" JR_NOTIFY_DUE("changed WHERE NOT paused", "plugin_id");

// Run-now, after lock_job in the same transaction (so that this statement's
// snapshot sees a claim that held the row): due now, or, while a run is
// running, due when it ends. A payload that waits for a claim is never
// replaced: a request with another one changes nothing (no row; core
// refuses it).
inline constexpr const char* lock_job = "SELECT 1 FROM job WHERE plugin_id = :plugin AND name = :name FOR UPDATE";
inline constexpr const char* request_run =
    "WITH " JR_CLOCK
    ","
    " running AS (SELECT EXISTS (SELECT 1 FROM job_run r WHERE r.job_plugin_id = :plugin AND r.job_name = :name"
    "  AND r.status = 'running') AS yes),"
    " changed AS (UPDATE job j SET run_requested = running.yes,"
    "  next_scheduled_run = CASE WHEN running.yes THEN j.next_scheduled_run ELSE c.now END,"
    "  requested_payload = COALESCE(j.requested_payload, CAST(:payload AS text))"
    "  FROM running, clock c WHERE j.plugin_id = :plugin AND j.name = :name"
    "  AND (CAST(:payload AS text) IS NULL OR j.requested_payload IS NULL OR j.requested_payload = :payload)"
    "  RETURNING j.*)"
    " SELECT " JR_JOB_COLUMNS " FROM changed" JR_NOTIFY_DUE("changed", "plugin_id");

inline constexpr const char* request_cancel =
    "WITH changed AS (UPDATE job_run SET cancel_requested = true"
    " WHERE private_id = :id AND job_plugin_id = :plugin AND status = 'running' RETURNING *)"
    " SELECT " JR_RUN_COLUMNS("") " FROM changed"
    " UNION ALL SELECT " JR_RUN_COLUMNS("") " FROM job_run WHERE private_id = :id AND job_plugin_id = :plugin"
    " AND NOT EXISTS (SELECT 1 FROM changed)";

// A server's record, written only when the server id is free (no record, or
// one without an instance), held by this instance, or taken over; returns
// its times when written. A concurrent first record by another instance
// makes ON CONFLICT find that one's row, which the WHERE then keeps.
inline constexpr const char* record_server =
    "WITH " JR_CLOCK
    " INSERT INTO server (plugin_id, server_id, instance, address, seen_time, expire_time)"
    " SELECT :plugin, :server, :instance, :address, c.now, c.now + CAST(:ttl AS bigint) * interval '1 microsecond'"
    " FROM clock c"
    " ON CONFLICT (plugin_id, server_id) DO UPDATE SET instance = excluded.instance, address = excluded.address,"
    " seen_time = excluded.seen_time, expire_time = excluded.expire_time"
    " WHERE server.instance = '' OR server.instance = excluded.instance OR CAST(:take_over AS integer) = 1"
    " RETURNING " JR_EPOCH_US("seen_time") ", " JR_EPOCH_US("expire_time");

// The holder of a server id (a statement of its own: it sees a record that
// another instance committed while record_server ran).
inline constexpr const char* server_holder = "SELECT instance, address, " JR_EPOCH_US("seen_time") ", " JR_EPOCH_US(
    "expire_time") " FROM server WHERE plugin_id = :plugin AND server_id = :server";

inline constexpr const char* forget_served_jobs =
    "DELETE FROM job_server WHERE plugin_id = :plugin AND server_id = :server";

// The jobs arrive as one JSON array of {"name", "fingerprint"}; jobs that
// do not exist are left out. Registered at the server record's seen_time
// (:seen, microseconds), not at this statement's own clock reading.
inline constexpr const char* record_served_jobs =
    "INSERT INTO job_server (plugin_id, job_name, server_id, fingerprint, registered_time)"
    " SELECT j.plugin_id, j.name, :server, i.fingerprint,"
    " timestamptz 'epoch' + CAST(:seen AS bigint) * interval '1 microsecond'"
    " FROM jsonb_to_recordset(CAST(:jobs AS jsonb)) AS i(name text, fingerprint text)"
    " JOIN job j ON j.plugin_id = :plugin AND j.name = i.name"
    " ON CONFLICT DO NOTHING";

inline constexpr const char* remove_server =
    "DELETE FROM server WHERE plugin_id = :plugin AND server_id = :server"
    " AND (CAST(:instance AS text) = '' OR instance = :instance)";

inline constexpr const char* record_work_end =
    "UPDATE job_run SET work_end_time = COALESCE(work_end_time,"
    " timestamptz 'epoch' + CAST(:ended AS bigint) * interval '1 microsecond')"
    " WHERE private_id = :id AND job_plugin_id = :plugin RETURNING " JR_RUN_COLUMNS("");

inline constexpr const char* list_servings =
    "WITH " JR_CLOCK
    " SELECT js.job_name, js.server_id, js.fingerprint, " JR_EPOCH_US("js.registered_time") ", " JR_EPOCH_US(
        "s.seen_time") ", CAST(s.expire_time > c.now AS integer)"
    " FROM job_server js JOIN server s ON s.plugin_id = js.plugin_id AND s.server_id = js.server_id CROSS JOIN clock c"
    " WHERE js.plugin_id = :plugin AND (CAST(:filtered AS integer) = 0 OR js.job_name = :name)"
    " ORDER BY js.job_name, js.server_id";

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
    " AND end_time <= " JR_NOW " + CAST(:delta AS bigint) * interval '1 microsecond'";

// One job's final runs beyond the :keep newest (newest by end time, ties by
// id in byte order) or that ended at now + :delta or before, at most :limit
// of them, the oldest first; a rule bound NULL matches nothing. Returns
// whether the job exists (read in the same snapshot) and how many runs went.
// The job's runs are found by job_run_job.
inline constexpr const char* prune_job_runs =
    "WITH doomed AS (SELECT private_id FROM (SELECT private_id, end_time,"
    "   row_number() OVER (ORDER BY end_time DESC, private_id COLLATE \"C\") AS newer"
    "   FROM job_run WHERE job_plugin_id = :plugin AND job_name = :name AND status <> 'running') r"
    " WHERE newer > CAST(:keep AS bigint)"
    "  OR end_time <= " JR_NOW
    " + CAST(:delta AS bigint) * interval '1 microsecond'"
    " ORDER BY newer DESC LIMIT CAST(:limit AS bigint)),"
    " deleted AS (DELETE FROM job_run d USING doomed WHERE d.private_id = doomed.private_id"
    "  AND d.status <> 'running' RETURNING 1)"
    " SELECT (SELECT count(*) FROM job WHERE plugin_id = :plugin AND name = :name), (SELECT count(*) FROM deleted)";

// The statements of the hot path (the claim, the run-change batch) run with
// the plan PostgreSQL made once for the prepared statement (plan_cache_mode
// force_generic_plan), planned with sequential scans, sorts, hash and merge
// joins disabled (connection.cpp sets the session's planner settings when it
// switches). The claim's LIMIT is a parameter, for which the planner guesses
// a tenth of the due jobs: the generic plan looks costly, so under the
// default mode the server plans the claim again at every call (0.3 ms of its
// 0.6 ms on a 10,000-job table, measured with pgbench). The run-change batch
// goes generic after five calls anyway (a JSON recordset has no estimate to
// refine). A generic plan lives as long as the connection or until the
// tables are analyzed again, so the statistics it was made from can be those
// of a table a thousandth of its present size: made by cost while the job
// table held one job, the claim read and sorted every job of the plugin (a
// sequential scan; 3.8 ms at 2,000 jobs, growing with them); made while the
// run table was empty, the batch's lookups scanned it (every change read the
// whole history). With those plan shapes disabled, each statement's plan is
// the one its shape asks for whatever the statistics: the ordered scan of
// job_due stopped at the limit, and primary-key probes in nested loops, one
// per change (tests/postgres: "keep key lookups planned on empty, analyzed
// tables").
// The session's planner settings while a statement of the hot path runs
// (connection.cpp sets them when it switches, and resets them for any other
// statement; the bench's pgbench ceiling runs with them too). No JIT: a
// disabled plan shape counts 10^10 in a plan's cost, which any plan that
// still needs a sort (the claim's result, the batch's lock order) carries,
// and far above jit_above_cost the server compiled each statement at every
// call (74 functions, 470 ms per claim).
inline constexpr std::array<std::pair<const char*, const char*>, 6> hot_path_settings = {{
    {"plan_cache_mode", "force_generic_plan"},
    {"enable_seqscan", "off"},
    {"enable_sort", "off"},
    {"enable_hashjoin", "off"},
    {"enable_mergejoin", "off"},
    {"jit", "off"},
}};

// Compared by text, not by address: a string literal can have one address
// per translation unit (no merging under AddressSanitizer, nor across a
// shared library and its caller). Called once per statement and connection.
inline bool generic_plan(const char* sql) {
  const std::string_view text(sql);
  return text == claim_runs || text == update_runs_batch;
}

#undef JR_EPOCH_US
#undef JR_NOW
#undef JR_RUN_COLUMNS
#undef JR_JOB_COLUMNS
#undef JR_CLOCK
#undef JR_NOTIFY_DUE
#undef JR_DUE
#undef JR_JOB_AFTER_RUN

}  // namespace jobrepo::postgres_backend::queries
