// jobrepo: Repository, the job and run operations of one plugin.
//
// A Repository is cheap to make: it holds a reference to a Store and its
// options, and nothing else. Each method is one atomic transaction.
// Thread-safe: any number of threads may call one Repository at once (it
// changes no state of its own; the Store it calls is thread-safe).
//
// Argument checks come before any I/O. When several errors apply, the first
// of invalid_parameter, record_not_found, invalid_job_run_state,
// check_constraint wins. Every method may also throw unavailable, busy,
// schema_mismatch or internal (see error.hpp). A failed call writes nothing.
// An error's message starts with the name of the method called
// ("complete_run: ..."), whatever the store called its own operation.
//
// Text: every name, description, server id, plugin id and run id follows
// the rules of text.hpp. Text that is stored (create_job, ensure_job,
// run_jobs' server_id, the plugin_id) must be valid UTF-8 without a NUL
// byte (else invalid_parameter) and fit its length (else check_constraint);
// text that is only compared (lookups, filters) must be valid UTF-8 without a
// NUL byte (else invalid_parameter); run ids are A-Z a-z 0-9 - _ only (else
// invalid_parameter).
//
// Durations: any std::chrono duration that converts to microseconds without
// loss (seconds, milliseconds, minutes, hours...). Negative means "in the past".
// Each must lie within max_offset (below) of zero, but for a due time
// (next_run_in, retry_in) std::chrono::microseconds::max(), which means
// never (`never`, below).
//
// Due times may be given either way: as a duration from the store's now
// (next_run_in, retry_in) or as an absolute time (next_run_at, retry_at: a
// calendar schedule's fire time), never both. An absolute time must lie in
// [earliest_time, latest_time] (below), else invalid_parameter.
#pragma once

#include <jobrepo/error.hpp>
#include <jobrepo/store.hpp>
#include <jobrepo/text.hpp>
#include <jobrepo/types.hpp>

#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace jobrepo {

// The range of every duration argument of a Repository: a duration d is
// accepted when -max_offset <= d <= max_offset (0 <= d <= max_offset where it
// must not be negative); outside it the call throws invalid_parameter before
// any I/O (in update_runs: that update's own error). 100 years (36525 days):
// far beyond any schedule, and now +/- it is a time every backend can store.
inline constexpr std::chrono::microseconds max_offset{std::chrono::days(36525)};

// The range of every absolute time argument: the Unix epoch to 2262-01-01,
// what every backend stores and a Timestamp reads back exactly.
inline constexpr Timestamp earliest_time{};
inline constexpr Timestamp latest_time{std::chrono::sys_days{std::chrono::year{2262} / 1 / 1}};

// The due time of a job that no time makes due: only run_now (an operator,
// the API) does. A duration argument of std::chrono::microseconds::max()
// (next_run_in, retry_in) means it: the job is due `never`.
inline constexpr Timestamp never = latest_time;

// What makes a job due, read from its row alone, for people and monitoring
// (jobctl jobs, the status page, metrics):
// - scheduled: a time (next_scheduled_run is before `never`);
// - on_demand: no time, only a request (run_now): due `never`, with no
//   failure since its last completed run (RegisterJobOptions::on_demand, a
//   handler that answered microseconds::max());
// - gave_up: no time, and it failed: due `never` with consecutive_failures
//   above 0 (BackoffOptions::give_up after max_attempts failures in a row),
//   so nothing retries it until run_now asks.
// A run_requested job is due when its running run ends, whatever this says.
enum class DueState { scheduled, on_demand, gave_up };

DueState due_state(const Job& job) noexcept;
// "scheduled", "on_demand" or "gave_up".
std::string_view to_string(DueState state) noexcept;

struct RepositoryOptions {
  std::string plugin_id = std::string(default_plugin_id);  // 1-127 characters (text.hpp)
  int default_limit = 10000;  // list_jobs limit when the call gives none; 0: 10000, negative: unlimited
};

struct CreateJobOptions {
  std::chrono::microseconds next_run_in{0};  // 0: due at once
  std::optional<Timestamp> next_run_at{};    // instead: due at this time
  // Job::schedule: how the job is scheduled, for people; 0-1023 characters.
  std::string schedule{};
};

struct ListJobsOptions {
  std::string name{};  // when non-empty, only the job with exactly this name
  int limit = 0;       // 0: the repository default; negative: unlimited
};

struct RunJobsOptions {
  int limit = 0;  // 0: 1; negative: unlimited
  // When set, only jobs with these names are claimed (a server claims only
  // the jobs it can run). Empty list: nothing is claimed.
  std::optional<std::vector<std::string>> only_jobs{};
  // When set, only jobs that server_id serves are claimed: the set of its
  // last record_server with jobs (list_servings), without sending names. A
  // server that recorded none claims nothing. With only_jobs, both apply.
  // Each due job the claim passes over is looked up once, so it costs more
  // than only_jobs when many due jobs it does not serve come first
  // (docs/performance.md).
  bool served_only = false;
};

struct FailRunOptions {
  // When set, the job becomes due at now + retry_in in the same transaction
  // (back-off); by default it is not rescheduled, so it is due at once.
  std::optional<std::chrono::microseconds> retry_in{};
  std::optional<Timestamp> retry_at{};  // instead: due at this time
  // Why the run failed (Run::message), made fit by message_text(); empty: none.
  std::string message{};
};

struct ListRunsOptions {
  std::string job_name{};          // when non-empty, only this job's runs
  std::optional<Status> status{};  // when set, only runs in this status
  int limit = 0;                   // 0: the repository default; negative: unlimited
};

struct InterruptRunsOptions {
  std::string server_id{};  // when non-empty, only this server's runs
  std::string message{};    // Run::message of the interrupted runs (message_text()); empty: none
  // When set, only these runs, each only while its update_time is still the
  // one given (the observer saw it unchanged for the threshold on its own
  // clock; a heartbeat since keeps the run running).
  std::optional<std::vector<ObservedRun>> runs{};
};

// Which final runs of one job prune_job_runs deletes: a run goes when
// either rule says so (with neither set, none does).
struct PruneJobRunsOptions {
  // Keep this many of the job's newest final runs (newest by end_time, ties
  // by run id); at least 1.
  std::optional<std::int64_t> keep_last{};
  // Delete the job's final runs that ended at least this long ago (0 to
  // max_offset; 0: every final run).
  std::optional<std::chrono::microseconds> older_than{};
  // At most this many are deleted by one call, the oldest first: 1 to
  // max_pruned_runs (store.hpp, 10,000); 0 means max_pruned_runs.
  std::int64_t limit = 0;
};

struct RecordServerOptions {
  // The instance that records (ServerRecord::instance): required, 1-255
  // characters, the same for every record of one server's lifetime.
  std::string instance{};
  std::string address{};  // where it runs, for people: 0-255 characters
  // When set, the whole set of jobs it serves from now on, each with
  // definition_fingerprint() of its definition.
  std::optional<std::vector<ServedJob>> jobs{};
  bool take_over = false;  // record even when another instance holds the id
};

// One change of update_runs: what update_progress, complete_run or fail_run
// would do, by status.
struct RunUpdate {
  std::string run_id{};
  // running: a progress report / heartbeat (update_progress); completed or
  // failed: the run ends (complete_run, fail_run); interrupted: its server
  // ends it without a result (it was cancelled: cancel_run).
  Status status = Status::running;
  // New counts, both or neither; neither keeps the stored ones.
  std::optional<std::int64_t> completed_count{};
  std::optional<std::int64_t> total_count{};
  // When set, the run's job becomes due at now + next_run_in in the same
  // transaction (complete_run's next_run_in, fail_run's retry_in)...
  std::optional<std::chrono::microseconds> next_run_in{};
  // ... or at this time (never both).
  std::optional<Timestamp> next_run_at{};
  // Why a run that ends ended (Run::message), made fit by message_text();
  // ignored for running.
  std::optional<std::string> message{};
};

// A fingerprint of a job's definition on a server (its command, schedule,
// timeout...): 16 hexadecimal digits, equal for equal texts (FNV-1a, 64 bits).
// Servers whose fingerprints of a job differ run it differently.
std::string definition_fingerprint(std::string_view definition);

// What became of one RunUpdate: the run after it, or the error the single
// call would have thrown for it (nothing was written for it).
struct RunUpdateResult {
  std::optional<Run> run{};
  std::optional<Error> error{};
};

class Repository {
 public:
  // Throws invalid_parameter when options.plugin_id is empty or malformed
  // (a NUL byte, not UTF-8), check_constraint when it is blank or over 127
  // characters.
  explicit Repository(Store& store, RepositoryOptions options = {});

  const std::string& plugin_id() const noexcept { return plugin_id_; }

  // The store's clock now (the time its next operation would write): the
  // reference for due times computed outside the store, such as a calendar
  // schedule's next fire time.
  Timestamp database_time();

  // Inserts a job due at now + next_run_in (or at next_run_at).
  // Throws invalid_parameter (name, then description, then schedule: empty, a
  // NUL byte, not valid UTF-8; next_run_in beyond max_offset, next_run_at out
  // of range, both given), check_constraint (name blank or over 127
  // characters, description blank or over 1023, schedule over 1023),
  // not_unique (the name exists in this plugin).
  Job create_job(std::string_view name, std::string_view description, CreateJobOptions options = {});

  // Registers a job idempotently: creates it (due as create_job's) when
  // missing, otherwise updates only its description and schedule text and
  // keeps its due time.
  // Safe when several servers register the same job at once. Errors as
  // create_job, except that an existing name is not an error.
  Job ensure_job(std::string_view name, std::string_view description, CreateJobOptions options = {});

  // The job, or empty. Throws invalid_parameter for an empty or malformed name.
  std::optional<Job> lookup_job(std::string_view name);

  // This plugin's jobs ordered by name. Throws invalid_parameter for a
  // malformed name filter.
  std::vector<Job> list_jobs(ListJobsOptions options = {});

  // Sets the job's next_scheduled_run to now + next_run_in, earlier or later.
  // Throws invalid_parameter (empty or malformed name, next_run_in beyond
  // max_offset), record_not_found.
  Job update_job_next_run(std::string_view name, std::chrono::microseconds next_run_in);
  // The same with an absolute time (invalid_parameter when out of range).
  Job update_job_next_run(std::string_view name, Timestamp next_run_at);

  // Deletes the job and all its runs (running ones too: their owners' next
  // heartbeat finds them gone and cancels them). Throws invalid_parameter
  // (empty or malformed name), record_not_found.
  void delete_job(std::string_view name);

  // Pauses the job: no server claims it until resume_job; a run of it that
  // is running goes on to its end. Idempotent. Throws invalid_parameter
  // (empty or malformed name), record_not_found.
  Job pause_job(std::string_view name);
  // Lets servers claim the job again (at its due time). Errors as pause_job.
  Job resume_job(std::string_view name);

  // An operator's "run it now": due now, or, while a run of it is running,
  // due as soon as that run ends (whatever next time the run's end sets),
  // on whichever server. A paused job stays paused.
  // With a payload (the run's arguments: JSON text, payload_problem() in
  // text.hpp), the next run claimed gets it as Run::payload; until then it
  // is the job's requested_payload. Asking again with the same payload, or
  // with none, keeps it; asking with another one while it waits is refused
  // (invalid_job_run_state, naming the job), so that neither is lost. A run
  // that is running keeps its own payload: one asked for meanwhile goes to
  // the run after it.
  // Throws invalid_parameter (empty or malformed name, a payload that is
  // not JSON or over 64 KiB), record_not_found, invalid_job_run_state.
  Job run_now(std::string_view name, std::optional<std::string> payload = {});

  // Asks the server that runs the run to stop it: sets cancel_requested.
  // The server sees it with its next heartbeat, stops the work and ends the
  // run as interrupted with message "cancelled by operator"; the job keeps
  // its schedule. Returns the run as stored. Throws invalid_parameter (a
  // malformed id), record_not_found, invalid_job_run_state (the run is
  // final).
  Run cancel_run(std::string_view run_id);

  // A server's proof of life: live for `ttl` from now (0 <= ttl <=
  // max_offset), when the server id is free or held by options.instance (or
  // options.take_over); with options.jobs, also the jobs it serves (names
  // of jobs that do not exist are left out). A server id is a lease: the
  // answer says whether this instance holds it, else which instance does
  // (Store::record_server). Throws invalid_parameter (a malformed server
  // id, instance, address, job name or fingerprint, an empty instance, ttl
  // out of range), check_constraint (server id, instance or address too
  // long).
  ServerLease record_server(std::string_view server_id, std::chrono::microseconds ttl, RecordServerOptions options);
  // Forgets a server and what it serves (its clean stop), when `instance`
  // holds it, or whoever holds it when `instance` is empty. Not an error
  // when it is unknown or held by another instance.
  void remove_server(std::string_view server_id, std::string_view instance = {});
  // What servers serve this plugin's jobs (one job's, when `name` is not
  // empty), by job name then server id.
  std::vector<Serving> list_servings(std::string_view name = {});

  // The claim: a running run owned by server_id for each due job that has no
  // running run (among options.only_jobs and the jobs server_id serves, when
  // asked), earliest due first (ties by name), at most options.limit.
  // Returns the new runs in claim order, or none. Never fails because another
  // server claimed at the same time.
  // Throws invalid_parameter (server_id empty or malformed, a malformed
  // only_jobs name), check_constraint (server_id blank or over 255 characters).
  std::vector<Run> run_jobs(std::string_view server_id, RunJobsOptions options = {});

  // Sets the counts of a running run and refreshes its update_time (the
  // owner's proof of life, even when the counts did not change).
  // Throws invalid_parameter (empty id, or not A-Z a-z 0-9 - _), record_not_found,
  // invalid_job_run_state (the run is final), check_constraint (a negative
  // count or completed > total).
  Run update_progress(std::string_view run_id, std::int64_t completed, std::int64_t total);

  // The run becomes completed with end_time = now; its job becomes due at
  // now + next_run_in, in the same transaction. Errors as update_progress,
  // and invalid_parameter for next_run_in beyond max_offset.
  Run complete_run(std::string_view run_id, std::chrono::microseconds next_run_in);
  // The same with an absolute time for the job's next run.
  Run complete_run(std::string_view run_id, Timestamp next_run_at);

  // The run becomes failed with end_time = now and options.message; the
  // job's consecutive_failures grows by one; the job is not rescheduled
  // (it is due at once) unless options.retry_in or retry_at is set. Errors as
  // update_progress, and invalid_parameter for retry_in beyond max_offset,
  // retry_at out of range, or both.
  Run fail_run(std::string_view run_id, FailRunOptions options = {});

  // Many updates in one transaction, applied in order: the way to complete
  // or heartbeat many runs at the cost of one commit. Element i of the result
  // tells what became of update i; an update that fails (invalid_parameter,
  // record_not_found, invalid_job_run_state, check_constraint, in that
  // order, as the single calls) writes nothing and does not stop the others.
  // Rows are locked in run id order, so concurrent batches do not deadlock.
  // When the store fails a batch of several changes with an error that is
  // not transient (anything but unavailable and busy; say a value its
  // database rejects), the changes are applied again one at a time, each in
  // its own transaction, so that one bad change never costs the others
  // theirs: each gets its run or the error its single call would have had
  // (then even unavailable or busy is that update's error alone).
  // Throws only what fails the whole call, and then nothing is written:
  // unavailable or busy for the batch (retry the call), or, when a single
  // change went to the store, what the store threw.
  std::vector<RunUpdateResult> update_runs(std::span<const RunUpdate> updates);

  // Every running run of this plugin (of options.server_id, when given) not
  // updated for `threshold` becomes interrupted with end_time = now (and
  // options.message). Threshold
  // 0: all running runs. Returns those runs in no promised order. Jobs are not
  // rescheduled. Throws invalid_parameter for a threshold that is negative
  // or beyond max_offset, or a malformed server_id filter.
  std::vector<Run> interrupt_runs(std::chrono::microseconds threshold, InterruptRunsOptions options = {});

  // Records when its owner's work for the run ended (Run::work_end_time),
  // unless a time is recorded already, whatever the run's status: for an
  // owner whose work outlived the run's end by someone else. `ended` is the
  // owner's reckoning of the store's clock. Returns the run as stored.
  // Throws invalid_parameter (a malformed id, `ended` out of range),
  // record_not_found.
  Run record_work_end(std::string_view run_id, Timestamp ended);

  // The run, or empty. Throws invalid_parameter for an empty id or one with
  // characters other than A-Z a-z 0-9 - _.
  std::optional<Run> lookup_run(std::string_view run_id);

  // This plugin's runs, newest first. Throws invalid_parameter for a
  // malformed job_name filter.
  std::vector<Run> list_runs(ListRunsOptions options = {});

  // Deletes final runs that ended at least `older_than` ago, so that history
  // stays bounded; returns how many. Running runs are kept. Throws
  // invalid_parameter for a duration that is negative or beyond max_offset.
  std::int64_t prune_runs(std::chrono::microseconds older_than);

  // Bounds one job's history: deletes its final runs beyond the keep_last
  // newest and/or those that ended at least older_than ago, at most
  // options.limit of them per call, the oldest first (call again while it
  // returns the limit: each call is one short transaction). Returns how many
  // it deleted. Running runs, other jobs' and other plugins' runs are kept;
  // calls from several servers at once are harmless. Throws
  // invalid_parameter (empty or malformed name, keep_last below 1,
  // older_than negative or beyond max_offset, limit out of range),
  // record_not_found (no such job).
  std::int64_t prune_job_runs(std::string_view name, PruneJobRunsOptions options);

 private:
  // The checked arguments of create_job / ensure_job.
  NewJob new_job(const char* operation, std::string_view name, std::string_view description,
                 const CreateJobOptions& options) const;
  std::vector<RunUpdateResult> apply_updates(const char* operation, std::span<const RunUpdate> updates);
  Job reschedule(const char* operation, std::string_view name, const Due& due);
  // The store's change of one job by name: the name checked, the job as
  // changed, record_not_found when there is none.
  template <class Change>
  Job change_job(const char* operation, std::string_view name, Change&& change);
  // record_not_found: "OPERATION: no WHAT "KEY" in plugin "P"".
  Error no_such(const char* what, const char* operation, std::string_view key) const;
  Run transition(const char* operation, std::string_view run_id, RunTransition change);
  [[noreturn]] void throw_transition_error(const char* operation, const std::string& run_id,
                                           const std::string& counts_problem);

  Store& store_;
  std::string plugin_id_{};
  std::int64_t default_limit_;
};

}  // namespace jobrepo
