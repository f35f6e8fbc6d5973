// jobrepo: Store, the seam between the Repository and a database.
//
// A Store is the only thing a backend implements. It speaks in domain
// operations, each of them one atomic transaction on the database, and leaves
// the rules (argument checks, which transitions are allowed, which error wins)
// to the Repository in core. See docs/backends.md for the full contract.
//
// Thread-safety: a Store is shared by all threads of a process; every method
// may be called concurrently. The store owns its connections.
//
// Time: every timestamp an operation writes is the store's clock, read once
// inside the operation (all timestamps written by one call are equal), plus
// clock_offset(), in whole microseconds (a Timestamp holds nanoseconds:
// truncate). "now" below means exactly that value.
//
// Schema: every method but migrate() throws schema_mismatch while the
// database's schema version is not the one the store ships (now() too);
// check_schema_version() and apply_migrations() (backend.hpp) word it.
//
// Errors: methods throw jobrepo::Error. A backend maps its driver's errors in
// one place: unique violation -> not_unique, check violation -> check_constraint,
// lock/serialization conflicts that outlast its retries -> busy, connection
// failures -> unavailable, a missing or newer schema -> schema_mismatch,
// anything else -> internal with the native code kept. A message starts with
// the name of the operation and ": " ("claim_runs: ..."); the Repository puts
// the name of its own method, the one its caller called, in that place.
#pragma once

#include <jobrepo/types.hpp>
#include <jobrepo/version.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace jobrepo {

// Arguments of Store::create_job.
// When a job is due next: at `at` when set, else at the store's now + `in`.
struct Due {
  std::chrono::microseconds in{0};
  std::optional<Timestamp> at{};
};

// Arguments of Store::create_job and ensure_job.
struct NewJob {
  std::string plugin_id{};
  std::string name{};
  std::string description{};
  Due due{};               // next_scheduled_run of a new job
  std::string schedule{};  // Job::schedule
};

// Arguments of Store::list_jobs.
struct JobQuery {
  std::string plugin_id{};
  std::optional<std::string> name{};  // exact name filter
  std::int64_t limit = -1;            // negative: no limit
};

// Arguments of Store::claim_runs.
struct ClaimRequest {
  std::string plugin_id{};
  std::string server_id{};
  std::int64_t limit = 1;  // > 0, or negative for no limit
  // When set, only jobs with these names may be claimed (an empty list claims nothing).
  std::optional<std::vector<std::string>> only_jobs{};
  // When set, only jobs that server_id serves in plugin_id may be claimed:
  // the set of its last record_server with jobs, as list_servings shows it,
  // live or not. A server without such a set (never recorded jobs, or
  // removed) claims nothing. With only_jobs, a job must pass both.
  bool served_only = false;
};

// One change to a running run, decided by core. The store applies it only if
// the run exists in `plugin_id` and its status is `running` at that moment.
struct RunTransition {
  std::string plugin_id{};
  std::string run_id{};
  Status to = Status::running;  // running: a progress report / heartbeat
  // New counts; empty keeps the stored ones.
  std::optional<std::int64_t> completed_count{};
  std::optional<std::int64_t> total_count{};
  // When set, the run's job becomes due then, in the same transaction (at
  // now instead when the job's run_requested is set; that clears it).
  std::optional<Due> reschedule{};
  // Run::message for a final run (message_text(), text.hpp); empty: none.
  std::optional<std::string> message{};
};

// The most runs one call of prune_job_runs deletes (Repository::
// prune_job_runs; jobctl prune --job calls it again until it is done).
inline constexpr std::int64_t max_pruned_runs = 10000;

// Arguments of Store::prune_job_runs: which final runs of one job to delete.
// A final run is deleted when either rule says so: it is not among the
// keep_last newest final runs of its job (newest by end_time, ties by
// private_id ascending, byte order), or it ended at least older_than ago
// (end_time <= now - older_than). With neither rule set, nothing is deleted.
struct JobRunsPrune {
  std::string job_name{};
  std::optional<std::int64_t> keep_last{};                // >= 1 (core checks)
  std::optional<std::chrono::microseconds> older_than{};  // 0 to max_offset (core checks)
  // At most this many runs are deleted per call (1 to max_pruned_runs, core
  // checks), the oldest first (the reverse of the keep order), so that one
  // call never holds its locks long; the next call deletes the rest.
  std::int64_t limit = max_pruned_runs;
};

// Arguments of Store::list_runs.
struct RunQuery {
  std::string plugin_id{};
  std::optional<std::string> job_name{};
  std::optional<Status> status{};
  std::int64_t limit = -1;  // negative: no limit
};

// A running run as an observer last read it.
struct ObservedRun {
  std::string run_id{};
  Timestamp update_time{};  // its update_time then
  friend bool operator==(const ObservedRun&, const ObservedRun&) = default;
};

// Arguments of Store::interrupt_stale_runs.
struct StaleRunQuery {
  std::string plugin_id{};
  std::chrono::microseconds threshold{0};  // >= 0
  std::optional<std::string> server_id{};  // only that server's runs
  std::optional<std::string> message{};    // Run::message of the interrupted runs
  // When set, only these runs, each only while its update_time is still the
  // one given: a heartbeat since the observer read it keeps the run running.
  std::optional<std::vector<ObservedRun>> runs{};
};

// One job a server serves, with a fingerprint of its definition there.
struct ServedJob {
  std::string name{};
  std::string fingerprint{};  // 1-64 characters, compared as is
};

// Arguments of Store::record_server: a server's proof of life and, when
// `jobs` is set, the whole set of jobs it serves from now on.
struct ServerRecord {
  std::string plugin_id{};
  std::string server_id{};
  // The instance of the server that records: a token no other process or
  // Scheduler uses (1-255 characters, compared as is). A server id is a
  // lease: one instance holds it at a time.
  std::string instance{};
  // Where that instance runs, for people ("web-1 pid 4242", 0-255 characters).
  std::string address{};
  // The server counts as live until now + ttl unless it records again.
  std::chrono::microseconds ttl{0};
  std::optional<std::vector<ServedJob>> jobs{};
  // Record even when another instance holds the server id (its holder is
  // known to be gone: it is taken over).
  bool take_over = false;
};

// Who holds a server id: Store::record_server's answer.
struct ServerLease {
  // The record was written: the caller's instance holds the server id.
  bool held = false;
  // The holder's, as stored (the caller's when held); empty when no record
  // of the server id exists.
  std::string instance{}, address{};
  Timestamp seen_time{};    // the holder's last record
  Timestamp expire_time{};  // when its lease runs out unless it records again
  friend bool operator==(const ServerLease&, const ServerLease&) = default;
};

// What the store knows of one server serving one job (Store::list_servings).
struct Serving {
  std::string job_name{};
  std::string server_id{};
  std::string fingerprint{};
  Timestamp registered_time{};  // when the server last recorded this job
  Timestamp seen_time{};        // the server's last record
  bool live = false;            // the server's ttl has not run out
  friend bool operator==(const Serving&, const Serving&) = default;
};

// A subscription of Store::subscribe_due. Destroying it ends the calls: once
// the destructor returns, its callback is not running and never runs again.
class DueSubscription {
 public:
  DueSubscription() = default;
  DueSubscription(const DueSubscription&) = delete;
  DueSubscription& operator=(const DueSubscription&) = delete;
  virtual ~DueSubscription() = default;
};

// The Store contract these headers describe (version.hpp). A store says
// which one it was written for by overriding Store::contract():
//
//   jobrepo::StoreContract8 contract() const override { return {}; }
//
// A store written for an earlier contract does not compile against these
// headers (Store::contract() is pure; its old override's type is another);
// docs/backends.md, "Changes for backend authors", says what changed since.
struct StoreContract8 {};
static_assert(JOBREPO_STORE_CONTRACT == 8, "version.hpp and store.hpp disagree on the Store contract");
// The contract before: kept so that a store that still says it was written
// for it gets a compile error that names StoreContract8 (a conflicting
// return type), not an unknown name.
struct StoreContract7 {};

class Store {
 public:
  Store() = default;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;
  virtual ~Store() = default;

  // The contract this store was written for (see StoreContract8 above).
  virtual StoreContract8 contract() const = 0;

  // Creates or upgrades the schema to the version this jobrepo ships.
  // Idempotent; safe when several processes call it at once.
  // Throws schema_mismatch when the database was migrated by a newer jobrepo.
  virtual void migrate() = 0;

  // The store's clock: what "now" would be for an operation starting now.
  virtual Timestamp now() = 0;

  // Inserts the job, due at job.due. Throws not_unique when (plugin_id, name)
  // exists.
  virtual Job create_job(const NewJob& job) = 0;
  // Inserts the job when (plugin_id, name) does not exist (due at job.due);
  // otherwise sets only its description and schedule text and keeps its due
  // time. Returns the job as stored. Concurrent calls never fail with
  // not_unique.
  virtual Job ensure_job(const NewJob& job) = 0;
  virtual std::optional<Job> lookup_job(const std::string& plugin_id, const std::string& name) = 0;
  // Jobs of query.plugin_id ordered by name.
  virtual std::vector<Job> list_jobs(const JobQuery& query) = 0;
  // Sets next_scheduled_run to `due`; empty when the job does not exist.
  virtual std::optional<Job> reschedule_job(const std::string& plugin_id, const std::string& name, const Due& due) = 0;

  // Deletes the job, all its runs and who serves it (list_servings); false
  // when it does not exist. Jobs of the same name in other plugins, and
  // their runs, are not touched.
  virtual bool delete_job(const std::string& plugin_id, const std::string& name) = 0;

  // Sets Job::paused; empty when the job does not exist. Resuming wakes
  // subscribers (subscribe_due).
  virtual std::optional<Job> set_job_paused(const std::string& plugin_id, const std::string& name, bool paused) = 0;

  // An operator's "run it now", with the run's arguments (`payload`: JSON
  // text that core checked, or none): when the job has a running run, sets
  // its run_requested (the run's end makes it due at once); otherwise sets
  // next_scheduled_run to now and wakes subscribers. A payload becomes the
  // job's requested_payload when it has none; one it has is kept: another
  // request with no payload or with the same one (byte for byte) changes
  // nothing else about it, and a request with a different payload writes
  // nothing at all and returns the job as it is (core refuses the request
  // with invalid_job_run_state). Returns the job as stored after; empty
  // when it does not exist.
  virtual std::optional<Job> request_run(const std::string& plugin_id, const std::string& name,
                                         const std::optional<std::string>& payload) = 0;

  // Sets cancel_requested of the run when it is running. Returns the run as
  // stored after (a final one unchanged), or empty when it does not exist
  // in plugin_id.
  virtual std::optional<Run> request_cancel(const std::string& plugin_id, const std::string& run_id) = 0;

  // A server id is a lease held by one instance. When no record of the
  // server id exists, or its record has no instance, or record.instance
  // holds it, or record.take_over: records the server's proof of life
  // (instance and address; seen now, live until now + ttl) and, when
  // record.jobs is set, replaces the set of jobs it serves with it
  // (registered now, with their fingerprints; jobs that do not exist are left
  // out), and returns the lease held. Otherwise writes nothing and returns
  // the lease of the instance that holds it (held false). Concurrent first
  // records of one server id by two instances: one of them holds it.
  virtual ServerLease record_server(const ServerRecord& record) = 0;
  // Forgets the server and the jobs it serves (a clean stop), when
  // `instance` holds it or is empty (whoever holds it); otherwise nothing.
  virtual void remove_server(const std::string& plugin_id, const std::string& server_id,
                             const std::string& instance) = 0;
  // What servers serve the jobs of plugin_id (of one job, when given), by
  // job name then server id; `live` as of now.
  virtual std::vector<Serving> list_servings(const std::string& plugin_id, const std::optional<std::string>& name) = 0;

  // The claim. Atomically inserts a running run owned by request.server_id for
  // each job of request.plugin_id that is due (next_scheduled_run <= now),
  // not paused, has no running run and passes the request's filters
  // (only_jobs, served_only), earliest due first, ties by name, at most
  // request.limit; returns the new runs in that order. Each run's
  // attempt is 1 + its job's consecutive_failures, its payload its job's
  // requested_payload; the job's run_requested and requested_payload are
  // cleared. Concurrent claims never
  // get the same job and never fail because another claim won a race.
  // Run ids come from generate_run_id() (backend.hpp) or are equally strong.
  virtual std::vector<Run> claim_runs(const ClaimRequest& request) = 0;

  // Applies each transition in one transaction, in order. Element i of the
  // result is the run after transition i, or empty when that run does not
  // exist in its plugin or was not running (nothing is written for it).
  // A final run gets end_time = update_time = now; a running one update_time = now.
  // A run that becomes final updates its job in the same transaction:
  // last_status, last_end_time (now), last_message (the run's message);
  // completed: consecutive_failures = 0 and last_success_time = now;
  // failed: consecutive_failures + 1; interrupted: unchanged.
  virtual std::vector<std::optional<Run>> transition_runs(std::span<const RunTransition> changes) = 0;

  // Every running run of query.plugin_id (and query.server_id, when set;
  // among query.runs with the update_time given there, when set) with
  // update_time <= now - threshold becomes interrupted with end_time = now.
  // Returns those runs, in no promised order. Jobs are not rescheduled; each
  // job's last_* is set as by transition_runs, with query.message.
  virtual std::vector<Run> interrupt_stale_runs(const StaleRunQuery& query) = 0;

  // Sets the run's work_end_time to `ended` when it has none, whatever the
  // run's status (its owner's work outlived the run's end elsewhere).
  // Returns the run as stored after, or empty when it does not exist in
  // plugin_id.
  virtual std::optional<Run> record_work_end(const std::string& plugin_id, const std::string& run_id,
                                             Timestamp ended) = 0;

  virtual std::optional<Run> lookup_run(const std::string& plugin_id, const std::string& run_id) = 0;

  // Runs of query.plugin_id (of one job, in one status, when given), newest
  // first: create_time descending, then private_id ascending (runs of one
  // claim share a create_time); at most query.limit of them.
  virtual std::vector<Run> list_runs(const RunQuery& query) = 0;

  // Deletes the final runs of plugin_id (no other plugin's) whose end_time
  // <= now - older_than (>= 0); returns how many. Running runs are never
  // deleted.
  virtual std::int64_t prune_runs(const std::string& plugin_id, std::chrono::microseconds older_than) = 0;

  // Deletes final runs of the job (plugin_id, prune.job_name) as
  // JobRunsPrune says, at most prune.limit of them, the oldest first, in
  // one transaction; returns how many, or empty when the job does not exist
  // in plugin_id (nothing is deleted then). Running runs, other jobs' runs
  // and other plugins' runs are never deleted. now is the store's clock, as
  // for prune_runs. Concurrent calls for one job are harmless: a run that
  // another call deleted first is simply not counted.
  virtual std::optional<std::int64_t> prune_job_runs(const std::string& plugin_id, const JobRunsPrune& prune) = 0;

  // Push wake-ups, optional. Calls on_due, on a thread of the store, soon
  // after any process commits a change that may make jobs of plugin_id
  // claimable sooner than before: create_job, ensure_job (also of an
  // existing job), reschedule_job, set_job_paused (resuming), request_run,
  // and interrupt_stale_runs when it interrupted runs. Also calls it when such
  // news may have been lost (e.g. after a reconnect); spurious calls are
  // allowed, so the callee re-reads the store. on_due must be quick and must
  // not subscribe or unsubscribe. Returns nullptr when the store cannot push
  // (the default): callers poll. The store outlives its subscriptions.
  virtual std::unique_ptr<DueSubscription> subscribe_due(const std::string& plugin_id, std::function<void()> on_due) {
    (void)plugin_id;
    (void)on_due;
    return nullptr;
  }

  // Test clock hook: from now on the store's clock reads (database time + offset).
  // Lets tests move time without sleeping. Backends read it through clock_offset().
  virtual void set_clock_offset(std::chrono::microseconds offset) { clock_offset_us_.store(offset.count()); }
  std::chrono::microseconds clock_offset() const {
    return std::chrono::microseconds(clock_offset_us_.load(std::memory_order_relaxed));
  }

  // Test clock hook for a store whose clock is this process's own (SQLite,
  // whose database time is the calling process's clock; the in-memory
  // template): from now on it reads `source()` instead of the system clock,
  // so that a test's ManualRuntime (runtime.hpp) is the database's clock
  // too and times are exact: `store.set_time_source([&] { return
  // runtime.wall_now(); })`. A store whose clock is a server's (PostgreSQL)
  // ignores it. An empty function restores the system clock. Thread-safe.
  virtual void set_time_source(std::function<Timestamp()> source) {
    const std::lock_guard lock(time_source_mutex_);
    time_source_ = std::move(source);
  }
  // The time source's time (else the system clock's), without the offset:
  // a store whose clock is this process's reads it (and adds clock_offset()).
  Timestamp source_time() const {
    const std::lock_guard lock(time_source_mutex_);
    return time_source_ ? time_source_() : Clock::now();
  }

 private:
  std::atomic<std::int64_t> clock_offset_us_{0};
  mutable std::mutex time_source_mutex_;
  std::function<Timestamp()> time_source_;
};

// Options every backend understands; a backend documents any it ignores.
// open_store() refuses negative values with invalid_parameter
// (store_options_problem(), backend.hpp).
struct StoreOptions {
  int pool_size = 0;  // connections the store may open; 0: the backend's default
  // How long a lock conflict is waited out and retried before `busy` is thrown.
  std::chrono::milliseconds busy_timeout{5000};
  // When false, a database that does not exist is not created: opening it
  // throws unavailable (for a tool that only reads, where a mistyped path
  // must not leave an empty database behind). SQLite files only; PostgreSQL
  // never creates a database and ignores it.
  bool create_if_missing = true;
};

}  // namespace jobrepo
