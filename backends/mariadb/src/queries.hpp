// The SQL of the MariaDB store, in one place (the bench runs its claim too).
// Placeholders are '?', bound in order; the comment of each statement lists
// them. Times leave the server as integer microseconds since the Unix epoch
// and come back the same way; stored, they are DATETIME(6) in UTC.
//
// "Now" is the server's clock: SYSDATE(6), the time at which it is read, in
// a statement that runs after the operation's row locks are held (plus the
// test clock offset, added by the store). So every time a transaction writes
// is later than the commit of each change it saw: a claim that waited for an
// interruption's commit never starts its run before that run ended. NOW(6)
// (the statement's start) only where a statement needs a constant to use an
// index and writes nothing with it (the claim's due test).
//
// MariaDB has no UPDATE ... RETURNING (MySQL no RETURNING at all): an
// operation locks its rows with SELECT ... FOR UPDATE, reads the clock,
// writes, and reads back what it returns, in one transaction. Locks are
// taken in one order everywhere: a job before its runs, jobs in (plugin_id,
// name) order.
#pragma once

namespace jobrepo::mariadb_backend::queries {

#define JR_US(column) "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', " column ")"
#define JR_FROM_US(value) "TIMESTAMPADD(MICROSECOND, " value ", '1970-01-01 00:00:00')"
#define JR_RUN_COLUMNS(p)                                                                                   \
  p "private_id, " p "job_plugin_id, " p "job_name, " p "server_id, " JR_US(p "create_time") ", " JR_US(    \
      p "update_time") ", " JR_US(p "end_time") ", " p "completed_count, " p "total_count, " p "status, " p \
                                                "message, " p "attempt, " p                                 \
                                                "cancel_requested, " JR_US(p "work_end_time") ", " p "payload"
#define JR_JOB_COLUMNS \
  "plugin_id, name, description, " JR_US("next_scheduled_run") ", schedule, paused, run_requested,"                \
  " consecutive_failures, last_status, " JR_US("last_end_time") ", last_message, " JR_US("last_success_time") ", " \
  "requested_payload"
// A JSON array of strings as a table of (ord, value).
#define JR_JSON_STRINGS(param)            \
  "JSON_TABLE(" param                     \
  ", '$[*]' COLUMNS (ord FOR ORDINALITY," \
  " value VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin PATH '$' ERROR ON ERROR))"
// The same for run ids, in the column's character set: compared with a
// utf8mb4 value, private_id's index (ascii_bin) could not be used, and a
// lookup by id read every run.
#define JR_JSON_IDS(param)                \
  "JSON_TABLE(" param                     \
  ", '$[*]' COLUMNS (ord FOR ORDINALITY," \
  " value VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin PATH '$' ERROR ON ERROR))"

// The server's clock, microseconds since the epoch.
inline constexpr const char* now = "SELECT " JR_US("SYSDATE(6)");

inline constexpr const char* schema_version = "SELECT MAX(version) FROM jobrepo_schema_version";
inline constexpr const char* has_schema_table =
    "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE()"
    " AND table_name = 'jobrepo_schema_version'";
inline constexpr const char* create_schema_table =
    "CREATE TABLE IF NOT EXISTS jobrepo_schema_version (version INT PRIMARY KEY, name VARCHAR(255) NOT NULL,"
    " applied_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE = InnoDB";
inline constexpr const char* record_schema_version = "INSERT INTO jobrepo_schema_version (version, name) VALUES (?, ?)";
// migrate() holds this lock (?: seconds to wait), so that servers starting
// at once do not migrate twice; DDL commits at once in MariaDB, so no
// transaction can hold the migration.
inline constexpr const char* lock_migration = "SELECT GET_LOCK('jobrepo_migrate', ?)";
inline constexpr const char* unlock_migration = "SELECT RELEASE_LOCK('jobrepo_migrate')";

// plugin, name, description, schedule, next (us)
inline constexpr const char* create_job =
    "INSERT INTO job (plugin_id, name, description, schedule, next_scheduled_run)"
    " VALUES (?, ?, ?, ?, " JR_FROM_US("?") ")";

// Registration: insert, or keep the due time and update the description
// and the schedule text. plugin, name, description, schedule, next (us)
inline constexpr const char* ensure_job =
    "INSERT INTO job (plugin_id, name, description, schedule, next_scheduled_run)"
    " VALUES (?, ?, ?, ?, " JR_FROM_US("?") ")"
    " ON DUPLICATE KEY UPDATE description = VALUES(description), schedule = VALUES(schedule)";

// plugin, name
inline constexpr const char* lookup_job = "SELECT " JR_JOB_COLUMNS " FROM job WHERE plugin_id = ? AND name = ?";
inline constexpr const char* lock_job = "SELECT 1 FROM job WHERE plugin_id = ? AND name = ? FOR UPDATE";

// plugin, filtered (0/1), name, limit
inline constexpr const char* list_jobs = "SELECT " JR_JOB_COLUMNS
                                         " FROM job WHERE plugin_id = ? AND (? = 0 OR name = ?)"
                                         " ORDER BY name LIMIT ?";

// next (us), plugin, name
inline constexpr const char* reschedule_job =
    "UPDATE job SET next_scheduled_run = " JR_FROM_US("?") " WHERE plugin_id = ? AND name = ?";

// plugin, name
inline constexpr const char* delete_job = "DELETE FROM job WHERE plugin_id = ? AND name = ?";

// paused (0/1), plugin, name
inline constexpr const char* set_job_paused = "UPDATE job SET paused = ? WHERE plugin_id = ? AND name = ?";

// Whether a job has a running run (read after its row is locked: a claim
// that made one committed before). plugin, name
inline constexpr const char* job_running =
    "SELECT COUNT(*) FROM job_run WHERE running_plugin_id = ? AND running_job_name = ?";

// Run-now: due now, or, while a run is running, due when it ends. A payload
// that waits for a claim is never replaced (no row matched: core refuses
// the request). running (0/1), now (us), running (0/1), payload, plugin,
// name, payload, payload
inline constexpr const char* request_run =
    "UPDATE job SET next_scheduled_run = IF(? = 1, next_scheduled_run, " JR_FROM_US("?") "),"
    " run_requested = ?, requested_payload = COALESCE(requested_payload, ?)"
    " WHERE plugin_id = ? AND name = ? AND (? IS NULL OR requested_payload IS NULL OR requested_payload = ?)";

// The claim, first statement: lock the due jobs that have no running run,
// skipping rows other claims hold, earliest due first, ties by name. Due
// means next_scheduled_run <= NOW(6) + offset: a constant of the statement,
// so the scan is a range of the index job_due. The probe for a running run
// reads job_run_one_running by its whole key. plugin, offset (us), filtered
// (0/1), names (JSON array), served (0/1), server, limit
inline constexpr const char* claim_lock =
    "SELECT j.name, j.consecutive_failures, j.run_requested, j.requested_payload FROM job j"
    " WHERE j.plugin_id = ? AND j.next_scheduled_run <= TIMESTAMPADD(MICROSECOND, ?, NOW(6)) AND NOT j.paused"
    " AND NOT EXISTS (SELECT 1 FROM job_run r WHERE r.running_plugin_id = j.plugin_id"
    "  AND r.running_job_name = j.name)"
    " AND (? = 0 OR j.name IN (SELECT n.value FROM " JR_JSON_STRINGS("?") " n))"
    " AND (? = 0 OR EXISTS (SELECT 1 FROM job_server s WHERE s.plugin_id = j.plugin_id AND s.job_name = j.name"
    "  AND s.server_id = ?))"
    " ORDER BY j.next_scheduled_run, j.name LIMIT ? FOR UPDATE SKIP LOCKED";

// The claim, then: a running run for each locked job, in one statement.
// Its NOT EXISTS reads job_run again in a statement that began after the
// locks were held, so it sees every run a claim that held one of these jobs
// committed (the first statement's probe may have read before that commit):
// such a job is left out, never an error. The runs arrive as a JSON array
// of {"id", "name", "attempt"}. server, now (us), now (us), runs (JSON),
// plugin
inline constexpr const char* claim_insert =
    "INSERT INTO job_run (private_id, job_plugin_id, job_name, server_id, create_time, update_time, attempt, payload)"
    " SELECT i.id, j.plugin_id, j.name, ?, " JR_FROM_US("?") ", " JR_FROM_US("?") ", i.attempt, j.requested_payload"
    " FROM JSON_TABLE(?, '$[*]' COLUMNS ("
    "  id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin PATH '$.id' ERROR ON ERROR,"
    "  name VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin PATH '$.name' ERROR ON ERROR,"
    "  attempt BIGINT PATH '$.attempt' ERROR ON ERROR)) i"
    " JOIN job j ON j.plugin_id = ? AND j.name = i.name"
    " WHERE NOT EXISTS (SELECT 1 FROM job_run r WHERE r.running_plugin_id = j.plugin_id"
    "  AND r.running_job_name = j.name)";

// The claim's runs, in claim order (when one was left out). ids (JSON)
inline constexpr const char* runs_by_id = "SELECT " JR_RUN_COLUMNS("r.") " FROM " JR_JSON_IDS("?") " i"
                                          " STRAIGHT_JOIN job_run r FORCE INDEX (PRIMARY) ON r.private_id = i.value"
                                          " ORDER BY i.ord";

// A claimed job's request is used up. plugin, name
inline constexpr const char* clear_request =
    "UPDATE job SET run_requested = FALSE, requested_payload = NULL WHERE plugin_id = ? AND name = ?";

// The jobs of runs, read without a lock (they are locked next): each run's
// id and job name. ids (a JSON array), plugin
// Each statement that looks rows up by a JSON array of keys reads the array
// first (STRAIGHT_JOIN) and finds each row by its primary key (FORCE INDEX):
// with a constant plugin_id the optimizer read every row of the plugin
// through another index instead, and with FOR UPDATE locked them all.
inline constexpr const char* jobs_of_runs =
    "SELECT r.private_id, r.job_name FROM " JR_JSON_IDS("?") " i"
    " STRAIGHT_JOIN job_run r FORCE INDEX (PRIMARY) ON r.private_id = i.value WHERE r.job_plugin_id = ?";

// The runs, locked in the order of the ids given (sorted: id order), after
// their jobs, each row with the clock read once its lock is held (the last
// row's: after every lock). ids (a JSON array), plugin
inline constexpr const char* lock_runs =
    "SELECT " JR_RUN_COLUMNS("r.") ", " JR_US("SYSDATE(6)") " FROM " JR_JSON_IDS("?") " i"
    " STRAIGHT_JOIN job_run r FORCE INDEX (PRIMARY) ON r.private_id = i.value WHERE r.job_plugin_id = ?"
    " ORDER BY i.ord FOR UPDATE";

// status, now (us), final (0/1), now (us), completed, total, final (0/1),
// message, id
inline constexpr const char* update_run =
    "UPDATE job_run SET status = ?, update_time = " JR_FROM_US("?") ","
    " end_time = IF(? = 1, " JR_FROM_US("?") ", NULL),"
    " completed_count = COALESCE(?, completed_count), total_count = COALESCE(?, total_count),"
    " message = IF(? = 1, COALESCE(?, message), message)"
    " WHERE private_id = ?";

// What a run's change does to its job: a reschedule (at now instead when an
// operator asked for a run meanwhile), and for a run that ended its last
// outcome and the count of consecutive failures. MariaDB assigns left to
// right, each reading the values assigned before it: next_scheduled_run
// reads run_requested before it is cleared.
// reschedule (0/1), now (us), next (us), reschedule (0/1), status, status,
// status, now (us), status, message, status, now (us), plugin, name
inline constexpr const char* job_after_run =
    "UPDATE job SET"
    " next_scheduled_run = CASE WHEN ? = 0 THEN next_scheduled_run WHEN run_requested THEN " JR_FROM_US("?")
    " ELSE " JR_FROM_US("?") " END,"
    " run_requested = IF(? = 1, FALSE, run_requested),"
    " consecutive_failures = CASE ? WHEN 'failed' THEN consecutive_failures + 1"
    "  WHEN 'completed' THEN 0 ELSE consecutive_failures END,"
    " last_status = IF(? <> 'running', ?, last_status),"
    " last_end_time = IF(? <> 'running', " JR_FROM_US("?") ", last_end_time),"
    " last_message = IF(? <> 'running', ?, last_message),"
    " last_success_time = IF(? = 'completed', " JR_FROM_US("?") ", last_success_time)"
    " WHERE plugin_id = ? AND name = ?";

// Stale runs, first the jobs to lock (read without a lock), then the runs
// locked after their jobs. The cut (now - threshold) is a constant: the
// clock is read once, before, and is the interrupted runs' end_time too, so
// a run is interrupted exactly when its update_time <= end_time - threshold
// (a heartbeat that commits after the clock was read is later than the cut).
// plugin, cut (us), filtered (0/1), server, observed (0/1), runs (JSON
// [{"id", "updated"}])
#define JR_STALE_RUNS \
  " FROM job_run r WHERE r.running_plugin_id = ?"                                                                  \
  " AND r.update_time <= " JR_FROM_US("?")                                                                         \
  " AND (? = 0 OR r.server_id = ?)"                                                                                \
  " AND (? = 0 OR (r.private_id, " JR_US("r.update_time") ") IN (SELECT o.id, o.updated FROM JSON_TABLE(?, '$[*]'" \
  "  COLUMNS (id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin PATH '$.id' ERROR ON ERROR,"          \
  "  updated BIGINT PATH '$.updated' ERROR ON ERROR)) o))"
inline constexpr const char* stale_jobs = "SELECT DISTINCT r.job_name" JR_STALE_RUNS " ORDER BY r.job_name";
// The same, locked, among the jobs locked before: ..., names (JSON)
inline constexpr const char* lock_stale_runs = "SELECT r.private_id, r.job_name" JR_STALE_RUNS
                                               " AND r.job_name IN (SELECT n.value FROM " JR_JSON_STRINGS("?") " n)"
                                               " ORDER BY r.private_id FOR UPDATE";
// Jobs locked in name order (one plugin). plugin, names (JSON)
inline constexpr const char* lock_jobs =
    "SELECT 1 FROM " JR_JSON_STRINGS("?") " n"
    " STRAIGHT_JOIN job j FORCE INDEX (PRIMARY) ON j.plugin_id = ? AND j.name = n.value ORDER BY n.ord FOR UPDATE";
// now (us), now (us), message, id
inline constexpr const char* interrupt_run =
    "UPDATE job_run SET status = 'interrupted', update_time = " JR_FROM_US("?") ", end_time = " JR_FROM_US("?") ","
    " message = ? WHERE private_id = ? AND status = 'running'";
// now (us), message, plugin, name
inline constexpr const char* job_interrupted =
    "UPDATE job SET last_status = 'interrupted', last_end_time = " JR_FROM_US("?") ", last_message = ?"
    " WHERE plugin_id = ? AND name = ?";

// id, plugin
inline constexpr const char* request_cancel =
    "UPDATE job_run SET cancel_requested = TRUE WHERE private_id = ? AND job_plugin_id = ? AND status = 'running'";

// A server's record (its row locked, or the gap where it goes): the holder.
// plugin, server
inline constexpr const char* lock_server_holder = "SELECT instance, address, " JR_US("seen_time") ", " JR_US(
    "expire_time") " FROM server WHERE plugin_id = ? AND server_id = ? FOR UPDATE";
// plugin, server, instance, address, seen (us), expire (us)
inline constexpr const char* insert_server =
    "INSERT INTO server (plugin_id, server_id, instance, address, seen_time, expire_time)"
    " VALUES (?, ?, ?, ?, " JR_FROM_US("?") ", " JR_FROM_US("?") ")";
// instance, address, seen (us), expire (us), plugin, server
inline constexpr const char* update_server = "UPDATE server SET instance = ?, address = ?, seen_time = " JR_FROM_US(
    "?") ", expire_time = " JR_FROM_US("?") " WHERE plugin_id = ? AND server_id = ?";

// plugin, server
inline constexpr const char* forget_served_jobs = "DELETE FROM job_server WHERE plugin_id = ? AND server_id = ?";

// The jobs arrive as one JSON array of {"name", "fingerprint"}; jobs that
// do not exist are left out, a name given twice counts once. Registered at
// the server record's seen_time. server, seen (us), jobs (JSON), plugin
inline constexpr const char* record_served_jobs =
    "INSERT INTO job_server (plugin_id, job_name, server_id, fingerprint, registered_time)"
    " SELECT j.plugin_id, j.name, ?, i.fingerprint, " JR_FROM_US("?") " FROM JSON_TABLE(?, '$[*]' COLUMNS ("
    "  name VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin PATH '$.name' ERROR ON ERROR,"
    "  fingerprint VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin PATH '$.fingerprint' ERROR ON ERROR"
    " )) i JOIN job j ON j.plugin_id = ? AND j.name = i.name"
    " ON DUPLICATE KEY UPDATE job_server.registered_time = job_server.registered_time";

// plugin, server, instance, instance
inline constexpr const char* remove_server =
    "DELETE FROM server WHERE plugin_id = ? AND server_id = ? AND (? = '' OR instance = ?)";

// ended (us), id, plugin
inline constexpr const char* record_work_end =
    "UPDATE job_run SET work_end_time = COALESCE(work_end_time, " JR_FROM_US("?") ")"
    " WHERE private_id = ? AND job_plugin_id = ?";

// offset (us), plugin, filtered (0/1), name
inline constexpr const char* list_servings =
    "SELECT js.job_name, js.server_id, js.fingerprint, " JR_US("js.registered_time") ", " JR_US("s.seen_time") ","
    " s.expire_time > TIMESTAMPADD(MICROSECOND, ?, SYSDATE(6))"
    " FROM job_server js JOIN server s ON s.plugin_id = js.plugin_id AND s.server_id = js.server_id"
    " WHERE js.plugin_id = ? AND (? = 0 OR js.job_name = ?)"
    " ORDER BY js.job_name, js.server_id";

// id, plugin
inline constexpr const char* lookup_run =
    "SELECT " JR_RUN_COLUMNS("") " FROM job_run WHERE private_id = ? AND job_plugin_id = ?";

// plugin, has_job (0/1), job, has_status (0/1), status, limit
inline constexpr const char* list_runs =
    "SELECT " JR_RUN_COLUMNS("") " FROM job_run WHERE job_plugin_id = ?"
    " AND (? = 0 OR job_name = ?) AND (? = 0 OR status = ?)"
    " ORDER BY create_time DESC, private_id LIMIT ?";

// plugin, cutoff (us)
inline constexpr const char* prune_runs =
    "DELETE FROM job_run WHERE job_plugin_id = ? AND status <> 'running' AND end_time <= " JR_FROM_US("?");

// plugin, name
inline constexpr const char* job_exists = "SELECT COUNT(*) FROM job WHERE plugin_id = ? AND name = ?";

// The runs prune_job_runs deletes, read without a lock: one job's final runs
// beyond the keep newest (newest by end time, ties by id) or that ended at
// the cutoff or before, at most limit of them, the oldest first. A rule
// bound NULL matches nothing. The job's runs are found by job_run_job.
// plugin, name, keep, cutoff (us), limit
inline constexpr const char* runs_to_prune =
    "SELECT r.private_id FROM (SELECT private_id, end_time,"
    "  ROW_NUMBER() OVER (ORDER BY end_time DESC, private_id) AS newer"
    "  FROM job_run WHERE job_plugin_id = ? AND job_name = ? AND status <> 'running') r"
    " WHERE r.newer > ? OR r.end_time <= " JR_FROM_US("?") " ORDER BY r.newer DESC LIMIT ?";
// Then those runs, each by its primary key, locked in the order of the ids
// given (sorted: id order), among the job's final runs. ids (a JSON array),
// plugin, name
inline constexpr const char* delete_pruned_runs =
    "DELETE r FROM " JR_JSON_IDS("?") " i"
    " STRAIGHT_JOIN job_run r FORCE INDEX (PRIMARY) ON r.private_id = i.value"
    " WHERE r.job_plugin_id = ? AND r.job_name = ? AND r.status <> 'running'";

// The earliest due time of a plugin's claimable jobs (the wake-up poll).
// plugin
inline constexpr const char* next_due =
    "SELECT " JR_US("MIN(j.next_scheduled_run)") ", COUNT(*) FROM job j WHERE j.plugin_id = ? AND NOT j.paused"
    " AND NOT EXISTS (SELECT 1 FROM job_run r WHERE r.running_plugin_id = j.plugin_id"
    "  AND r.running_job_name = j.name)";

#undef JR_US
#undef JR_FROM_US
#undef JR_RUN_COLUMNS
#undef JR_JOB_COLUMNS
#undef JR_JSON_STRINGS
#undef JR_JSON_IDS
#undef JR_STALE_RUNS

}  // namespace jobrepo::mariadb_backend::queries
