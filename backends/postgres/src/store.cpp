#include "store.hpp"

#include "connection.hpp"
#include "errors.hpp"
#include "queries.hpp"
#include "store_support.hpp"
#include "transaction.hpp"
#include "url.hpp"
#include "wakeups.hpp"

#include <jobrepo/error.hpp>
#include <jobrepo/text.hpp>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <utility>

namespace jobrepo::postgres_backend {

namespace {

using std::chrono::microseconds;
using namespace store_support;  // NOLINT(google-build-using-namespace)

// Any fixed number: the advisory lock migrate() holds, so that servers that
// start at once migrate one after the other.
constexpr long long migration_lock_key = 0x6a6f627265706fLL;  // "jobrepo"

// One row of a Result, from column `first` on, as run_from_row() and
// job_from_row() read it.
struct ResultRow {
  const Result& result;
  int row;
  int first = 0;
  bool null(int i) const { return result.null(row, first + i); }
  long long number(int i) const { return result.number(row, first + i); }
  std::string text(int i) const { return result.text(row, first + i); }
  std::optional<std::string> optional_text(int i) const { return result.optional_text(row, first + i); }
};

Run to_run(const Result& r, int row, int first = 0) { return run_from_row(ResultRow{r, row, first}); }

std::vector<Run> to_runs(const Result& r) {
  std::vector<Run> runs;
  runs.reserve(static_cast<std::size_t>(r.rows()));
  for (int row = 0; row < r.rows(); ++row) runs.push_back(to_run(r, row));
  return runs;
}

Job to_job(const Result& r, int row) { return job_from_row(ResultRow{r, row}); }

std::optional<Job> first_job(const Result& r) {
  if (r.rows() == 0) return std::nullopt;
  return to_job(r, 0);
}

std::optional<Run> first_run(const Result& r) {
  if (r.rows() == 0) return std::nullopt;
  return to_run(r, 0);
}

// A due time as the statements bind it (queries.hpp JR_DUE): `at`, NULL
// unless absolute, and `delta` (the clock offset included).
Value due_at(const Due& due) { return due.at ? Value(to_micros(*due.at)) : Value(std::monostate{}); }
Value due_delta(const Due& due, microseconds clock_offset) { return clock_offset.count() + due.in.count(); }

// The changes as the JSON array update_runs_batch reads.
std::string changes_json(std::span<const RunTransition> changes) {
  std::string out = "[";
  for (std::size_t i = 0; i < changes.size(); ++i) {
    const auto& change = changes[i];
    if (i > 0) out.push_back(',');
    out.append("{\"ord\":").append(std::to_string(i)).append(",\"id\":");
    append_json_string(out, change.run_id);
    out.append(",\"plugin\":");
    append_json_string(out, change.plugin_id);
    out.append(",\"status\":");
    append_json_string(out, to_string(change.to));
    out.append(",\"final\":").append(is_final(change.to) ? "1" : "0");
    out.append(",\"completed\":").append(change.completed_count ? std::to_string(*change.completed_count) : "null");
    out.append(",\"total\":").append(change.total_count ? std::to_string(*change.total_count) : "null");
    out.append(",\"message\":");
    if (change.message) {
      append_json_string(out, *change.message);
    } else {
      out.append("null");
    }
    out.append(",\"reschedule\":").append(change.reschedule ? "1" : "0");
    out.append(",\"delta\":").append(std::to_string(change.reschedule ? change.reschedule->in.count() : 0));
    out.append(",\"at\":")
        .append(change.reschedule && change.reschedule->at ? std::to_string(to_micros(*change.reschedule->at))
                                                           : "null");
    out.push_back('}');
  }
  out.push_back(']');
  return out;
}

bool has_duplicate_runs(std::span<const RunTransition> changes) {
  std::vector<std::string_view> ids;
  ids.reserve(changes.size());
  for (const auto& change : changes) ids.emplace_back(change.run_id);
  std::sort(ids.begin(), ids.end());
  return std::adjacent_find(ids.begin(), ids.end()) != ids.end();
}

// The URL rewritten as an equivalent libpq URI whose values are all
// percent-encoded query parameters: SOCI split its connect string at spaces
// and '=' before handing it to libpq, which mangles quoted keyword values and
// URIs without a query. Also names the application "jobrepo" in
// pg_stat_activity unless the URL names one. `shown` is the URL for messages.
std::string connection_uri(const std::string& url, const std::string& shown) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(url.c_str(), &error);
  if (options == nullptr) {
    std::string message = error ? error : "out of memory";
    PQfreemem(error);
    while (!message.empty() && message.back() == '\n') message.pop_back();
    throw Error(ErrorCode::invalid_parameter,
                "open_store: invalid PostgreSQL URL " + shown + ": " + scrub_message(message, url, "", shown));
  }
  std::string uri = "postgresql://?fallback_application_name=jobrepo";
  static constexpr char hex[] = "0123456789ABCDEF";
  for (const PQconninfoOption* option = options; option->keyword != nullptr; ++option) {
    if (option->val == nullptr || std::string_view(option->keyword) == "fallback_application_name") continue;
    uri.append("&").append(option->keyword).append("=");
    for (const char c : std::string_view(option->val)) {
      const auto u = static_cast<unsigned char>(c);
      if (std::isalnum(u) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
        uri.push_back(c);
      } else {
        uri.push_back('%');
        uri.push_back(hex[u >> 4U]);
        uri.push_back(hex[u & 0xFU]);
      }
    }
  }
  PQconninfoFree(options);
  return uri;
}

class PostgresStore final : public Store {
  std::unique_ptr<Connection> connect() {
    try {
      // The hot path's statements are cancelled after busy_timeout (at
      // least 1 s): a claim or a batch of run changes that waits on a lock
      // or runs on a plan gone bad fails with busy instead of holding every
      // completion of this server (Scheduler: tried again, reported).
      return std::make_unique<Connection>(
          connection_uri_, std::max<std::chrono::milliseconds>(options_.busy_timeout, std::chrono::seconds(1)));
    } catch (const DatabaseError& e) {
      // libpq's message names parts of the URL (host, port, user, database),
      // which read_url() found clear of the password.
      std::string message = scrub_message(e.what(), url_, connection_uri_, shown_url_);
      std::replace(message.begin(), message.end(), '\n', ' ');
      throw Error(ErrorCode::unavailable, "cannot connect to " + shown_text(shown_url_) + ": " + message);
    }
  }

  static int schema_version(Connection& c) {
    const auto r = c.query(queries::schema_version, {});
    return r.rows() == 0 || r.null(0, 0) ? 0 : static_cast<int>(r.number(0, 0));
  }

  void check_schema(const char* operation, Connection& connection) {
    if (schema_ok_) return;
    check_schema_version(operation, schema_version(connection), migrations());
    schema_ok_ = true;
  }

  // Runs `body(connection)` with a pooled connection (a body of several
  // statements holds its own transaction: in_transaction()). Serialization
  // failures and deadlocks are retried (Retry, transaction.hpp). A
  // broken connection is closed with every idle one (after a server restart
  // they are all dead) and the call fails with `unavailable`; so is a
  // read-only one.
  template <class Body>
  auto run(const char* operation, const std::string& subject, Body&& body, bool check = true) {
    for (Retry retry(options_.busy_timeout);;) {
      auto lease = pool_.acquire_for(operation);
      std::string sqlstate;
      std::string message;
      try {
        if (check) check_schema(operation, *lease);
        return body(*lease);
      } catch (const DatabaseError& e) {
        sqlstate = e.sqlstate();
        message = e.what();
      }
      if (lease->broken()) {
        lease.discard();
        pool_.clear_idle();
        throw make_error(operation, subject, "", first_line(message));
      }
      if (sqlstate == "25006") {
        // Read-only: a connection keeps the default_transaction_read_only
        // it began with after the database takes writes again, so those
        // that met it go; new ones get the current setting.
        lease.discard();
        pool_.clear_idle();
        throw make_error(operation, subject, sqlstate, first_line(message));
      }
      if (is_retryable(sqlstate) && retry.again()) continue;
      throw make_error(operation, subject, sqlstate, first_line(message));
    }
  }

  static std::string first_line(const std::string& text) {
    // libpq's messages end with a newline and may add DETAIL/HINT lines.
    std::string line = text.substr(0, text.find('\n'));
    const auto error = line.find("ERROR:  ");
    if (error != std::string::npos) line = line.substr(error + 8);
    return line;
  }

  Value clock() const { return clock_offset().count(); }

  const std::string url_;
  const std::string shown_url_;
  const std::string connection_uri_;
  const StoreOptions options_;
  std::atomic<bool> schema_ok_{false};
  Pool<Connection> pool_;
  // Declared in this order so that the listener (which calls the notifier's
  // subscribers) stops first.
  DueNotifier due_;
  std::mutex listener_mutex_;
  std::unique_ptr<DueListener> listener_;

 public:
  PostgresStore(std::string url, const StoreOptions& options)
      : url_(std::move(url)),
        shown_url_(redact_postgres_url(url_)),
        connection_uri_(connection_uri(url_, shown_url_)),
        options_(options),
        pool_(options.pool_size > 0 ? options.pool_size : 4, [this] { return connect(); }) {
    // Connect now, so that a bad URL or an unreachable server fails here.
    auto lease = pool_.acquire_for("open_store");
  }

  StoreContract8 contract() const override { return {}; }

  void migrate() override {
    run(
        "migrate", "",
        [&](Connection& c) {
          return in_transaction(c, [&] {
            c.query(queries::lock_migration, {{"key", number(migration_lock_key)}});
            // No DDL unless something is missing: a runtime role without
            // CREATE rights may call migrate() on an up-to-date database.
            if (c.query(queries::has_schema_table, {}).number(0, 0) == 0) c.run_script(queries::create_schema_table);
            apply_migrations(schema_version(c), migrations(), [&](const Migration& migration) {
              c.run_script(std::string(migration.sql));
              const std::string name(migration.name);
              c.query(queries::record_schema_version, {{"version", number(migration.version)}, {"name", text(name)}});
            });
            return 0;
          });
        },
        /*check=*/false);
    schema_ok_ = true;
  }

  Timestamp now() override {
    return run("now", "database " + shown_text(shown_url_), [&](Connection& c) {
      return to_timestamp(c.query(queries::now, {{"clock", clock()}}).number(0, 0));
    });
  }

  Job create_job(const NewJob& job) override {
    return run("create_job", job_subject(job.plugin_id, job.name), [&](Connection& c) {
      const auto r = c.query(queries::create_job, {{"plugin", text(job.plugin_id)},
                                                   {"name", text(job.name)},
                                                   {"description", text(job.description)},
                                                   {"schedule", text(job.schedule)},
                                                   {"delta", due_delta(job.due, clock_offset())},
                                                   {"at", due_at(job.due)}});
      return Job{job.plugin_id, job.name, job.description, to_timestamp(r.number(0, 0)), job.schedule};
    });
  }

  Job ensure_job(const NewJob& job) override {
    return run("ensure_job", job_subject(job.plugin_id, job.name), [&](Connection& c) {
      const auto r = c.query(queries::ensure_job, {{"plugin", text(job.plugin_id)},
                                                   {"name", text(job.name)},
                                                   {"description", text(job.description)},
                                                   {"schedule", text(job.schedule)},
                                                   {"delta", due_delta(job.due, clock_offset())},
                                                   {"at", due_at(job.due)}});
      return to_job(r, 0);
    });
  }

  std::optional<Job> lookup_job(const std::string& plugin_id, const std::string& name) override {
    return run("lookup_job", job_subject(plugin_id, name), [&](Connection& c) {
      return first_job(c.query(queries::lookup_job, {{"plugin", text(plugin_id)}, {"name", text(name)}}));
    });
  }

  std::vector<Job> list_jobs(const JobQuery& query) override {
    return run("list_jobs", "plugin " + quoted(query.plugin_id), [&](Connection& c) {
      const std::string name = query.name.value_or("");
      const auto r = c.query(queries::list_jobs, {{"plugin", text(query.plugin_id)},
                                                  {"filtered", flag(query.name.has_value())},
                                                  {"name", text(name)},
                                                  {"limit", query.limit < 0 ? Value() : number(query.limit)}});
      std::vector<Job> jobs;
      jobs.reserve(static_cast<std::size_t>(r.rows()));
      for (int row = 0; row < r.rows(); ++row) jobs.push_back(to_job(r, row));
      return jobs;
    });
  }

  std::optional<Job> reschedule_job(const std::string& plugin_id, const std::string& name, const Due& due) override {
    return run("update_job_next_run", job_subject(plugin_id, name), [&](Connection& c) {
      return first_job(c.query(queries::reschedule_job, {{"plugin", text(plugin_id)},
                                                         {"name", text(name)},
                                                         {"delta", due_delta(due, clock_offset())},
                                                         {"at", due_at(due)}}));
    });
  }

  bool delete_job(const std::string& plugin_id, const std::string& name) override {
    return run("delete_job", job_subject(plugin_id, name), [&](Connection& c) {
      return c.query(queries::delete_job, {{"plugin", text(plugin_id)}, {"name", text(name)}}).changed() > 0;
    });
  }

  std::vector<Run> list_runs(const RunQuery& query) override {
    return run("list_runs", "plugin " + quoted(query.plugin_id), [&](Connection& c) {
      const std::string job = query.job_name.value_or("");
      const std::string status(query.status ? to_string(*query.status) : "");
      return to_runs(c.query(queries::list_runs, {{"plugin", text(query.plugin_id)},
                                                  {"has_job", flag(query.job_name.has_value())},
                                                  {"job", text(job)},
                                                  {"has_status", flag(query.status.has_value())},
                                                  {"status", text(status)},
                                                  {"limit", query.limit < 0 ? Value() : number(query.limit)}}));
    });
  }

  std::int64_t prune_runs(const std::string& plugin_id, microseconds older_than) override {
    return run("prune_runs", "plugin " + quoted(plugin_id), [&](Connection& c) {
      return static_cast<std::int64_t>(
          c.query(queries::prune_runs,
                  {{"plugin", text(plugin_id)}, {"delta", number(clock_offset().count() - older_than.count())}})
              .changed());
    });
  }

  std::optional<std::int64_t> prune_job_runs(const std::string& plugin_id, const JobRunsPrune& prune) override {
    return run(
        "prune_job_runs", job_subject(plugin_id, prune.job_name), [&](Connection& c) -> std::optional<std::int64_t> {
          const auto r = c.query(
              queries::prune_job_runs,
              {{"plugin", text(plugin_id)},
               {"name", text(prune.job_name)},
               {"keep", optional_value(prune.keep_last)},
               {"delta", prune.older_than ? number(clock_offset().count() - prune.older_than->count()) : Value()},
               {"limit", number(prune.limit)}});
          if (r.number(0, 0) == 0) return std::nullopt;
          return r.number(0, 1);
        });
  }

  std::vector<Run> claim_runs(const ClaimRequest& request) override {
    return run("run_jobs", "server " + quoted(request.server_id), [&](Connection& c) {
      const std::string names = request.only_jobs ? json_array(*request.only_jobs) : "[]";
      return to_runs(c.query(queries::claim_runs, {{"clock", clock()},
                                                   {"plugin", text(request.plugin_id)},
                                                   {"filtered", flag(request.only_jobs.has_value())},
                                                   {"names", text(names)},
                                                   {"served", flag(request.served_only)},
                                                   {"served_by", text(request.server_id)},
                                                   {"limit", request.limit < 0 ? Value() : number(request.limit)},
                                                   {"server", text(request.server_id)}}));
    });
  }

  // Changes (of distinct runs) in one statement, update_runs_batch: the
  // only statement that changes runs. Element i of the result is change i's.
  std::vector<std::optional<Run>> apply_changes(Connection& c, std::span<const RunTransition> changes) {
    const std::string json = changes_json(changes);
    const auto r = c.query(queries::update_runs_batch, {{"clock", clock()}, {"changes", text(json)}});
    std::vector<std::optional<Run>> results(changes.size());
    for (int row = 0; row < r.rows(); ++row) {
      const long long ord = r.number(row, 0);
      // The run's columns follow its position.
      if (ord >= 0 && static_cast<std::size_t>(ord) < results.size()) {
        results[static_cast<std::size_t>(ord)] = to_run(r, row, 1);
      }
    }
    return results;
  }

  std::vector<std::optional<Run>> transition_runs(std::span<const RunTransition> changes) override {
    const std::string subject =
        changes.size() == 1 ? "run " + quoted(changes.front().run_id) : std::to_string(changes.size()) + " runs";
    return run("update_run", subject, [&](Connection& c) {
      // One statement, one round trip, whatever the number of runs; changes
      // of one run more than once apply in order, one statement each, in
      // one transaction.
      if (!has_duplicate_runs(changes)) return apply_changes(c, changes);
      return in_transaction(c, [&] {
        std::vector<std::optional<Run>> results;
        results.reserve(changes.size());
        for (std::size_t i = 0; i < changes.size(); ++i)
          results.push_back(apply_changes(c, changes.subspan(i, 1)).at(0));
        return results;
      });
    });
  }

  std::vector<Run> interrupt_stale_runs(const StaleRunQuery& query) override {
    return run("interrupt_runs", "plugin " + quoted(query.plugin_id), [&](Connection& c) {
      const std::string runs = query.runs ? observed_runs_json(*query.runs) : "[]";
      const std::string server = query.server_id.value_or("");
      return to_runs(c.query(queries::interrupt_stale_runs, {{"clock", clock()},
                                                             {"message", optional_value(query.message)},
                                                             {"plugin", text(query.plugin_id)},
                                                             {"threshold", number(query.threshold.count())},
                                                             {"filtered", flag(query.server_id.has_value())},
                                                             {"server", text(server)},
                                                             {"observed", flag(query.runs.has_value())},
                                                             {"runs", text(runs)}}));
    });
  }

  // LISTEN on a connection of its own (not from the pool), opened by the
  // first subscription and kept until the store is destroyed.
  std::unique_ptr<DueSubscription> subscribe_due(const std::string& plugin_id, std::function<void()> on_due) override {
    auto subscription = due_.subscribe(plugin_id, std::move(on_due));
    const std::lock_guard lock(listener_mutex_);
    if (!listener_) listener_ = std::make_unique<DueListener>(connection_uri_, due_);
    return subscription;
  }

  std::optional<Job> set_job_paused(const std::string& plugin_id, const std::string& name, bool paused) override {
    return run(paused ? "pause_job" : "resume_job", job_subject(plugin_id, name), [&](Connection& c) {
      return first_job(c.query(queries::set_job_paused,
                               {{"paused", flag(paused)}, {"plugin", text(plugin_id)}, {"name", text(name)}}));
    });
  }

  std::optional<Job> request_run(const std::string& plugin_id, const std::string& name,
                                 const std::optional<std::string>& payload) override {
    return run("run_now", job_subject(plugin_id, name), [&](Connection& c) {
      return in_transaction(c, [&]() -> std::optional<Job> {
        if (c.query(queries::lock_job, {{"plugin", text(plugin_id)}, {"name", text(name)}}).rows() == 0) {
          return std::nullopt;
        }
        auto changed = first_job(c.query(queries::request_run, {{"clock", clock()},
                                                                {"plugin", text(plugin_id)},
                                                                {"name", text(name)},
                                                                {"payload", optional_value(payload)}}));
        if (changed) return changed;
        // Another payload waits for a claim: the job as it is (locked above).
        return first_job(c.query(queries::lookup_job, {{"plugin", text(plugin_id)}, {"name", text(name)}}));
      });
    });
  }

  std::optional<Run> request_cancel(const std::string& plugin_id, const std::string& run_id) override {
    return run("cancel_run", "run " + quoted(run_id), [&](Connection& c) {
      return first_run(c.query(queries::request_cancel, {{"id", text(run_id)}, {"plugin", text(plugin_id)}}));
    });
  }

  ServerLease record_server(const ServerRecord& record) override {
    return run("record_server", "server " + quoted(record.server_id), [&](Connection& c) {
      return in_transaction(c, [&] {
        const auto written = c.query(queries::record_server, {{"clock", clock()},
                                                              {"plugin", text(record.plugin_id)},
                                                              {"server", text(record.server_id)},
                                                              {"instance", text(record.instance)},
                                                              {"address", text(record.address)},
                                                              {"ttl", number(record.ttl.count())},
                                                              {"take_over", flag(record.take_over)}});
        if (written.rows() == 0) {
          ServerLease lease;
          const auto holder =
              c.query(queries::server_holder, {{"plugin", text(record.plugin_id)}, {"server", text(record.server_id)}});
          if (holder.rows() > 0) {
            lease.instance = holder.text(0, 0);
            lease.address = holder.text(0, 1);
            lease.seen_time = to_timestamp(holder.number(0, 2));
            lease.expire_time = to_timestamp(holder.number(0, 3));
          }
          return lease;
        }
        const long long seen = written.number(0, 0);
        if (record.jobs) {
          const std::string jobs = served_jobs_json(*record.jobs);
          c.query(queries::forget_served_jobs,
                  {{"plugin", text(record.plugin_id)}, {"server", text(record.server_id)}});
          c.query(queries::record_served_jobs, {{"server", text(record.server_id)},
                                                {"seen", number(seen)},
                                                {"jobs", text(jobs)},
                                                {"plugin", text(record.plugin_id)}});
        }
        return ServerLease{true, record.instance, record.address, to_timestamp(seen),
                           to_timestamp(written.number(0, 1))};
      });
    });
  }

  void remove_server(const std::string& plugin_id, const std::string& server_id, const std::string& instance) override {
    run("remove_server", "server " + quoted(server_id), [&](Connection& c) {
      c.query(queries::remove_server,
              {{"plugin", text(plugin_id)}, {"server", text(server_id)}, {"instance", text(instance)}});
      return 0;
    });
  }

  std::optional<Run> record_work_end(const std::string& plugin_id, const std::string& run_id,
                                     Timestamp ended) override {
    return run("record_work_end", "run " + quoted(run_id), [&](Connection& c) {
      return first_run(
          c.query(queries::record_work_end,
                  {{"ended", number(to_micros(ended))}, {"id", text(run_id)}, {"plugin", text(plugin_id)}}));
    });
  }

  std::vector<Serving> list_servings(const std::string& plugin_id, const std::optional<std::string>& name) override {
    return run("list_servings", "plugin " + quoted(plugin_id), [&](Connection& c) {
      const std::string job = name.value_or("");
      const auto r = c.query(
          queries::list_servings,
          {{"clock", clock()}, {"plugin", text(plugin_id)}, {"filtered", flag(name.has_value())}, {"name", text(job)}});
      std::vector<Serving> servings;
      for (int row = 0; row < r.rows(); ++row) {
        servings.push_back(Serving{r.text(row, 0), r.text(row, 1), r.text(row, 2), to_timestamp(r.number(row, 3)),
                                   to_timestamp(r.number(row, 4)), r.number(row, 5) != 0});
      }
      return servings;
    });
  }

  std::optional<Run> lookup_run(const std::string& plugin_id, const std::string& run_id) override {
    return run("lookup_run", "run " + quoted(run_id), [&](Connection& c) {
      return first_run(c.query(queries::lookup_run, {{"id", text(run_id)}, {"plugin", text(plugin_id)}}));
    });
  }
};

}  // namespace

}  // namespace jobrepo::postgres_backend

namespace jobrepo {

std::string redact_postgres_url(const std::string& url) { return postgres_backend::read_url(url).shown; }

std::unique_ptr<Store> open_postgres_store(const std::string& url, const StoreOptions& options) {
  if (url.empty()) throw Error(ErrorCode::invalid_parameter, "open_store: missing PostgreSQL URL");
  if (const auto problem = store_options_problem(options); !problem.empty()) {
    throw Error(ErrorCode::invalid_parameter, "open_store: " + problem);
  }
  // libpq would quote parts of an unclear URL in its messages, or read a
  // password otherwise than meant: refused before libpq sees it.
  if (const auto read = postgres_backend::read_url(url); !read.problem.empty()) {
    throw Error(ErrorCode::invalid_parameter,
                "open_store: invalid PostgreSQL URL " + shown_text(read.shown) + ": " + read.problem);
  }
  return std::make_unique<postgres_backend::PostgresStore>(url, options);
}

void register_postgres_backend() {
  static std::once_flag once;
  std::call_once(once, [] {
    const auto factory = [](const std::string& url, const StoreOptions& options) {
      return open_postgres_store(url, options);
    };
    register_backend("postgresql", factory, redact_postgres_url);
    register_backend("postgres", factory, redact_postgres_url);
  });
}

}  // namespace jobrepo
