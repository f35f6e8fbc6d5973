// The SQL of the SQLite store, in one place (the bench's ceiling runs its
// claim and completion too). Placeholders are named (:p); times are integer
// microseconds since the Unix epoch, written by the store (SQLite's clock is
// the process's: store.cpp reads it inside the write lock).
#pragma once

namespace jobrepo::sqlite_backend::queries {

#define JR_RUN_COLUMNS                                                                   \
  "private_id, job_plugin_id, job_name, server_id, create_time, update_time, end_time, " \
  "completed_count, total_count, status, message, attempt, cancel_requested, work_end_time, payload"
#define JR_JOB_COLUMNS                                                                                        \
  "plugin_id, name, description, next_scheduled_run, schedule, paused, run_requested, consecutive_failures, " \
  "last_status, last_end_time, last_message, last_success_time, requested_payload"

// The claim: the due jobs. The NOT EXISTS probe reads the small partial index of running runs, so its
// cost does not grow with the run history; the served probe looks one key of job_server up per due
// job, whatever the server serves.
inline constexpr const char* claim_due =
    "SELECT name, consecutive_failures, run_requested, requested_payload FROM job"
    " WHERE plugin_id = :p AND next_scheduled_run <= :now AND paused = 0"
    " AND (:filtered = 0 OR name IN (SELECT value FROM json_each(:names)))"
    " AND (:served = 0 OR EXISTS (SELECT 1 FROM job_server s WHERE s.plugin_id = job.plugin_id"
    "   AND s.job_name = job.name AND s.server_id = :server))"
    " AND NOT EXISTS (SELECT 1 FROM job_run r WHERE r.job_plugin_id = job.plugin_id"
    "   AND r.job_name = job.name AND r.status = 'running')"
    " ORDER BY next_scheduled_run, name LIMIT :l";

// The claim: a running run for a due job.
inline constexpr const char* insert_run =
    "INSERT INTO job_run (private_id, job_plugin_id, job_name, server_id, create_time,"
    " update_time, completed_count, total_count, status, attempt, payload)"
    " VALUES (:id, :p, :n, :s, :c, :c, 0, 0, 'running', :a, :payload)";

// A run transition (the run only).
inline constexpr const char* update_run =
    "UPDATE job_run SET status = :s, update_time = :u, end_time = :e,"
    " completed_count = coalesce(:c, completed_count),"
    " total_count = coalesce(:t, total_count),"
    " message = coalesce(:m, message)"
    " WHERE private_id = :id AND job_plugin_id = :p AND status = 'running'"
    " RETURNING " JR_RUN_COLUMNS;

// What a run's change does to its job: a reschedule (at now instead when an operator asked for a run
// meanwhile) and, for a run that ended, the last outcome and the count of consecutive failures.
inline constexpr const char* job_after_run =
    "UPDATE job SET"
    " next_scheduled_run = CASE WHEN :r1 = 0 THEN next_scheduled_run"
    "   WHEN run_requested = 1 THEN :n1 ELSE :next END,"
    " run_requested = CASE WHEN :r1 = 1 THEN 0 ELSE run_requested END,"
    " consecutive_failures = CASE WHEN :f1 = 0 THEN consecutive_failures"
    "   WHEN :s1 = 'failed' THEN consecutive_failures + 1"
    "   WHEN :s1 = 'completed' THEN 0 ELSE consecutive_failures END,"
    " last_status = CASE WHEN :f1 = 1 THEN :s1 ELSE last_status END,"
    " last_end_time = CASE WHEN :f1 = 1 THEN :n1 ELSE last_end_time END,"
    " last_message = CASE WHEN :f1 = 1 THEN :m ELSE last_message END,"
    " last_success_time = CASE WHEN :s1 = 'completed' THEN :n1 ELSE last_success_time END"
    " WHERE plugin_id = :p AND name = :n";

// Transactions, prepared once per connection as every statement here (a
// writer begins and commits at every operation: parsing them each time cost
// the claim cycle several percent).
inline constexpr const char* begin_immediate = "BEGIN IMMEDIATE";
inline constexpr const char* commit = "COMMIT";
// One write of several combined in one transaction (store.cpp, write()).
inline constexpr const char* savepoint = "SAVEPOINT jobrepo_write";
inline constexpr const char* release_savepoint = "RELEASE jobrepo_write";
inline constexpr const char* rollback_to_savepoint = "ROLLBACK TO jobrepo_write";

// Changes with other connections' commits only (the commit watcher).
inline constexpr const char* data_version = "PRAGMA data_version";

inline constexpr const char* schema_version = "SELECT max(version) FROM jobrepo_schema_version";

inline constexpr const char* create_schema_table =
    "CREATE TABLE IF NOT EXISTS jobrepo_schema_version ("
    " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT";

inline constexpr const char* record_schema_version =
    "INSERT INTO jobrepo_schema_version (version, name, applied_at) VALUES (:v, :n, :t)";

inline constexpr const char* create_job =
    "INSERT INTO job (plugin_id, name, description, next_scheduled_run, schedule)"
    " VALUES (:p, :n, :d, :t, :s)";

// Registration: insert, or keep the due time and update the description and the schedule text.
inline constexpr const char* ensure_job =
    "INSERT INTO job (plugin_id, name, description, next_scheduled_run, schedule)"
    " VALUES (:p, :n, :d, :t, :s)"
    " ON CONFLICT (plugin_id, name) DO UPDATE SET description = excluded.description,"
    " schedule = excluded.schedule"
    " RETURNING " JR_JOB_COLUMNS;

inline constexpr const char* lookup_job = "SELECT " JR_JOB_COLUMNS
                                          " FROM job"
                                          " WHERE plugin_id = :p AND name = :n";

// LIMIT -1 is no limit.
inline constexpr const char* list_jobs = "SELECT " JR_JOB_COLUMNS
                                         " FROM job"
                                         " WHERE plugin_id = :p AND (:has_name = 0 OR name = :n)"
                                         " ORDER BY name LIMIT :l";

inline constexpr const char* reschedule_job =
    "UPDATE job SET next_scheduled_run = :t"
    " WHERE plugin_id = :p AND name = :n"
    " RETURNING " JR_JOB_COLUMNS;

inline constexpr const char* delete_job = "DELETE FROM job WHERE plugin_id = :p AND name = :n";

// LIMIT -1 is no limit.
inline constexpr const char* list_runs = "SELECT " JR_RUN_COLUMNS
                                         " FROM job_run WHERE job_plugin_id = :p AND (:has_job = 0 OR job_name = :j)"
                                         " AND (:has_status = 0 OR status = :s)"
                                         " ORDER BY create_time DESC, private_id LIMIT :l";

inline constexpr const char* prune_runs =
    "DELETE FROM job_run WHERE job_plugin_id = :p AND status <> 'running'"
    " AND end_time <= :c";

inline constexpr const char* job_exists = "SELECT 1 FROM job WHERE plugin_id = :p AND name = :n";

// One job's final runs beyond the :keep newest (newest by end time, ties by
// id) or that ended at :c or before, at most :l of them, the oldest first. A
// rule bound NULL matches nothing. The job's runs are found by job_run_job.
inline constexpr const char* prune_job_runs =
    "DELETE FROM job_run WHERE private_id IN ("
    " SELECT private_id FROM (SELECT private_id, end_time,"
    "   row_number() OVER (ORDER BY end_time DESC, private_id) AS newer"
    "   FROM job_run WHERE job_plugin_id = :p AND job_name = :n AND status <> 'running')"
    " WHERE newer > :keep OR end_time <= :c"
    " ORDER BY newer DESC LIMIT :l)";

// The claim: the operator's request, and its arguments, go to the run.
inline constexpr const char* clear_request =
    "UPDATE job SET run_requested = 0, requested_payload = NULL WHERE plugin_id = :p AND name = :n";

// Observed runs: a JSON array of {"id", "updated"} (observed_runs_json()).
inline constexpr const char* interrupt_stale_runs =
    "UPDATE job_run SET status = 'interrupted', update_time = :u, end_time = :e, message = :m"
    " WHERE job_plugin_id = :p AND status = 'running' AND update_time <= :c"
    " AND (:filtered = 0 OR server_id = :s)"
    " AND (:observed = 0 OR EXISTS (SELECT 1 FROM json_each(:runs) o"
    "   WHERE json_extract(o.value, '$.id') = job_run.private_id"
    "   AND json_extract(o.value, '$.updated') = job_run.update_time))"
    " RETURNING " JR_RUN_COLUMNS;

inline constexpr const char* job_interrupted =
    "UPDATE job SET last_status = 'interrupted', last_end_time = :t, last_message = :m"
    " WHERE plugin_id = :p AND name = :n";

inline constexpr const char* set_job_paused =
    "UPDATE job SET paused = :v WHERE plugin_id = :p AND name = :n"
    " RETURNING " JR_JOB_COLUMNS;

// Run-now: due now, or, while a run is running, due when it ends. A payload that waits for a claim is
// never replaced.
inline constexpr const char* request_run =
    "UPDATE job SET"
    " run_requested = EXISTS (SELECT 1 FROM job_run r WHERE r.job_plugin_id = :p AND r.job_name = :n"
    "   AND r.status = 'running'),"
    " next_scheduled_run = CASE WHEN EXISTS (SELECT 1 FROM job_run r WHERE r.job_plugin_id = :p"
    "   AND r.job_name = :n AND r.status = 'running') THEN next_scheduled_run ELSE :now END,"
    " requested_payload = coalesce(requested_payload, :payload)"
    " WHERE plugin_id = :p AND name = :n"
    " AND (:payload IS NULL OR requested_payload IS NULL OR requested_payload = :payload)"
    " RETURNING " JR_JOB_COLUMNS;

inline constexpr const char* request_cancel =
    "UPDATE job_run SET cancel_requested = 1"
    " WHERE private_id = :id AND job_plugin_id = :p AND status = 'running'";

inline constexpr const char* lookup_run =
    "SELECT " JR_RUN_COLUMNS " FROM job_run WHERE private_id = :id AND job_plugin_id = :p";

inline constexpr const char* server_holder =
    "SELECT instance, address, seen_time, expire_time FROM server WHERE plugin_id = :p AND server_id = :s";

inline constexpr const char* record_server =
    "INSERT INTO server (plugin_id, server_id, instance, address, seen_time, expire_time)"
    " VALUES (:p, :s, :i, :a, :t, :e)"
    " ON CONFLICT (plugin_id, server_id) DO UPDATE SET instance = excluded.instance,"
    " address = excluded.address, seen_time = excluded.seen_time, expire_time = excluded.expire_time";

inline constexpr const char* forget_served_jobs = "DELETE FROM job_server WHERE plugin_id = :p AND server_id = :s";

// A job that does not exist is left out.
inline constexpr const char* record_served_job =
    "INSERT INTO job_server (plugin_id, job_name, server_id, fingerprint, registered_time)"
    " SELECT plugin_id, name, :s, :f, :t FROM job WHERE plugin_id = :p AND name = :n"
    " ON CONFLICT DO NOTHING";

inline constexpr const char* remove_server =
    "DELETE FROM server WHERE plugin_id = :p AND server_id = :s AND (:i = '' OR instance = :i)";

inline constexpr const char* record_work_end =
    "UPDATE job_run SET work_end_time = coalesce(work_end_time, :w)"
    " WHERE private_id = :id AND job_plugin_id = :p RETURNING " JR_RUN_COLUMNS;

inline constexpr const char* list_servings =
    "SELECT js.job_name, js.server_id, js.fingerprint, js.registered_time, s.seen_time,"
    " s.expire_time > :now"
    " FROM job_server js JOIN server s ON s.plugin_id = js.plugin_id AND s.server_id = js.server_id"
    " WHERE js.plugin_id = :p AND (:has_name = 0 OR js.job_name = :n)"
    " ORDER BY js.job_name, js.server_id";

#undef JR_RUN_COLUMNS
#undef JR_JOB_COLUMNS

}  // namespace jobrepo::sqlite_backend::queries
