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
// clock_offset(). "now" below means exactly that value.
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

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
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
  // When set, the run's job becomes due then, in the same transaction.
  std::optional<Due> reschedule{};
};

// Arguments of Store::list_runs.
struct RunQuery {
  std::string plugin_id{};
  std::optional<std::string> job_name{};
  std::optional<Status> status{};
  std::int64_t limit = -1;  // negative: no limit
};

// Arguments of Store::interrupt_stale_runs.
struct StaleRunQuery {
  std::string plugin_id{};
  std::chrono::microseconds threshold{0};  // >= 0
  std::optional<std::string> server_id{};  // only that server's runs
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

class Store {
 public:
  Store() = default;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;
  virtual ~Store() = default;

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

  // Deletes the job and all its runs; false when it does not exist.
  virtual bool delete_job(const std::string& plugin_id, const std::string& name) = 0;

  // The claim. Atomically inserts a running run owned by request.server_id for
  // each job of request.plugin_id that is due (next_scheduled_run <= now) and
  // has no running run, earliest due first, ties by name, at most
  // request.limit; returns the new runs in that order. Concurrent claims never
  // get the same job and never fail because another claim won a race.
  // Run ids come from generate_run_id() (backend.hpp) or are equally strong.
  virtual std::vector<Run> claim_runs(const ClaimRequest& request) = 0;

  // Applies each transition in one transaction, in order. Element i of the
  // result is the run after transition i, or empty when that run does not
  // exist in its plugin or was not running (nothing is written for it).
  // A final run gets end_time = update_time = now; a running one update_time = now.
  virtual std::vector<std::optional<Run>> transition_runs(std::span<const RunTransition> changes) = 0;

  // Every running run of query.plugin_id (and query.server_id, when set) with
  // update_time <= now - threshold becomes interrupted with end_time = now.
  // Returns those runs, in no promised order. Jobs are not rescheduled.
  virtual std::vector<Run> interrupt_stale_runs(const StaleRunQuery& query) = 0;

  virtual std::optional<Run> lookup_run(const std::string& plugin_id, const std::string& run_id) = 0;

  // Runs of query.plugin_id (of one job, in one status, when given), newest
  // first (create_time descending, then private_id).
  virtual std::vector<Run> list_runs(const RunQuery& query) = 0;

  // Deletes the final runs of plugin_id whose end_time <= now - older_than
  // (>= 0); returns how many. Running runs are never deleted.
  virtual std::int64_t prune_runs(const std::string& plugin_id, std::chrono::microseconds older_than) = 0;

  // Push wake-ups, optional. Calls on_due, on a thread of the store, soon
  // after any process commits a change that may make jobs of plugin_id
  // claimable sooner than before: create_job, ensure_job, reschedule_job, and
  // interrupt_stale_runs when it interrupted runs. Also calls it when such
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

 private:
  std::atomic<std::int64_t> clock_offset_us_{0};
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
