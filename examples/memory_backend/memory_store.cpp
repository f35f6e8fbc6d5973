// The in-memory backend (see memory_store.hpp). Each method below is one
// "transaction": it takes the database's one mutex, reads the clock once,
// checks what it must, and only then writes, so that a call that throws has
// written nothing. A SQL backend gets the same from BEGIN ... COMMIT.
#include "memory_store.hpp"

#include <jobrepo/backend.hpp>
#include <jobrepo/error.hpp>
#include <jobrepo/text.hpp>

#include <algorithm>
#include <map>
#include <tuple>
#include <utility>

namespace memory_backend {

using jobrepo::Due;
using jobrepo::Error;
using jobrepo::ErrorCode;
using jobrepo::Job;
using jobrepo::Run;
using jobrepo::Status;
using jobrepo::Timestamp;

namespace {

// A job and what an index would tell a SQL backend: its running run.
struct JobRow {
  Job job;
  std::string running_run_id;  // empty: no run of the job is running
};

// A server's proof of life and who holds its id (the "server" table).
struct ServerRow {
  std::string instance;  // the instance that holds the server id
  std::string address;
  Timestamp seen_time;
  Timestamp live_until;  // now + ttl of its last record
};

// One job a server serves (the "job_server" table).
struct ServingRow {
  std::string fingerprint;
  Timestamp registered_time;
};

using JobKey = std::pair<std::string, std::string>;                    // plugin id, job name
using ServerKey = std::pair<std::string, std::string>;                 // plugin id, server id
using ServingKey = std::tuple<std::string, std::string, std::string>;  // plugin id, job name, server id

std::string quoted(const std::string& text) { return jobrepo::quote_text(text); }

std::string job_subject(const std::string& plugin_id, const std::string& name) {
  return "job " + quoted(name) + " in plugin " + quoted(plugin_id);
}

// When a Due falls: at `at` (to the microsecond), else at now + `in`.
Timestamp due_time(const Due& due, Timestamp now) {
  if (due.at) return std::chrono::floor<std::chrono::microseconds>(*due.at);
  return now + due.in;
}

// What a run's end does to its job (transition_runs and interrupt_stale_runs).
void record_outcome(JobRow& row, const Run& run, Timestamp now) {
  Job& job = row.job;
  job.last_status = run.status;
  job.last_end_time = now;
  job.last_message = run.message;
  if (run.status == Status::completed) {
    job.consecutive_failures = 0;
    job.last_success_time = now;
  }
  if (run.status == Status::failed) job.consecutive_failures += 1;
  row.running_run_id.clear();
}

}  // namespace

// The shared state of one named database: its "tables", its schema version,
// and the subscribers of every store opened on it.
struct MemoryDatabase {
  std::mutex mutex;
  int schema_version = 0;  // 0: never migrated
  std::map<JobKey, JobRow> jobs;
  std::map<std::string, Run> runs;  // by private_id (unique in all plugins)
  std::map<ServerKey, ServerRow> servers;
  std::map<ServingKey, ServingRow> servings;
  jobrepo::DueNotifier due;  // notified after the mutex is released

  JobRow* find_job(const std::string& plugin_id, const std::string& name) {
    const auto it = jobs.find(JobKey{plugin_id, name});
    return it == jobs.end() ? nullptr : &it->second;
  }
  Run* find_run(const std::string& plugin_id, const std::string& run_id) {
    const auto it = runs.find(run_id);
    return it == runs.end() || it->second.job_plugin_id != plugin_id ? nullptr : &it->second;
  }
};

namespace {

// The process-wide registry of named databases.
struct Registry {
  std::mutex mutex;
  std::map<std::string, std::shared_ptr<MemoryDatabase>> databases;
};

Registry& registry() {
  static Registry instance;
  return instance;
}

}  // namespace

// ---- opening, schema and clock ----

std::span<const jobrepo::Migration> migrations() {
  // The built-in backends' versions (schema/<backend>/NNNN_name.sql); a SQL
  // backend embeds its files with jobrepo_embed_migrations() (CMake).
  static const jobrepo::Migration all[] = {
      {1, "0001_initial", ""},          {2, "0002_run_history", ""},  {3, "0003_job_schedule", ""},
      {4, "0004_operator_control", ""}, {5, "0005_server_lease", ""}, {6, "0006_run_arguments", ""},
  };
  return all;
}

MemoryStore::MemoryStore(const std::string& name, const jobrepo::StoreOptions& options) : name_(name) {
  if (name.empty()) throw Error(ErrorCode::invalid_parameter, "open_store: a memory database needs a name");
  Registry& reg = registry();
  const std::lock_guard lock(reg.mutex);
  if (const auto it = reg.databases.find(name); it != reg.databases.end()) {
    db_ = it->second;
    return;
  }
  // Another process asking for it lands here too: its registry is its own.
  if (!options.create_if_missing) {
    throw Error(ErrorCode::unavailable,
                "open_store: memory database " + quoted(name) + " does not exist in this process");
  }
  db_ = std::make_shared<MemoryDatabase>();
  reg.databases.emplace(name, db_);
}

std::unique_lock<std::mutex> MemoryStore::begin(const char* operation) {
  std::unique_lock lock(db_->mutex);
  // The one wording of every backend: "not migrated" or "newer than".
  jobrepo::check_schema_version(operation, db_->schema_version, migrations());
  return lock;
}

Timestamp MemoryStore::clock() const {
  return std::chrono::floor<std::chrono::microseconds>(source_time()) + clock_offset();
}

void MemoryStore::migrate() {
  const std::lock_guard lock(db_->mutex);
  // Refuses a newer database (naming its version); applies what is missing.
  // Here a migration only records its version: the containers are the
  // tables. A SQL backend runs migration.sql in the same transaction.
  jobrepo::apply_migrations(db_->schema_version, migrations(),
                            [&](const jobrepo::Migration& migration) { db_->schema_version = migration.version; });
}

Timestamp MemoryStore::now() {
  const auto lock = begin("now");
  return clock();
}

// ---- jobs ----

Job MemoryStore::create_job(const jobrepo::NewJob& job) {
  Job created;
  {
    const auto lock = begin("create_job");
    const Timestamp now = clock();
    if (db_->find_job(job.plugin_id, job.name)) {
      throw Error(ErrorCode::not_unique, "create_job: " + job_subject(job.plugin_id, job.name) + " already exists");
    }
    created = Job{job.plugin_id, job.name, job.description, due_time(job.due, now), job.schedule};
    db_->jobs.emplace(JobKey{job.plugin_id, job.name}, JobRow{created, {}});
  }
  db_->due.notify(job.plugin_id);  // after the "commit": a subscriber may read at once
  return created;
}

Job MemoryStore::ensure_job(const jobrepo::NewJob& job) {
  Job ensured;
  {
    const auto lock = begin("ensure_job");
    const Timestamp now = clock();
    if (JobRow* row = db_->find_job(job.plugin_id, job.name)) {
      // Registered again: new description and schedule text, same due time.
      row->job.description = job.description;
      row->job.schedule = job.schedule;
      ensured = row->job;
    } else {
      ensured = Job{job.plugin_id, job.name, job.description, due_time(job.due, now), job.schedule};
      db_->jobs.emplace(JobKey{job.plugin_id, job.name}, JobRow{ensured, {}});
    }
  }
  db_->due.notify(job.plugin_id);  // a new job may be due (spurious for an old one)
  return ensured;
}

std::optional<Job> MemoryStore::lookup_job(const std::string& plugin_id, const std::string& name) {
  const auto lock = begin("lookup_job");
  const JobRow* row = db_->find_job(plugin_id, name);
  if (!row) return std::nullopt;
  return row->job;
}

std::vector<Job> MemoryStore::list_jobs(const jobrepo::JobQuery& query) {
  const auto lock = begin("list_jobs");
  std::vector<Job> jobs;
  // The map is ordered by (plugin id, name): the plugin's jobs are one range, by name.
  for (auto it = db_->jobs.lower_bound(JobKey{query.plugin_id, ""});
       it != db_->jobs.end() && it->first.first == query.plugin_id; ++it) {
    if (query.limit >= 0 && static_cast<std::int64_t>(jobs.size()) >= query.limit) break;
    if (query.name && it->first.second != *query.name) continue;
    jobs.push_back(it->second.job);
  }
  return jobs;
}

std::optional<Job> MemoryStore::reschedule_job(const std::string& plugin_id, const std::string& name, const Due& due) {
  std::optional<Job> result;
  {
    const auto lock = begin("reschedule_job");
    const Timestamp now = clock();
    JobRow* row = db_->find_job(plugin_id, name);
    if (!row) return std::nullopt;
    row->job.next_scheduled_run = due_time(due, now);
    result = row->job;
  }
  db_->due.notify(plugin_id);  // rescheduled: maybe due sooner
  return result;
}

bool MemoryStore::delete_job(const std::string& plugin_id, const std::string& name) {
  const auto lock = begin("delete_job");
  if (db_->jobs.erase(JobKey{plugin_id, name}) == 0) return false;
  // Its runs, whatever their status ...
  std::erase_if(db_->runs, [&](const auto& entry) {
    return entry.second.job_plugin_id == plugin_id && entry.second.job_name == name;
  });
  // ... and who serves it.
  std::erase_if(db_->servings, [&](const auto& entry) {
    return std::get<0>(entry.first) == plugin_id && std::get<1>(entry.first) == name;
  });
  return true;
}

std::optional<Job> MemoryStore::set_job_paused(const std::string& plugin_id, const std::string& name, bool paused) {
  std::optional<Job> result;
  {
    const auto lock = begin("set_job_paused");
    JobRow* row = db_->find_job(plugin_id, name);
    if (!row) return std::nullopt;
    row->job.paused = paused;
    result = row->job;
  }
  if (!paused) db_->due.notify(plugin_id);  // resumed: it may be due
  return result;
}

std::optional<Job> MemoryStore::request_run(const std::string& plugin_id, const std::string& name,
                                            const std::optional<std::string>& payload) {
  std::optional<Job> result;
  {
    const auto lock = begin("request_run");
    const Timestamp now = clock();
    JobRow* row = db_->find_job(plugin_id, name);
    if (!row) return std::nullopt;
    std::optional<std::string>& waiting = row->job.requested_payload;
    // Another payload waits for a claim: nothing changes (core refuses the request).
    if (payload && waiting && *waiting != *payload) return row->job;
    if (!waiting) waiting = payload;
    if (!row->running_run_id.empty()) {
      row->job.run_requested = true;  // the running run's end makes it due
    } else {
      row->job.next_scheduled_run = now;  // due now: nothing is left to request
      row->job.run_requested = false;
    }
    result = row->job;
  }
  db_->due.notify(plugin_id);  // run now: due now, or once its run ends
  return result;
}

// ---- servers ----

jobrepo::ServerLease MemoryStore::record_server(const jobrepo::ServerRecord& record) {
  const auto lock = begin("record_server");
  const Timestamp now = clock();
  const ServerKey key{record.plugin_id, record.server_id};
  // A server id is a lease: another instance's record stays as it is.
  if (const auto held = db_->servers.find(key); held != db_->servers.end() && !held->second.instance.empty() &&
                                                held->second.instance != record.instance && !record.take_over) {
    const ServerRow& holder = held->second;
    return jobrepo::ServerLease{false, holder.instance, holder.address, holder.seen_time, holder.live_until};
  }
  db_->servers[key] = ServerRow{record.instance, record.address, now, now + record.ttl};
  const jobrepo::ServerLease lease{true, record.instance, record.address, now, now + record.ttl};
  if (!record.jobs) return lease;  // a proof of life alone keeps the set of jobs
  std::erase_if(db_->servings, [&](const auto& entry) {
    return std::get<0>(entry.first) == record.plugin_id && std::get<2>(entry.first) == record.server_id;
  });
  for (const auto& served : *record.jobs) {
    if (!db_->find_job(record.plugin_id, served.name)) continue;  // jobs that do not exist are left out
    db_->servings.emplace(ServingKey{record.plugin_id, served.name, record.server_id},
                          ServingRow{served.fingerprint, now});
  }
  return lease;
}

void MemoryStore::remove_server(const std::string& plugin_id, const std::string& server_id,
                                const std::string& instance) {
  const auto lock = begin("remove_server");
  const auto held = db_->servers.find(ServerKey{plugin_id, server_id});
  if (held == db_->servers.end() || (!instance.empty() && held->second.instance != instance)) return;
  db_->servers.erase(held);
  std::erase_if(db_->servings, [&](const auto& entry) {
    return std::get<0>(entry.first) == plugin_id && std::get<2>(entry.first) == server_id;
  });
}

std::vector<jobrepo::Serving> MemoryStore::list_servings(const std::string& plugin_id,
                                                         const std::optional<std::string>& name) {
  const auto lock = begin("list_servings");
  const Timestamp now = clock();
  std::vector<jobrepo::Serving> servings;
  // Ordered by (plugin id, job name, server id), as the contract asks.
  for (auto it = db_->servings.lower_bound(ServingKey{plugin_id, "", ""});
       it != db_->servings.end() && std::get<0>(it->first) == plugin_id; ++it) {
    const auto& [plugin, job_name, server_id] = it->first;
    if (name && job_name != *name) continue;
    const ServerRow& server = db_->servers.at(ServerKey{plugin, server_id});
    servings.push_back({job_name, server_id, it->second.fingerprint, it->second.registered_time, server.seen_time,
                        server.live_until > now});
  }
  return servings;
}

// ---- runs ----

std::vector<Run> MemoryStore::claim_runs(const jobrepo::ClaimRequest& request) {
  const auto lock = begin("claim_runs");
  const Timestamp now = clock();
  // Read: the claimable jobs of the plugin.
  std::vector<JobRow*> due;
  for (auto it = db_->jobs.lower_bound(JobKey{request.plugin_id, ""});
       it != db_->jobs.end() && it->first.first == request.plugin_id; ++it) {
    JobRow& row = it->second;
    if (row.job.next_scheduled_run > now) continue;  // not due yet
    if (row.job.paused) continue;
    if (!row.running_run_id.empty()) continue;  // one running run per job
    if (request.only_jobs &&
        std::find(request.only_jobs->begin(), request.only_jobs->end(), row.job.name) == request.only_jobs->end()) {
      continue;
    }
    // served_only: a job the server serves in this plugin (a set of another
    // plugin's server of the same id does not count).
    if (request.served_only &&
        !db_->servings.contains(ServingKey{request.plugin_id, row.job.name, request.server_id})) {
      continue;
    }
    due.push_back(&row);
  }
  // Earliest due first, ties by name; at most `limit` (negative: all).
  std::sort(due.begin(), due.end(), [](const JobRow* a, const JobRow* b) {
    return std::tie(a->job.next_scheduled_run, a->job.name) < std::tie(b->job.next_scheduled_run, b->job.name);
  });
  if (request.limit >= 0 && due.size() > static_cast<std::size_t>(request.limit)) {
    due.resize(static_cast<std::size_t>(request.limit));
  }
  // Everything that can throw comes before the first write.
  std::vector<std::string> ids;
  for (std::size_t i = 0; i < due.size(); ++i) ids.push_back(jobrepo::generate_run_id());
  // Write: one running run per job.
  std::vector<Run> runs;
  for (std::size_t i = 0; i < due.size(); ++i) {
    JobRow& row = *due[i];
    Run run{ids[i], request.plugin_id, row.job.name, request.server_id, now, now, std::nullopt, 0, 0, Status::running};
    run.attempt = 1 + row.job.consecutive_failures;
    run.payload = std::move(row.job.requested_payload);  // the operator's arguments go to this run
    row.job.requested_payload.reset();
    row.job.run_requested = false;
    row.running_run_id = run.private_id;
    db_->runs.emplace(run.private_id, run);
    runs.push_back(std::move(run));
  }
  return runs;
}

std::vector<std::optional<Run>> MemoryStore::transition_runs(std::span<const jobrepo::RunTransition> changes) {
  const auto lock = begin("transition_runs");
  const Timestamp now = clock();
  std::vector<std::optional<Run>> results;
  for (const auto& change : changes) {
    Run* run = db_->find_run(change.plugin_id, change.run_id);
    if (!run || run->status != Status::running) {
      results.emplace_back();  // core turns this into record_not_found or invalid_job_run_state
      continue;
    }
    run->status = change.to;
    run->update_time = now;
    if (change.completed_count) run->completed_count = *change.completed_count;
    if (change.total_count) run->total_count = *change.total_count;
    const bool ended = jobrepo::is_final(change.to);
    if (ended) {
      run->end_time = now;
      if (change.message) run->message = change.message;
    }
    JobRow* row = db_->find_job(run->job_plugin_id, run->job_name);
    if (row && change.reschedule) {
      // An operator's run-now while the run ran wins over the run's own schedule.
      row->job.next_scheduled_run = row->job.run_requested ? now : due_time(*change.reschedule, now);
      row->job.run_requested = false;
    }
    if (row && ended) record_outcome(*row, *run, now);
    results.emplace_back(*run);
  }
  return results;
}

std::vector<Run> MemoryStore::interrupt_stale_runs(const jobrepo::StaleRunQuery& query) {
  std::vector<Run> interrupted;
  {
    const auto lock = begin("interrupt_stale_runs");
    const Timestamp now = clock();
    const Timestamp cutoff = now - query.threshold;
    for (auto& [id, run] : db_->runs) {
      if (run.job_plugin_id != query.plugin_id || run.status != Status::running) continue;
      if (query.server_id && run.server_id != *query.server_id) continue;
      // Observed runs: only while their update_time is still the one seen.
      if (query.runs && std::none_of(query.runs->begin(), query.runs->end(), [&](const jobrepo::ObservedRun& o) {
            return o.run_id == run.private_id && o.update_time == run.update_time;
          })) {
        continue;
      }
      if (run.update_time <= cutoff) {
        run.status = Status::interrupted;
        run.update_time = now;
        run.end_time = now;
        run.message = query.message;
        // The job's last outcome, but no reschedule: it stays due.
        if (JobRow* row = db_->find_job(run.job_plugin_id, run.job_name)) record_outcome(*row, run, now);
        interrupted.push_back(run);
      }
    }
  }
  if (!interrupted.empty()) db_->due.notify(query.plugin_id);  // their jobs are claimable again
  return interrupted;
}

std::optional<Run> MemoryStore::request_cancel(const std::string& plugin_id, const std::string& run_id) {
  const auto lock = begin("request_cancel");
  Run* run = db_->find_run(plugin_id, run_id);
  if (!run) return std::nullopt;
  if (run->status == Status::running) run->cancel_requested = true;  // a final run stays as it is
  return *run;
}

std::optional<Run> MemoryStore::record_work_end(const std::string& plugin_id, const std::string& run_id,
                                                Timestamp ended) {
  const auto lock = begin("record_work_end");
  Run* run = db_->find_run(plugin_id, run_id);
  if (!run) return std::nullopt;
  if (!run->work_end_time) run->work_end_time = std::chrono::floor<std::chrono::microseconds>(ended);
  return *run;
}

std::optional<Run> MemoryStore::lookup_run(const std::string& plugin_id, const std::string& run_id) {
  const auto lock = begin("lookup_run");
  const Run* run = db_->find_run(plugin_id, run_id);
  if (!run) return std::nullopt;
  return *run;
}

std::vector<Run> MemoryStore::list_runs(const jobrepo::RunQuery& query) {
  const auto lock = begin("list_runs");
  std::vector<Run> runs;
  for (const auto& [id, run] : db_->runs) {
    if (run.job_plugin_id != query.plugin_id) continue;
    if (query.job_name && run.job_name != *query.job_name) continue;
    if (query.status && run.status != *query.status) continue;
    runs.push_back(run);
  }
  // Newest first; runs created at the same instant by private_id, ascending.
  std::sort(runs.begin(), runs.end(), [](const Run& a, const Run& b) {
    if (a.create_time != b.create_time) return a.create_time > b.create_time;
    return a.private_id < b.private_id;
  });
  if (query.limit >= 0 && runs.size() > static_cast<std::size_t>(query.limit)) {
    runs.resize(static_cast<std::size_t>(query.limit));
  }
  return runs;
}

std::int64_t MemoryStore::prune_runs(const std::string& plugin_id, std::chrono::microseconds older_than) {
  const auto lock = begin("prune_runs");
  const Timestamp cutoff = clock() - older_than;
  return static_cast<std::int64_t>(std::erase_if(db_->runs, [&](const auto& entry) {
    const Run& run = entry.second;
    return run.job_plugin_id == plugin_id && run.status != Status::running && *run.end_time <= cutoff;
  }));
}

std::optional<std::int64_t> MemoryStore::prune_job_runs(const std::string& plugin_id,
                                                        const jobrepo::JobRunsPrune& prune) {
  const auto lock = begin("prune_job_runs");
  if (!db_->find_job(plugin_id, prune.job_name)) return std::nullopt;
  const Timestamp now = clock();
  // The job's final runs, newest first (by end time, ties by id).
  std::vector<const Run*> runs;
  for (const auto& [id, run] : db_->runs) {
    if (run.job_plugin_id == plugin_id && run.job_name == prune.job_name && run.status != Status::running) {
      runs.push_back(&run);
    }
  }
  std::sort(runs.begin(), runs.end(), [](const Run* a, const Run* b) {
    if (*a->end_time != *b->end_time) return *a->end_time > *b->end_time;
    return a->private_id < b->private_id;
  });
  // A run goes when either rule says so; the oldest first, at most `limit`.
  std::vector<std::string> doomed;
  for (std::size_t i = runs.size(); i-- > 0 && static_cast<std::int64_t>(doomed.size()) < prune.limit;) {
    const bool beyond_kept = prune.keep_last && static_cast<std::int64_t>(i) >= *prune.keep_last;
    const bool too_old = prune.older_than && *runs[i]->end_time <= now - *prune.older_than;
    if (beyond_kept || too_old) doomed.push_back(runs[i]->private_id);
  }
  for (const auto& id : doomed) db_->runs.erase(id);
  return static_cast<std::int64_t>(doomed.size());
}

std::unique_ptr<jobrepo::DueSubscription> MemoryStore::subscribe_due(const std::string& plugin_id,
                                                                     std::function<void()> on_due) {
  return db_->due.subscribe(plugin_id, std::move(on_due));
}

// ---- the registry and the URL scheme ----

std::unique_ptr<jobrepo::Store> open_memory_store(const std::string& name, const jobrepo::StoreOptions& options) {
  if (const auto problem = jobrepo::store_options_problem(options); !problem.empty()) {
    throw Error(ErrorCode::invalid_parameter, "open_store: " + problem);
  }
  return std::make_unique<MemoryStore>(name, options);
}

bool drop_memory_database(const std::string& name) {
  Registry& reg = registry();
  const std::lock_guard lock(reg.mutex);
  return reg.databases.erase(name) > 0;
}

bool set_memory_schema_version(const std::string& name, int version) {
  std::shared_ptr<MemoryDatabase> db;
  {
    Registry& reg = registry();
    const std::lock_guard lock(reg.mutex);
    const auto it = reg.databases.find(name);
    if (it == reg.databases.end()) return false;
    db = it->second;
  }
  const std::lock_guard lock(db->mutex);
  db->schema_version = version;
  return true;
}

void register_memory_backend() {
  static std::once_flag once;
  std::call_once(once, [] {
    // "memory:NAME": everything after the scheme is the name. Names are not
    // secret, so messages show the URL as it is.
    jobrepo::register_backend(
        "memory",
        [](const std::string& url, const jobrepo::StoreOptions& options) {
          return open_memory_store(url.substr(url.find(':') + 1), options);
        },
        [](const std::string& url) { return url; });
  });
}

}  // namespace memory_backend
