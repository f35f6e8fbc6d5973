// An in-memory jobrepo backend: the worked example for backend authors.
//
// It is built from jobrepo's installed headers alone, the way a third-party
// backend is, and implements every jobrepo::Store method exactly as
// <jobrepo/store.hpp> and docs/backends.md specify, with plain C++ containers
// in place of SQL tables. Copy it, then replace the containers with your
// database's statements: the rules each method enforces stay the same.
//
// Databases are named. A process-wide registry maps a name to the data, so
// every MemoryStore opened on "memory:NAME" in this process sees the same
// jobs and runs; no other process can reach them. The data lives until
// drop_memory_database() and the last store on it are gone.
//
// Thread-safe: one mutex per database makes each operation atomic (the
// "transaction"); wake-ups (subscribe_due) reach every store on the database.
#pragma once

#include <jobrepo/backend.hpp>
#include <jobrepo/store.hpp>

#include <memory>
#include <mutex>
#include <span>
#include <string>

namespace memory_backend {

// The schema versions this store ships: the built-in backends' (version 6:
// pausing, run-now, cancel requests, servings, server leases, work ends,
// run arguments).
std::span<const jobrepo::Migration> migrations();

// The shared state of one named database (defined in memory_store.cpp).
struct MemoryDatabase;

class MemoryStore final : public jobrepo::Store {
 public:
  // Opens the database `name`, creating it (empty, unmigrated) when it does
  // not exist and options.create_if_missing is set; otherwise throws
  // unavailable. pool_size and busy_timeout are ignored: there are no
  // connections, and the one mutex is never held for long.
  explicit MemoryStore(const std::string& name, const jobrepo::StoreOptions& options = {});

  jobrepo::StoreContract8 contract() const override { return {}; }  // written for Store contract 8
  void migrate() override;
  jobrepo::Timestamp now() override;

  jobrepo::Job create_job(const jobrepo::NewJob& job) override;
  jobrepo::Job ensure_job(const jobrepo::NewJob& job) override;
  std::optional<jobrepo::Job> lookup_job(const std::string& plugin_id, const std::string& name) override;
  std::vector<jobrepo::Job> list_jobs(const jobrepo::JobQuery& query) override;
  std::optional<jobrepo::Job> reschedule_job(const std::string& plugin_id, const std::string& name,
                                             const jobrepo::Due& due) override;
  bool delete_job(const std::string& plugin_id, const std::string& name) override;
  std::optional<jobrepo::Job> set_job_paused(const std::string& plugin_id, const std::string& name,
                                             bool paused) override;
  std::optional<jobrepo::Job> request_run(const std::string& plugin_id, const std::string& name,
                                          const std::optional<std::string>& payload) override;
  std::optional<jobrepo::Run> request_cancel(const std::string& plugin_id, const std::string& run_id) override;

  jobrepo::ServerLease record_server(const jobrepo::ServerRecord& record) override;
  void remove_server(const std::string& plugin_id, const std::string& server_id, const std::string& instance) override;
  std::vector<jobrepo::Serving> list_servings(const std::string& plugin_id,
                                              const std::optional<std::string>& name) override;

  std::vector<jobrepo::Run> claim_runs(const jobrepo::ClaimRequest& request) override;
  std::vector<std::optional<jobrepo::Run>> transition_runs(std::span<const jobrepo::RunTransition> changes) override;
  std::vector<jobrepo::Run> interrupt_stale_runs(const jobrepo::StaleRunQuery& query) override;
  std::optional<jobrepo::Run> record_work_end(const std::string& plugin_id, const std::string& run_id,
                                              jobrepo::Timestamp ended) override;
  std::optional<jobrepo::Run> lookup_run(const std::string& plugin_id, const std::string& run_id) override;
  std::vector<jobrepo::Run> list_runs(const jobrepo::RunQuery& query) override;
  std::int64_t prune_runs(const std::string& plugin_id, std::chrono::microseconds older_than) override;
  std::optional<std::int64_t> prune_job_runs(const std::string& plugin_id, const jobrepo::JobRunsPrune& prune) override;

  // Wakes subscribers of every store on this database (not of other processes:
  // there are none that could reach it).
  std::unique_ptr<jobrepo::DueSubscription> subscribe_due(const std::string& plugin_id,
                                                          std::function<void()> on_due) override;

 private:
  // Takes the database's mutex and checks the schema version: the start of
  // every operation but migrate(). Throws schema_mismatch naming `operation`.
  std::unique_lock<std::mutex> begin(const char* operation);
  // The store's clock: the system clock in whole microseconds plus clock_offset().
  jobrepo::Timestamp clock() const;

  std::string name_;
  std::shared_ptr<MemoryDatabase> db_;
};

// Opens "memory:NAME" stores; `name` is the part after "memory:".
std::unique_ptr<jobrepo::Store> open_memory_store(const std::string& name, const jobrepo::StoreOptions& options = {});

// Forgets the database `name`: the next open of that name (with
// create_if_missing) starts empty. Stores open on it keep the old data until
// they are destroyed. False when there was no such database.
bool drop_memory_database(const std::string& name);

// Records `version` as the schema version of the database `name`, as another
// jobrepo's migrate() would (for tests). False when there is no such database.
bool set_memory_schema_version(const std::string& name, int version);

// Registers the "memory" URL scheme with jobrepo::register_backend(), so that
// jobrepo::open_store("memory:NAME") works. Idempotent; thread-safe.
void register_memory_backend();

}  // namespace memory_backend
