#include "store.hpp"

#include "connection.hpp"
#include "errors.hpp"
#include "queries.hpp"
#include "store_support.hpp"
#include "transaction.hpp"
#include "url.hpp"
#include "wakeups.hpp"

#include <jobrepo/backend.hpp>
#include <jobrepo/error.hpp>
#include <jobrepo/mariadb.hpp>
#include <jobrepo/text.hpp>

#include <algorithm>
#include <limits>
#include <map>
#include <mutex>
#include <utility>

namespace jobrepo::mariadb_backend {

namespace {

using std::chrono::microseconds;
using namespace store_support;  // NOLINT(google-build-using-namespace)

// DATETIME(6) holds years 1000 to 9999: a due time outside is kept at the
// nearest end (a job due in the year 20000 is due in 9999).
constexpr Micros min_stored_us = -30610224000000000LL;  // 1000-01-01
constexpr Micros max_stored_us = 253402300799999999LL;  // 9999-12-31 23:59:59.999999
Micros stored(Micros us) { return std::clamp(us, min_stored_us, max_stored_us); }

// `run` after `change`, as update_run writes it at `now`.
Run changed(Run run, const RunTransition& change, Micros now) {
  run.status = change.to;
  run.update_time = to_timestamp(now);
  if (is_final(change.to)) {
    run.end_time = to_timestamp(now);
    if (change.message) run.message = change.message;
  }
  if (change.completed_count) run.completed_count = *change.completed_count;
  if (change.total_count) run.total_count = *change.total_count;
  return run;
}

class MariadbStore final : public Store {
  std::unique_ptr<Connection> connect() {
    auto options = connect_options_;
    options.lock_wait_timeout = static_cast<unsigned>(
        std::max<long long>(1, std::chrono::ceil<std::chrono::seconds>(options_.busy_timeout).count()));
    try {
      return std::make_unique<Connection>(options);
    } catch (const DatabaseError& e) {
      // The client's messages name the host, port, user and database,
      // never the password.
      const ErrorCode code = error_code_for(e.number(), e.what());
      throw Error(code == ErrorCode::internal ? ErrorCode::unavailable : code,
                  "cannot connect to " + shown_text(shown_url_) + ": " + e.what(),
                  "MariaDB error " + std::to_string(e.number()));
    }
  }

  static int schema_version(Connection& c) {
    if (c.query(queries::has_schema_table, {}).at(0).number(0) == 0) return 0;
    const auto rows = c.query(queries::schema_version, {});
    return rows.empty() || rows.front().null(0) ? 0 : static_cast<int>(rows.front().number(0));
  }

  void check_schema(const char* operation, Connection& c) {
    if (schema_ok_) return;
    check_schema_version(operation, schema_version(c), migrations());
    schema_ok_ = true;
  }

  Micros now_us(Connection& c) const { return c.query(queries::now, {}).at(0).number(0) + clock_offset().count(); }

  static long long limit_of(std::int64_t limit) {
    return limit < 0 ? std::numeric_limits<long long>::max() : static_cast<long long>(limit);
  }

  static std::optional<Job> find_job(Connection& c, const std::string& plugin_id, const std::string& name) {
    const auto rows = c.query(queries::lookup_job, {text(plugin_id), text(name)});
    if (rows.empty()) return std::nullopt;
    return job_from_row(rows.front());
  }

  static std::optional<Run> find_run(Connection& c, const std::string& plugin_id, const std::string& run_id) {
    const auto rows = c.query(queries::lookup_run, {text(run_id), text(plugin_id)});
    if (rows.empty()) return std::nullopt;
    return run_from_row(rows.front());
  }

  // Runs `body(connection)` as one transaction (in_transaction()) on a
  // pooled connection. Deadlocks are retried (Retry, transaction.hpp). A
  // broken connection is closed with every idle one (after a server restart
  // they are all dead) and the call fails with `unavailable`.
  template <class Body>
  auto run(const char* operation, const std::string& subject, Body&& body, bool check = true) {
    for (Retry retry(options_.busy_timeout);;) {
      auto lease = pool_.acquire_for(operation);
      unsigned number = 0;
      std::string sqlstate;
      std::string message;
      try {
        auto result = in_transaction(*lease, [&] {
          if (check) check_schema(operation, *lease);
          return body(*lease);
        });
        wakeups_.flush();
        return result;
      } catch (const DatabaseError& e) {
        number = e.number();
        sqlstate = e.sqlstate();
        message = e.what();
      } catch (...) {
        wakeups_.discard();
        if (lease->broken()) lease.discard();
        throw;
      }
      wakeups_.discard();
      if (lease->broken()) {
        lease.discard();
        pool_.clear_idle();
        throw make_error(operation, subject, number, sqlstate, message);
      }
      if (is_retryable(number) && retry.again()) continue;
      throw make_error(operation, subject, number, sqlstate, message);
    }
  }

  // The wake-up poll of one plugin: (earliest due time, count) of its
  // claimable jobs; nullopt when the database cannot be read now.
  std::optional<std::pair<long long, long long>> due_state(const std::string& plugin_id) {
    try {
      return run("subscribe_due", "plugin " + quoted(plugin_id), [&](Connection& c) {
        const auto rows = c.query(queries::next_due, {text(plugin_id)});
        return std::pair<long long, long long>(rows.at(0).number(0), rows.at(0).number(1));
      });
    } catch (const Error&) {
      return std::nullopt;
    }
  }

 public:
  MariadbStore(std::string url, ReadUrl read, const StoreOptions& options)
      : url_(std::move(url)),
        shown_url_(std::move(read.shown)),
        connect_options_(std::move(read.options)),
        options_(options),
        pool_(options.pool_size > 0 ? options.pool_size : 4, [this] { return connect(); }),
        wakeups_([this](const std::string& plugin_id) { return due_state(plugin_id); },
                 std::chrono::milliseconds(connect_options_.wakeup_poll_ms)) {
    // Connect now, so that a bad URL or an unreachable server fails here.
    auto lease = pool_.acquire_for("open_store");
  }

  StoreContract8 contract() const override { return {}; }

  void migrate() override {
    run(
        "migrate", "",
        [&](Connection& c) {
          const auto locked = c.query(queries::lock_migration, {number(60)});
          if (locked.empty() || locked.front().number(0) != 1) {
            throw Error(ErrorCode::busy, "migrate: another server held the migration lock for 60 s");
          }
          try {
            // No DDL unless something is missing: a runtime user without
            // CREATE rights may call migrate() on an up-to-date database.
            if (c.query(queries::has_schema_table, {}).at(0).number(0) == 0) {
              c.run_script(queries::create_schema_table);
            }
            apply_migrations(schema_version(c), migrations(), [&](const Migration& migration) {
              c.run_script(migration.sql);
              const std::string name(migration.name);
              c.execute(queries::record_schema_version, {number(migration.version), text(name)});
              c.commit();
            });
            c.query(queries::unlock_migration, {});
          } catch (...) {
            c.rollback();
            try {
              c.query(queries::unlock_migration, {});
            } catch (const DatabaseError&) {
              // The lock ends with the session.
            }
            throw;
          }
          return 0;
        },
        /*check=*/false);
    schema_ok_ = true;
  }

  Timestamp now() override {
    return run("now", "database " + shown_text(shown_url_), [&](Connection& c) { return to_timestamp(now_us(c)); });
  }

  Job create_job(const NewJob& job) override {
    return run("create_job", job_subject(job.plugin_id, job.name), [&](Connection& c) {
      const Micros next = stored(due_micros(job.due, now_us(c)));
      c.execute(queries::create_job,
                {text(job.plugin_id), text(job.name), text(job.description), text(job.schedule), number(next)});
      wakeups_.changed(job.plugin_id);
      return Job{job.plugin_id, job.name, job.description, to_timestamp(next), job.schedule};
    });
  }

  Job ensure_job(const NewJob& job) override {
    return run("ensure_job", job_subject(job.plugin_id, job.name), [&](Connection& c) {
      const Micros next = stored(due_micros(job.due, now_us(c)));
      c.execute(queries::ensure_job,
                {text(job.plugin_id), text(job.name), text(job.description), text(job.schedule), number(next)});
      const auto rows = c.query(queries::lookup_job, {text(job.plugin_id), text(job.name)});
      if (rows.empty()) throw Error(ErrorCode::internal, "ensure_job: the job vanished while it was written");
      wakeups_.changed(job.plugin_id);
      return job_from_row(rows.front());
    });
  }

  std::optional<Job> lookup_job(const std::string& plugin_id, const std::string& name) override {
    return run("lookup_job", job_subject(plugin_id, name), [&](Connection& c) { return find_job(c, plugin_id, name); });
  }

  std::vector<Job> list_jobs(const JobQuery& query) override {
    return run("list_jobs", "plugin " + quoted(query.plugin_id), [&](Connection& c) {
      const std::string name = query.name.value_or("");
      std::vector<Job> jobs;
      for (const auto& row : c.query(queries::list_jobs, {text(query.plugin_id), flag(query.name.has_value()),
                                                          text(name), number(limit_of(query.limit))})) {
        jobs.push_back(job_from_row(row));
      }
      return jobs;
    });
  }

  std::optional<Job> reschedule_job(const std::string& plugin_id, const std::string& name, const Due& due) override {
    return run("update_job_next_run", job_subject(plugin_id, name), [&](Connection& c) -> std::optional<Job> {
      const Micros next = stored(due_micros(due, now_us(c)));
      if (c.execute(queries::reschedule_job, {number(next), text(plugin_id), text(name)}) == 0) return std::nullopt;
      wakeups_.changed(plugin_id);
      return find_job(c, plugin_id, name);
    });
  }

  bool delete_job(const std::string& plugin_id, const std::string& name) override {
    return run("delete_job", job_subject(plugin_id, name), [&](Connection& c) {
      return c.execute(queries::delete_job, {text(plugin_id), text(name)}) > 0;
    });
  }

  std::optional<Job> set_job_paused(const std::string& plugin_id, const std::string& name, bool paused) override {
    return run(paused ? "pause_job" : "resume_job", job_subject(plugin_id, name),
               [&](Connection& c) -> std::optional<Job> {
                 if (c.execute(queries::set_job_paused, {flag(paused), text(plugin_id), text(name)}) == 0) {
                   return std::nullopt;
                 }
                 if (!paused) wakeups_.changed(plugin_id);
                 return find_job(c, plugin_id, name);
               });
  }

  std::optional<Job> request_run(const std::string& plugin_id, const std::string& name,
                                 const std::optional<std::string>& payload) override {
    return run("run_now", job_subject(plugin_id, name), [&](Connection& c) -> std::optional<Job> {
      if (c.query(queries::lock_job, {text(plugin_id), text(name)}).empty()) return std::nullopt;
      const bool running = c.query(queries::job_running, {text(plugin_id), text(name)}).at(0).number(0) > 0;
      const Micros now = now_us(c);
      const Value arguments = optional_value(payload);
      // No row: another payload waits for a claim, the job stays as it is.
      c.execute(queries::request_run, {flag(running), number(stored(now)), flag(running), arguments, text(plugin_id),
                                       text(name), arguments, arguments});
      wakeups_.changed(plugin_id);
      return find_job(c, plugin_id, name);
    });
  }

  std::optional<Run> request_cancel(const std::string& plugin_id, const std::string& run_id) override {
    return run("cancel_run", "run " + quoted(run_id), [&](Connection& c) {
      c.execute(queries::request_cancel, {text(run_id), text(plugin_id)});
      return find_run(c, plugin_id, run_id);
    });
  }

  // The claim: lock the due jobs (skipping those other claims hold), read
  // the clock, insert their runs in one statement, use up their requests.
  std::vector<Run> claim_runs(const ClaimRequest& request) override {
    return run("run_jobs", "server " + quoted(request.server_id), [&](Connection& c) {
      std::vector<Run> runs;
      const std::string names = request.only_jobs ? json_array(*request.only_jobs) : "[]";
      const auto due =
          c.query(queries::claim_lock,
                  {text(request.plugin_id), number(clock_offset().count()), flag(request.only_jobs.has_value()),
                   text(names), flag(request.served_only), text(request.server_id), number(limit_of(request.limit))});
      if (due.empty()) return runs;
      const Micros now = now_us(c);
      std::string json = "[";
      std::vector<std::string> ids;
      ids.reserve(due.size());
      runs.reserve(due.size());
      for (const auto& job : due) {
        ids.push_back(generate_run_id());
        if (json.size() > 1) json.push_back(',');
        json.append("{\"id\":");
        append_json_string(json, ids.back());
        json.append(",\"name\":");
        append_json_string(json, job.text(0));
        json.append(",\"attempt\":").append(std::to_string(job.number(1) + 1)).append("}");
        Run run{ids.back(),
                request.plugin_id,
                job.text(0),
                request.server_id,
                to_timestamp(now),
                to_timestamp(now),
                std::nullopt,
                0,
                0,
                Status::running};
        run.attempt = job.number(1) + 1;
        run.payload = job.optional_text(3);
        runs.push_back(std::move(run));
      }
      json.push_back(']');
      const auto inserted = c.execute(queries::claim_insert, {text(request.server_id), number(now), number(now),
                                                              text(json), text(request.plugin_id)});
      if (inserted != due.size()) {
        // A job got a run from a claim that committed after this one's
        // first statement read: left out. The runs that were made, in order.
        runs.clear();
        for (const auto& row : c.query(queries::runs_by_id, {text(json_array(ids))})) runs.push_back(run_from_row(row));
      }
      for (std::size_t i = 0; i < due.size(); ++i) {
        // Requests are rare: the claimed runs are searched only for those.
        if (due[i].number(2) == 0 && due[i].null(3)) continue;
        const bool claimed =
            std::any_of(runs.begin(), runs.end(), [&](const Run& r) { return r.private_id == ids[i]; });
        if (claimed) c.execute(queries::clear_request, {text(request.plugin_id), text(due[i].text(0))});
      }
      return runs;
    });
  }

  std::vector<std::optional<Run>> transition_runs(std::span<const RunTransition> changes) override {
    const std::string subject =
        changes.size() == 1 ? "run " + quoted(changes.front().run_id) : std::to_string(changes.size()) + " runs";
    return run("update_run", subject, [&](Connection& c) {
      // Three statements for the whole batch, then two per change: the
      // runs' jobs (read), those jobs locked in (plugin_id, name) order, the
      // runs locked in id order with the clock read once the locks are held;
      // then each change's run and job updated. A job is always locked
      // before its runs, as by the claim, run-now and interrupt_runs.
      // (Until 0.7 five statements per change: 1.5 ms a change under load.)
      std::vector<std::optional<Run>> results(changes.size());
      if (changes.empty()) return results;
      // Every change of one call is of one plugin (Repository's).
      const std::string& plugin = changes.front().plugin_id;
      std::vector<std::string> ids;
      ids.reserve(changes.size());
      for (const auto& change : changes) {
        if (change.plugin_id != plugin) throw Error(ErrorCode::internal, "update_run: changes of two plugins");
        ids.push_back(change.run_id);
      }
      std::sort(ids.begin(), ids.end());
      ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
      const std::string ids_json = json_array(ids);
      std::map<std::string, std::string> job_of;  // run id -> job name, read unlocked
      for (const auto& row : c.query(queries::jobs_of_runs, {text(ids_json), text(plugin)})) {
        job_of.emplace(row.text(0), row.text(1));
      }
      std::vector<std::string> jobs;
      for (const auto& change : changes) {
        const auto found = job_of.find(change.run_id);
        if ((change.reschedule || is_final(change.to)) && found != job_of.end()) jobs.push_back(found->second);
      }
      std::sort(jobs.begin(), jobs.end());
      jobs.erase(std::unique(jobs.begin(), jobs.end()), jobs.end());
      if (!jobs.empty()) c.query(queries::lock_jobs, {text(json_array(jobs)), text(plugin)});
      std::map<std::string, Run> locked;
      Micros now = 0;
      for (const auto& row : c.query(queries::lock_runs, {text(ids_json), text(plugin)})) {
        auto run = run_from_row(row);
        locked.emplace(run.private_id, std::move(run));
        now = row.number(15) + clock_offset().count();
      }
      if (locked.empty()) return results;
      for (std::size_t i = 0; i < changes.size(); ++i) {
        const auto& change = changes[i];
        const bool touches_job = change.reschedule || is_final(change.to);
        const auto at = locked.find(change.run_id);
        if (at == locked.end() || at->second.status != Status::running) continue;
        // A run whose job was not locked above (it was not found then):
        // nothing to lock it after, so it is left as not found.
        const auto read = job_of.find(change.run_id);
        if (touches_job && (read == job_of.end() || read->second != at->second.job_name)) continue;
        const std::string status(to_string(change.to));
        const bool final = is_final(change.to);
        c.execute(queries::update_run, {text(status), number(now), flag(final), number(now),
                                        optional_value(change.completed_count), optional_value(change.total_count),
                                        flag(final), optional_value(change.message), text(change.run_id)});
        at->second = changed(std::move(at->second), change, now);
        const Run& run = at->second;
        if (touches_job) {
          const Micros next = change.reschedule ? stored(due_micros(*change.reschedule, now)) : 0;
          const Value message = optional_value(run.message);
          c.execute(queries::job_after_run, {flag(change.reschedule.has_value()), number(now), number(next),
                                             flag(change.reschedule.has_value()), text(status), text(status),
                                             text(status), text(status), number(now), text(status), message,
                                             text(status), number(now), text(change.plugin_id), text(run.job_name)});
        }
        results[i] = run;
      }
      return results;
    });
  }

  std::vector<Run> interrupt_stale_runs(const StaleRunQuery& query) override {
    return run("interrupt_runs", "plugin " + quoted(query.plugin_id), [&](Connection& c) {
      const std::string observed = query.runs ? observed_runs_json(*query.runs) : "[]";
      const std::string server = query.server_id.value_or("");
      const Micros now = now_us(c);
      const Micros cut = stored(now - query.threshold.count());
      std::vector<Run> interrupted;
      // The jobs of the stale runs, locked in name order; then those runs
      // (still stale, of those jobs), locked.
      std::vector<std::string> names;
      for (const auto& row :
           c.query(queries::stale_jobs, {text(query.plugin_id), number(cut), flag(query.server_id.has_value()),
                                         text(server), flag(query.runs.has_value()), text(observed)})) {
        names.push_back(row.text(0));
      }
      if (names.empty()) return interrupted;
      const std::string names_json = json_array(names);
      c.query(queries::lock_jobs, {text(names_json), text(query.plugin_id)});
      const auto runs = c.query(queries::lock_stale_runs,
                                {text(query.plugin_id), number(cut), flag(query.server_id.has_value()), text(server),
                                 flag(query.runs.has_value()), text(observed), text(names_json)});
      if (runs.empty()) return interrupted;
      const Value message = optional_value(query.message);
      std::vector<std::string> done_jobs;
      for (const auto& row : runs) {
        const std::string& id = row.text(0);
        if (c.execute(queries::interrupt_run, {number(now), number(now), message, text(id)}) == 0) continue;
        done_jobs.push_back(row.text(1));
        if (auto run = find_run(c, query.plugin_id, id)) interrupted.push_back(std::move(*run));
      }
      std::sort(done_jobs.begin(), done_jobs.end());
      done_jobs.erase(std::unique(done_jobs.begin(), done_jobs.end()), done_jobs.end());
      for (const auto& name : done_jobs) {
        c.execute(queries::job_interrupted, {number(now), message, text(query.plugin_id), text(name)});
      }
      if (!interrupted.empty()) wakeups_.changed(query.plugin_id);
      return interrupted;
    });
  }

  std::optional<Run> record_work_end(const std::string& plugin_id, const std::string& run_id,
                                     Timestamp ended) override {
    return run("record_work_end", "run " + quoted(run_id), [&](Connection& c) -> std::optional<Run> {
      if (c.execute(queries::record_work_end, {number(stored(to_micros(ended))), text(run_id), text(plugin_id)}) == 0) {
        return std::nullopt;
      }
      return find_run(c, plugin_id, run_id);
    });
  }

  std::optional<Run> lookup_run(const std::string& plugin_id, const std::string& run_id) override {
    return run("lookup_run", "run " + quoted(run_id), [&](Connection& c) { return find_run(c, plugin_id, run_id); });
  }

  std::vector<Run> list_runs(const RunQuery& query) override {
    return run("list_runs", "plugin " + quoted(query.plugin_id), [&](Connection& c) {
      const std::string job = query.job_name.value_or("");
      const std::string status(query.status ? to_string(*query.status) : "");
      std::vector<Run> runs;
      for (const auto& row :
           c.query(queries::list_runs, {text(query.plugin_id), flag(query.job_name.has_value()), text(job),
                                        flag(query.status.has_value()), text(status), number(limit_of(query.limit))})) {
        runs.push_back(run_from_row(row));
      }
      return runs;
    });
  }

  std::int64_t prune_runs(const std::string& plugin_id, microseconds older_than) override {
    return run("prune_runs", "plugin " + quoted(plugin_id), [&](Connection& c) {
      const Micros cutoff = stored(now_us(c) - older_than.count());
      return static_cast<std::int64_t>(c.execute(queries::prune_runs, {text(plugin_id), number(cutoff)}));
    });
  }

  std::optional<std::int64_t> prune_job_runs(const std::string& plugin_id, const JobRunsPrune& prune) override {
    return run(
        "prune_job_runs", job_subject(plugin_id, prune.job_name), [&](Connection& c) -> std::optional<std::int64_t> {
          if (c.query(queries::job_exists, {text(plugin_id), text(prune.job_name)}).at(0).number(0) == 0) {
            return std::nullopt;
          }
          std::optional<Micros> cutoff;
          if (prune.older_than) cutoff = stored(now_us(c) - prune.older_than->count());
          std::vector<std::string> ids;
          for (const auto& row :
               c.query(queries::runs_to_prune, {text(plugin_id), text(prune.job_name), optional_value(prune.keep_last),
                                                optional_value(cutoff), number(prune.limit)})) {
            ids.push_back(row.text(0));
          }
          if (ids.empty()) return std::int64_t{0};
          std::sort(ids.begin(), ids.end());
          const std::string json = json_array(ids);
          return static_cast<std::int64_t>(
              c.execute(queries::delete_pruned_runs, {text(json), text(plugin_id), text(prune.job_name)}));
        });
  }

  ServerLease record_server(const ServerRecord& record) override {
    return run("record_server", "server " + quoted(record.server_id), [&](Connection& c) {
      auto holder = c.query(queries::lock_server_holder, {text(record.plugin_id), text(record.server_id)});
      const Micros now = now_us(c);
      const Micros expire = stored(now + record.ttl.count());
      if (holder.empty()) {
        try {
          c.execute(queries::insert_server, {text(record.plugin_id), text(record.server_id), text(record.instance),
                                             text(record.address), number(now), number(expire)});
        } catch (const DatabaseError& e) {
          // Another instance's first record committed meanwhile: its row
          // decides, as if it had been there.
          if (error_code_for(e.number(), e.what()) != ErrorCode::not_unique) throw;
          holder = c.query(queries::lock_server_holder, {text(record.plugin_id), text(record.server_id)});
          if (holder.empty()) throw;
        }
      }
      if (!holder.empty()) {
        const std::string& instance = holder.front().text(0);
        if (!instance.empty() && instance != record.instance && !record.take_over) {
          return ServerLease{false, instance, holder.front().text(1), to_timestamp(holder.front().number(2)),
                             to_timestamp(holder.front().number(3))};
        }
        c.execute(queries::update_server, {text(record.instance), text(record.address), number(now), number(expire),
                                           text(record.plugin_id), text(record.server_id)});
      }
      if (record.jobs) {
        const std::string jobs = served_jobs_json(*record.jobs);
        c.execute(queries::forget_served_jobs, {text(record.plugin_id), text(record.server_id)});
        c.execute(queries::record_served_jobs,
                  {text(record.server_id), number(now), text(jobs), text(record.plugin_id)});
      }
      return ServerLease{true, record.instance, record.address, to_timestamp(now), to_timestamp(expire)};
    });
  }

  void remove_server(const std::string& plugin_id, const std::string& server_id, const std::string& instance) override {
    run("remove_server", "server " + quoted(server_id), [&](Connection& c) {
      c.execute(queries::remove_server, {text(plugin_id), text(server_id), text(instance), text(instance)});
      return 0;
    });
  }

  std::vector<Serving> list_servings(const std::string& plugin_id, const std::optional<std::string>& name) override {
    return run("list_servings", "plugin " + quoted(plugin_id), [&](Connection& c) {
      const std::string job = name.value_or("");
      std::vector<Serving> servings;
      for (const auto& row : c.query(queries::list_servings, {number(clock_offset().count()), text(plugin_id),
                                                              flag(name.has_value()), text(job)})) {
        servings.push_back(Serving{row.text(0), row.text(1), row.text(2), to_timestamp(row.number(3)),
                                   to_timestamp(row.number(4)), row.number(5) != 0});
      }
      return servings;
    });
  }

  // Polled: see wakeups.hpp.
  std::unique_ptr<DueSubscription> subscribe_due(const std::string& plugin_id, std::function<void()> on_due) override {
    return wakeups_.subscribe(plugin_id, std::move(on_due));
  }

 private:
  const std::string url_;
  const std::string shown_url_;
  const ConnectOptions connect_options_;
  const StoreOptions options_;
  std::atomic<bool> schema_ok_{false};
  Pool<Connection> pool_;
  // Last: its thread stops before the pool goes.
  DuePoller wakeups_;
};

}  // namespace

}  // namespace jobrepo::mariadb_backend

namespace jobrepo {

std::string redact_mariadb_url(const std::string& url) { return mariadb_backend::read_url(url).shown; }

std::unique_ptr<Store> open_mariadb_store(const std::string& url, const StoreOptions& options) {
  if (url.empty()) throw Error(ErrorCode::invalid_parameter, "open_store: missing MariaDB URL");
  if (const auto problem = store_options_problem(options); !problem.empty()) {
    throw Error(ErrorCode::invalid_parameter, "open_store: " + problem);
  }
  auto read = mariadb_backend::read_url(url);
  if (!read.problem.empty()) {
    throw Error(ErrorCode::invalid_parameter,
                "open_store: invalid MariaDB URL " + shown_text(read.shown) + ": " + read.problem);
  }
  return std::make_unique<mariadb_backend::MariadbStore>(url, std::move(read), options);
}

void register_mariadb_backend() {
  static std::once_flag once;
  std::call_once(once, [] {
    const auto factory = [](const std::string& url, const StoreOptions& options) {
      return open_mariadb_store(url, options);
    };
    register_backend("mariadb", factory, redact_mariadb_url);
    register_backend("mysql", factory, redact_mariadb_url);
  });
}

}  // namespace jobrepo
