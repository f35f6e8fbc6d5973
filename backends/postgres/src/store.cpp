#include "store.hpp"

#include "errors.hpp"
#include "listener.hpp"
#include "queries.hpp"
#include "soci_support.hpp"
#include "url.hpp"

#include <jobrepo/error.hpp>

#include <soci/postgresql/soci-postgresql.h>
#include <soci/soci.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <mutex>
#include <random>
#include <thread>
#include <utility>

namespace jobrepo::postgres_backend {

namespace {

using std::chrono::microseconds;
using namespace soci_support;

// Any fixed number: the advisory lock migrate() holds, so that servers that
// start at once migrate one after the other.
constexpr long long migration_lock_key = 0x6a6f627265706fLL;  // "jobrepo"

template <class... Values>
void use_all(soci::statement& st, Values&... values) {
  (st.exchange(soci::use(values)), ...);
}

// Each statement is prepared once per connection, bound to the buffers of
// its struct; a call fills the inputs, executes, and reads the outputs.
// A due time as the statements bind it (queries.hpp JR_DUE): `at` first,
// NULL unless absolute, then `delta` (the clock offset included).
struct DueParameters {
  Micros at = 0, delta = 0;
  soci::indicator at_ind = soci::i_null;
  void bind(soci::statement& st) {
    st.exchange(soci::use(at, at_ind));
    st.exchange(soci::use(delta));
  }
  void set(const Due& due, std::chrono::microseconds clock_offset) {
    at = due.at ? to_micros(*due.at) : 0;
    at_ind = due.at ? soci::i_ok : soci::i_null;
    delta = clock_offset.count() + due.in.count();
  }
};

struct CreateJobStatement {
  std::string plugin, name, description, schedule;
  DueParameters due;
  Micros next = 0;
  soci::statement st;
  explicit CreateJobStatement(soci::session& sql) : st(sql) {
    st.exchange(soci::into(next));
    use_all(st, plugin, name, description, schedule);
    due.bind(st);
    prepare(st, queries::create_job);
  }
};

struct EnsureJobStatement {
  JobRow row;
  std::string plugin, name, description, schedule;
  DueParameters due;
  soci::statement st;
  explicit EnsureJobStatement(soci::session& sql) : st(sql) {
    row.bind(st);
    use_all(st, plugin, name, description, schedule);
    due.bind(st);
    prepare(st, queries::ensure_job);
  }
};

struct LookupJobStatement {
  JobRow row;
  std::string plugin, name;
  soci::statement st;
  explicit LookupJobStatement(soci::session& sql) : st(sql) {
    row.bind(st);
    use_all(st, plugin, name);
    prepare(st, queries::lookup_job);
  }
};

struct ListJobsStatement {
  JobRow row;
  std::string plugin, name;
  int filtered = 0;
  long long limit = 0;
  soci::indicator limit_ind = soci::i_ok;
  soci::statement st;
  explicit ListJobsStatement(soci::session& sql) : st(sql) {
    row.bind(st);
    use_all(st, plugin, filtered, name);
    st.exchange(soci::use(limit, limit_ind));
    prepare(st, queries::list_jobs);
  }
};

struct RescheduleStatement {
  JobRow row;
  DueParameters due;
  std::string plugin, name;
  soci::statement st;
  explicit RescheduleStatement(soci::session& sql) : st(sql) {
    row.bind(st);
    due.bind(st);
    use_all(st, plugin, name);
    prepare(st, queries::reschedule_job);
  }
};

// The hot path (claim, run updates) goes to libpq directly: SOCI's
// per-call conversions cost as much CPU as libpq itself (callgrind of the
// claim cycle), and on a small machine the client's CPU is the server's.

// `query` with SOCI's :name placeholders numbered $1, $2... in order of
// appearance (each occurrence is a parameter of its own, as SOCI binds them).
std::string numbered_placeholders(std::string_view query, int& count) {
  std::string out;
  count = 0;
  for (std::size_t i = 0; i < query.size(); ++i) {
    const bool starts = query[i] == ':' && i + 1 < query.size() &&
                        (std::islower(static_cast<unsigned char>(query[i + 1])) != 0 || query[i + 1] == '_') &&
                        (i == 0 || query[i - 1] != ':');
    if (!starts) {
      out.push_back(query[i]);
      continue;
    }
    out += "$" + std::to_string(++count);
    while (i + 1 < query.size() &&
           (std::isalnum(static_cast<unsigned char>(query[i + 1])) != 0 || query[i + 1] == '_')) {
      ++i;
    }
  }
  return out;
}

// A PGresult, cleared when it goes.
class NativeResult {
 public:
  explicit NativeResult(PGresult* result) : result_(result) {}
  NativeResult(NativeResult&& other) noexcept : result_(std::exchange(other.result_, nullptr)) {}
  NativeResult(const NativeResult&) = delete;
  NativeResult& operator=(const NativeResult&) = delete;
  NativeResult& operator=(NativeResult&&) = delete;
  ~NativeResult() { PQclear(result_); }
  int rows() const { return PQntuples(result_); }
  const char* text(int row, int column) const { return PQgetvalue(result_, row, column); }
  bool null(int row, int column) const { return PQgetisnull(result_, row, column) != 0; }
  long long number(int row, int column) const { return std::strtoll(text(row, column), nullptr, 10); }

  // The run in columns JR_RUN_COLUMNS of `row`.
  Run run(int row) const {
    Run run{text(row, 0),
            text(row, 1),
            text(row, 2),
            text(row, 3),
            to_timestamp(number(row, 4)),
            to_timestamp(number(row, 5)),
            std::nullopt,
            number(row, 7),
            number(row, 8),
            Status::running};
    if (!null(row, 6)) run.end_time = to_timestamp(number(row, 6));
    const auto status = parse_status(text(row, 9));
    if (!status) {
      throw Error(ErrorCode::internal, "run " + quoted(run.private_id) + " has unknown status " + text(row, 9));
    }
    run.status = *status;
    if (!null(row, 10)) run.message = text(row, 10);
    run.attempt = number(row, 11);
    run.cancel_requested = number(row, 12) != 0;
    if (!null(row, 13)) run.work_end_time = to_timestamp(number(row, 13));
    if (!null(row, 14))
      run.payload = std::string(text(row, 14), static_cast<std::size_t>(PQgetlength(result_, row, 14)));
    return run;
  }

 private:
  PGresult* result_;
};

// A statement prepared on one connection with PQprepare; its parameters go
// as text (nullptr: NULL). Failures throw soci::postgresql_soci_error, so
// that the store's retry and error mapping treat them as SOCI's.
class NativeStatement {
 public:
  NativeStatement(PGconn* connection, std::string name, std::string_view query)
      : connection_(connection), name_(std::move(name)) {
    const std::string text = numbered_placeholders(query, parameters_);
    check(PQprepare(connection_, name_.c_str(), text.c_str(), parameters_, nullptr));
  }

  NativeResult execute(std::initializer_list<const char*> values) const {
    if (static_cast<int>(values.size()) != parameters_) {
      throw Error(ErrorCode::internal, "statement " + name_ + ": " + std::to_string(values.size()) + " values for " +
                                           std::to_string(parameters_) + " parameters");
    }
    return check(PQexecPrepared(connection_, name_.c_str(), parameters_, std::data(values), nullptr, nullptr, 0));
  }

 private:
  static NativeResult check(PGresult* result) {
    NativeResult owned(result);
    const auto status = PQresultStatus(result);
    if (result == nullptr || (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)) {
      const char* sqlstate = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
      throw soci::postgresql_soci_error(result ? PQresultErrorMessage(result) : "no result from the server",
                                        sqlstate ? sqlstate : "     ");
    }
    return owned;
  }

  PGconn* connection_;
  std::string name_;
  int parameters_ = 0;
};

struct UpdateRunsBatchStatement {
  int ord = 0;
  RunRow row;
  Micros clock = 0;
  std::string changes;  // JSON
  soci::statement st;
  explicit UpdateRunsBatchStatement(soci::session& sql) : st(sql) {
    st.exchange(soci::into(ord));
    row.bind(st);
    use_all(st, clock, changes);
    prepare(st, queries::update_runs_batch);
  }
};

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

struct InterruptStatement {
  RunRow row;
  Micros clock = 0;
  std::string message;
  soci::indicator message_ind = soci::i_null;
  std::string plugin;
  Micros threshold = 0;
  int filtered = 0;
  std::string server;
  int observed = 0;
  std::string runs;  // JSON: [{"id", "updated"}...]
  soci::statement st;
  explicit InterruptStatement(soci::session& sql) : st(sql) {
    row.bind(st);
    use_all(st, clock);
    st.exchange(soci::use(message, message_ind));
    use_all(st, plugin, threshold, filtered, server, observed, runs);
    prepare(st, queries::interrupt_stale_runs);
  }
};

struct LookupRunStatement {
  RunRow row;
  std::string id, plugin;
  soci::statement st;
  explicit LookupRunStatement(soci::session& sql) : st(sql) {
    row.bind(st);
    use_all(st, id, plugin);
    prepare(st, queries::lookup_run);
  }
};

// One connection and the statements prepared on it. The statements are
// declared after the session, so they are destroyed (deallocated) first.
struct Connection {
  explicit Connection(const std::string& url) : sql(soci::postgresql, url) {}
  soci::session sql;
  std::unique_ptr<CreateJobStatement> create_job;
  std::unique_ptr<EnsureJobStatement> ensure_job;
  std::unique_ptr<LookupJobStatement> lookup_job;
  std::unique_ptr<ListJobsStatement> list_jobs;
  std::unique_ptr<RescheduleStatement> reschedule;
  std::unique_ptr<NativeStatement> claim;
  std::unique_ptr<NativeStatement> update_run;
  std::unique_ptr<NativeStatement> update_run_and_job;
  std::unique_ptr<UpdateRunsBatchStatement> update_runs_batch;
  std::unique_ptr<InterruptStatement> interrupt;
  std::unique_ptr<LookupRunStatement> lookup_run;

  PGconn* native() { return static_cast<soci::postgresql_session_backend*>(sql.get_backend())->conn_; }
  bool broken() { return PQstatus(native()) != CONNECTION_OK; }

  // SOCI 4.0.3 formats each bound value into a buffer before a statement
  // runs and frees it only after the statement succeeded; the next run
  // allocates a new one. So a SOCI statement that failed (a unique
  // violation, say) is dropped, which frees its buffers, and is prepared
  // again when next used. (The libpq statements keep nothing.)
  void drop_soci_statements() {
    create_job.reset();
    ensure_job.reset();
    lookup_job.reset();
    list_jobs.reset();
    reschedule.reset();
    update_runs_batch.reset();
    interrupt.reset();
    lookup_run.reset();
  }
};

// The statement in `slot`, made from `args` at first use on its connection.
template <class S, class... Args>
S& prepared(std::unique_ptr<S>& slot, Args&&... args) {
  if (!slot) slot = std::make_unique<S>(std::forward<Args>(args)...);
  return *slot;
}

// Runs SQL (possibly several statements, no parameters) on the native handle.
void exec_native(Connection& connection, const std::string& text) {
  PGresult* result = PQexec(connection.native(), text.c_str());
  const auto status = PQresultStatus(result);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    const char* sqlstate = PQresultErrorField(result, PG_DIAG_SQLSTATE);
    std::string message = PQresultErrorMessage(result);
    PQclear(result);
    throw soci::postgresql_soci_error(message, sqlstate ? sqlstate : "     ");
  }
  PQclear(result);
}

// The URL rewritten as an equivalent libpq URI whose values are all
// percent-encoded query parameters: SOCI splits its connect string at spaces
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
      auto connection = std::make_unique<Connection>(connection_uri_);
      PQsetNoticeProcessor(connection->native(), ignore_notice, nullptr);
      return connection;
    } catch (const soci::soci_error& e) {
      // libpq's message names parts of the URL (host, port, user, database),
      // which read_url() found clear of the password.
      std::string message = scrub_message(e.get_error_message(), url_, connection_uri_, shown_url_);
      std::replace(message.begin(), message.end(), '\n', ' ');
      throw Error(ErrorCode::unavailable, "cannot connect to " + shown_url_ + ": " + message);
    }
  }

  // A pooled connection; a failure to open one names the operation.
  Pool<Connection>::Lease acquire(const char* operation) {
    try {
      return pool_.acquire();
    } catch (const Error& e) {
      throw Error(e.code(), std::string(operation) + ": " + e.what(), e.native_code());
    }
  }

  static int schema_version(Connection& connection) {
    int version = 0;
    soci::indicator ind = soci::i_null;
    connection.sql << queries::schema_version, soci::into(version, ind);
    return ind == soci::i_ok ? version : 0;
  }

  void check_schema(const char* operation, Connection& connection) {
    if (schema_ok_) return;
    check_schema_version(operation, schema_version(connection), migrations());
    schema_ok_ = true;
  }

  // Runs `body(connection)` with a pooled connection. Serialization failures
  // and deadlocks are retried until busy_timeout has passed. A broken
  // connection is closed with every idle one (after a server restart they
  // are all dead) and the call fails with `unavailable`; so is a read-only one.
  template <class Body>
  auto run(const char* operation, const std::string& subject, Body&& body, bool check = true) {
    const auto deadline = std::chrono::steady_clock::now() + options_.busy_timeout;
    std::minstd_rand jitter(static_cast<unsigned>(std::hash<std::thread::id>{}(std::this_thread::get_id())));
    for (;;) {
      auto lease = acquire(operation);
      std::string sqlstate;
      std::string message;
      try {
        if (check) check_schema(operation, *lease);
        return body(*lease);
      } catch (const soci::postgresql_soci_error& e) {
        sqlstate = e.sqlstate();
        if (sqlstate.find_first_not_of(' ') == std::string::npos) sqlstate.clear();
        message = e.get_error_message();
      } catch (const soci::soci_error& e) {
        message = e.get_error_message();
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
      lease->drop_soci_statements();
      if (is_retryable(sqlstate) && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(microseconds(200 + jitter() % 5000));
        continue;
      }
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

  std::vector<Run> fetch_runs(soci::statement& st, const RunRow& row) {
    st.execute();
    std::vector<Run> runs;
    while (st.fetch()) runs.push_back(row.to_run());
    return runs;
  }

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
    auto lease = acquire("open_store");
  }

  StoreContract7 contract() const override { return {}; }

  void migrate() override {
    run(
        "migrate", "",
        [&](Connection& c) {
          exec_native(c, "BEGIN");
          try {
            c.sql << "SELECT pg_advisory_xact_lock(:key)", soci::use(migration_lock_key);
            // No DDL unless something is missing: a runtime role without
            // CREATE rights may call migrate() on an up-to-date database.
            int has_table = 0;
            c.sql << "SELECT CAST(to_regclass('jobrepo_schema_version') IS NOT NULL AS integer)", soci::into(has_table);
            if (has_table == 0) {
              exec_native(c,
                          "CREATE TABLE jobrepo_schema_version ("
                          " version integer PRIMARY KEY, name text NOT NULL,"
                          " applied_at timestamptz NOT NULL DEFAULT current_timestamp)");
            }
            apply_migrations(schema_version(c), migrations(), [&](const Migration& migration) {
              exec_native(c, std::string(migration.sql));
              int version = migration.version;
              std::string name(migration.name);
              c.sql << "INSERT INTO jobrepo_schema_version (version, name) VALUES (:v, :n)", soci::use(version),
                  soci::use(name);
            });
            exec_native(c, "COMMIT");
          } catch (...) {
            PQclear(PQexec(c.native(), "ROLLBACK"));
            throw;
          }
          return 0;
        },
        /*check=*/false);
    schema_ok_ = true;
  }

  Timestamp now() override {
    return run("now", "database " + shown_url_, [&](Connection& c) {
      Micros now = 0;
      Micros clock = clock_offset().count();
      c.sql << queries::now, soci::use(clock), soci::into(now);
      return to_timestamp(now);
    });
  }

  Job create_job(const NewJob& job) override {
    return run("create_job", job_subject(job.plugin_id, job.name), [&](Connection& c) {
      auto& s = prepared(c.create_job, c.sql);
      s.plugin = job.plugin_id;
      s.name = job.name;
      s.description = job.description;
      s.schedule = job.schedule;
      s.due.set(job.due, clock_offset());
      s.st.execute(true);
      return Job{job.plugin_id, job.name, job.description, to_timestamp(s.next), job.schedule};
    });
  }

  Job ensure_job(const NewJob& job) override {
    return run("ensure_job", job_subject(job.plugin_id, job.name), [&](Connection& c) {
      auto& s = prepared(c.ensure_job, c.sql);
      s.plugin = job.plugin_id;
      s.name = job.name;
      s.description = job.description;
      s.schedule = job.schedule;
      s.due.set(job.due, clock_offset());
      s.st.execute(true);
      return s.row.to_job();
    });
  }

  std::optional<Job> lookup_job(const std::string& plugin_id, const std::string& name) override {
    return run("lookup_job", job_subject(plugin_id, name), [&](Connection& c) -> std::optional<Job> {
      auto& s = prepared(c.lookup_job, c.sql);
      s.plugin = plugin_id;
      s.name = name;
      if (!s.st.execute(true)) return std::nullopt;
      return s.row.to_job();
    });
  }

  std::vector<Job> list_jobs(const JobQuery& query) override {
    return run("list_jobs", "plugin " + quoted(query.plugin_id), [&](Connection& c) {
      auto& s = prepared(c.list_jobs, c.sql);
      s.plugin = query.plugin_id;
      s.filtered = query.name ? 1 : 0;
      s.name = query.name.value_or("");
      s.limit = query.limit;
      s.limit_ind = query.limit < 0 ? soci::i_null : soci::i_ok;
      s.st.execute();
      std::vector<Job> jobs;
      while (s.st.fetch()) jobs.push_back(s.row.to_job());
      return jobs;
    });
  }

  std::optional<Job> reschedule_job(const std::string& plugin_id, const std::string& name, const Due& due) override {
    return run("update_job_next_run", job_subject(plugin_id, name), [&](Connection& c) -> std::optional<Job> {
      auto& s = prepared(c.reschedule, c.sql);
      s.due.set(due, clock_offset());
      s.plugin = plugin_id;
      s.name = name;
      if (!s.st.execute(true)) return std::nullopt;
      return s.row.to_job();
    });
  }

  bool delete_job(const std::string& plugin_id, const std::string& name) override {
    return run("delete_job", job_subject(plugin_id, name), [&](Connection& c) {
      soci::statement st = (c.sql.prepare << queries::delete_job, soci::use(plugin_id), soci::use(name));
      st.execute(true);
      return st.get_affected_rows() > 0;
    });
  }

  std::vector<Run> list_runs(const RunQuery& query) override {
    return run("list_runs", "plugin " + quoted(query.plugin_id), [&](Connection& c) {
      RunRow row;
      std::string plugin = query.plugin_id;
      int has_job = query.job_name ? 1 : 0;
      std::string job = query.job_name.value_or("");
      int has_status = query.status ? 1 : 0;
      std::string status(query.status ? to_string(*query.status) : "");
      long long limit = query.limit;
      soci::indicator limit_ind = query.limit < 0 ? soci::i_null : soci::i_ok;
      soci::statement st(c.sql);
      row.bind(st);
      use_all(st, plugin, has_job, job, has_status, status);
      st.exchange(soci::use(limit, limit_ind));
      prepare(st, queries::list_runs);
      return fetch_runs(st, row);
    });
  }

  std::int64_t prune_runs(const std::string& plugin_id, microseconds older_than) override {
    return run("prune_runs", "plugin " + quoted(plugin_id), [&](Connection& c) {
      Micros delta = clock_offset().count() - older_than.count();
      soci::statement st = (c.sql.prepare << queries::prune_runs, soci::use(plugin_id), soci::use(delta));
      st.execute(true);
      return static_cast<std::int64_t>(st.get_affected_rows());
    });
  }

  std::vector<Run> claim_runs(const ClaimRequest& request) override {
    return run("run_jobs", "server " + quoted(request.server_id), [&](Connection& c) {
      const auto& st = prepared(c.claim, c.native(), "jobrepo_claim", queries::claim_runs);
      const std::string clock = std::to_string(clock_offset().count());
      const std::string names = request.only_jobs ? json_array(*request.only_jobs) : "[]";
      const std::string limit = std::to_string(request.limit);
      const auto result = st.execute({clock.c_str(), request.plugin_id.c_str(), request.plugin_id.c_str(),
                                      request.only_jobs ? "1" : "0", names.c_str(), request.served_only ? "1" : "0",
                                      request.server_id.c_str(), request.limit < 0 ? nullptr : limit.c_str(),
                                      request.server_id.c_str()});
      std::vector<Run> runs;
      runs.reserve(static_cast<std::size_t>(result.rows()));
      for (int row = 0; row < result.rows(); ++row) runs.push_back(result.run(row));
      return runs;
    });
  }

  // One change, one statement (the caller holds the transaction when there
  // are several).
  std::optional<Run> transition_one(Connection& c, const RunTransition& change) {
    const std::string clock = std::to_string(clock_offset().count());
    const std::string status(to_string(change.to));
    const char* final = is_final(change.to) ? "1" : "0";
    const std::string completed = change.completed_count ? std::to_string(*change.completed_count) : "";
    const std::string total = change.total_count ? std::to_string(*change.total_count) : "";
    const char* completed_value = change.completed_count ? completed.c_str() : nullptr;
    const char* total_value = change.total_count ? total.c_str() : nullptr;
    if (change.reschedule || is_final(change.to)) {
      const std::string delta = change.reschedule ? std::to_string(change.reschedule->in.count()) : "0";
      const std::string at =
          change.reschedule && change.reschedule->at ? std::to_string(to_micros(*change.reschedule->at)) : "";
      const auto& st =
          prepared(c.update_run_and_job, c.native(), "jobrepo_update_run_and_job", queries::update_run_and_job);
      const auto result = st.execute({clock.c_str(), status.c_str(), final, completed_value, total_value,
                                      change.message ? change.message->c_str() : nullptr, change.reschedule ? "1" : "0",
                                      delta.c_str(), change.reschedule && change.reschedule->at ? at.c_str() : nullptr,
                                      change.run_id.c_str(), change.plugin_id.c_str()});
      if (result.rows() == 0) return std::nullopt;
      return result.run(0);
    }
    const auto& st = prepared(c.update_run, c.native(), "jobrepo_update_run", queries::update_run);
    const auto result = st.execute({clock.c_str(), status.c_str(), final, completed_value, total_value,
                                    change.run_id.c_str(), change.plugin_id.c_str()});
    if (result.rows() == 0) return std::nullopt;
    return result.run(0);
  }

  std::vector<std::optional<Run>> transition_runs(std::span<const RunTransition> changes) override {
    const std::string subject =
        changes.size() == 1 ? "run " + quoted(changes.front().run_id) : std::to_string(changes.size()) + " runs";
    if (changes.size() > 1 && !has_duplicate_runs(changes)) {
      // The common batch (the Scheduler's completions and heartbeats): one
      // statement, one round trip, whatever the number of runs.
      return run("update_run", subject, [&](Connection& c) {
        auto& s = prepared(c.update_runs_batch, c.sql);
        s.clock = clock_offset().count();
        s.changes = changes_json(changes);
        std::vector<std::optional<Run>> results(changes.size());
        s.st.execute();
        while (s.st.fetch()) {
          if (s.ord >= 0 && static_cast<std::size_t>(s.ord) < results.size()) {
            results[static_cast<std::size_t>(s.ord)] = s.row.to_run();
          }
        }
        return results;
      });
    }
    return run("update_run", subject, [&](Connection& c) {
      // One change, or changes of one run more than once: applied in
      // order, one statement each, in one transaction.
      const bool batch = changes.size() > 1;
      if (batch) exec_native(c, "BEGIN");
      try {
        std::vector<std::optional<Run>> results;
        results.reserve(changes.size());
        for (const auto& change : changes) results.push_back(transition_one(c, change));
        if (batch) exec_native(c, "COMMIT");
        return results;
      } catch (...) {
        if (batch && !c.broken()) PQclear(PQexec(c.native(), "ROLLBACK"));
        throw;
      }
    });
  }

  std::vector<Run> interrupt_stale_runs(const StaleRunQuery& query) override {
    return run("interrupt_runs", "plugin " + quoted(query.plugin_id), [&](Connection& c) {
      auto& s = prepared(c.interrupt, c.sql);
      s.clock = clock_offset().count();
      s.plugin = query.plugin_id;
      s.threshold = query.threshold.count();
      s.filtered = query.server_id ? 1 : 0;
      s.server = query.server_id.value_or("");
      s.message = query.message.value_or("");
      s.message_ind = query.message ? soci::i_ok : soci::i_null;
      s.observed = query.runs ? 1 : 0;
      s.runs = "[";
      if (query.runs) {
        for (const auto& observed : *query.runs) {
          if (s.runs.size() > 1) s.runs.push_back(',');
          s.runs.append("{\"id\":");
          append_json_string(s.runs, observed.run_id);
          s.runs.append(",\"updated\":").append(std::to_string(to_micros(observed.update_time))).append("}");
        }
      }
      s.runs.push_back(']');
      return fetch_runs(s.st, s.row);
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
    return run(paused ? "pause_job" : "resume_job", job_subject(plugin_id, name),
               [&](Connection& c) -> std::optional<Job> {
                 JobRow row;
                 int value = paused ? 1 : 0;
                 soci::statement st(c.sql);
                 row.bind(st);
                 st.exchange(soci::use(value));
                 st.exchange(soci::use(plugin_id));
                 st.exchange(soci::use(name));
                 prepare(st, queries::set_job_paused);
                 if (!st.execute(true)) return std::nullopt;
                 return row.to_job();
               });
  }

  std::optional<Job> request_run(const std::string& plugin_id, const std::string& name,
                                 const std::optional<std::string>& payload) override {
    return run("run_now", job_subject(plugin_id, name), [&](Connection& c) -> std::optional<Job> {
      soci::transaction tx(c.sql);
      int found = 0;
      c.sql << queries::lock_job, soci::use(plugin_id), soci::use(name), soci::into(found);
      if (!c.sql.got_data()) return std::nullopt;
      JobRow row;
      Micros clock = clock_offset().count();
      std::string arguments = payload.value_or("");
      soci::indicator arguments_ind = payload ? soci::i_ok : soci::i_null;
      soci::statement st(c.sql);
      row.bind(st);
      st.exchange(soci::use(clock));
      st.exchange(soci::use(plugin_id));
      st.exchange(soci::use(name));
      st.exchange(soci::use(arguments, arguments_ind));
      st.exchange(soci::use(plugin_id));
      st.exchange(soci::use(name));
      st.exchange(soci::use(arguments, arguments_ind));
      st.exchange(soci::use(arguments, arguments_ind));
      prepare(st, queries::request_run);
      if (!st.execute(true)) {
        // Another payload waits for a claim: the job as it is (locked above).
        auto& current = prepared(c.lookup_job, c.sql);
        current.plugin = plugin_id;
        current.name = name;
        current.st.execute(true);
        tx.commit();
        return std::optional(current.row.to_job());
      }
      tx.commit();
      return std::optional(row.to_job());
    });
  }

  std::optional<Run> request_cancel(const std::string& plugin_id, const std::string& run_id) override {
    return run("cancel_run", "run " + quoted(run_id), [&](Connection& c) -> std::optional<Run> {
      RunRow row;
      soci::statement st(c.sql);
      row.bind(st);
      st.exchange(soci::use(run_id));
      st.exchange(soci::use(plugin_id));
      st.exchange(soci::use(run_id));
      st.exchange(soci::use(plugin_id));
      prepare(st, queries::request_cancel);
      if (!st.execute(true)) return std::nullopt;
      return row.to_run();
    });
  }

  ServerLease record_server(const ServerRecord& record) override {
    return run("record_server", "server " + quoted(record.server_id), [&](Connection& c) {
      Micros clock = clock_offset().count();
      Micros ttl = record.ttl.count();
      int take_over = record.take_over ? 1 : 0;
      Micros seen = 0, expire = 0;
      soci::transaction tx(c.sql);
      soci::statement st = (c.sql.prepare << queries::record_server, soci::use(clock), soci::use(record.plugin_id),
                            soci::use(record.server_id), soci::use(record.instance), soci::use(record.address),
                            soci::use(ttl), soci::use(take_over), soci::into(seen), soci::into(expire));
      if (!st.execute(true)) {
        ServerLease lease;
        soci::indicator found = soci::i_null;
        c.sql << queries::server_holder, soci::use(record.plugin_id), soci::use(record.server_id),
            soci::into(lease.instance, found), soci::into(lease.address), soci::into(seen), soci::into(expire);
        tx.commit();
        if (found == soci::i_ok) {
          lease.seen_time = to_timestamp(seen);
          lease.expire_time = to_timestamp(expire);
        }
        return lease;
      }
      if (record.jobs) {
        std::string jobs = "[";
        for (const auto& job : *record.jobs) {
          if (jobs.size() > 1) jobs.push_back(',');
          jobs.append("{\"name\":");
          append_json_string(jobs, job.name);
          jobs.append(",\"fingerprint\":");
          append_json_string(jobs, job.fingerprint);
          jobs.push_back('}');
        }
        jobs.push_back(']');
        c.sql << queries::forget_served_jobs, soci::use(record.plugin_id), soci::use(record.server_id);
        c.sql << queries::record_served_jobs, soci::use(record.server_id), soci::use(seen), soci::use(jobs),
            soci::use(record.plugin_id);
      }
      tx.commit();
      return ServerLease{true, record.instance, record.address, to_timestamp(seen), to_timestamp(expire)};
    });
  }

  void remove_server(const std::string& plugin_id, const std::string& server_id, const std::string& instance) override {
    run("remove_server", "server " + quoted(server_id), [&](Connection& c) {
      c.sql << queries::remove_server, soci::use(plugin_id), soci::use(server_id), soci::use(instance),
          soci::use(instance);
      return 0;
    });
  }

  std::optional<Run> record_work_end(const std::string& plugin_id, const std::string& run_id,
                                     Timestamp ended) override {
    return run("record_work_end", "run " + quoted(run_id), [&](Connection& c) -> std::optional<Run> {
      RunRow row;
      Micros at = to_micros(ended);
      soci::statement st(c.sql);
      row.bind(st);
      st.exchange(soci::use(at));
      st.exchange(soci::use(run_id));
      st.exchange(soci::use(plugin_id));
      prepare(st, queries::record_work_end);
      if (!st.execute(true)) return std::nullopt;
      return row.to_run();
    });
  }

  std::vector<Serving> list_servings(const std::string& plugin_id, const std::optional<std::string>& name) override {
    return run("list_servings", "plugin " + quoted(plugin_id), [&](Connection& c) {
      Micros clock = clock_offset().count();
      const int filtered = name ? 1 : 0;
      const std::string job = name.value_or("");
      ServingRow row;
      soci::statement st(c.sql);
      row.bind(st);
      st.exchange(soci::use(clock));
      st.exchange(soci::use(plugin_id));
      st.exchange(soci::use(filtered));
      st.exchange(soci::use(job));
      prepare(st, queries::list_servings);
      st.execute();
      std::vector<Serving> servings;
      while (st.fetch()) servings.push_back(row.to_serving());
      return servings;
    });
  }

  std::optional<Run> lookup_run(const std::string& plugin_id, const std::string& run_id) override {
    return run("lookup_run", "run " + quoted(run_id), [&](Connection& c) -> std::optional<Run> {
      auto& s = prepared(c.lookup_run, c.sql);
      s.id = run_id;
      s.plugin = plugin_id;
      if (!s.st.execute(true)) return std::nullopt;
      return s.row.to_run();
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
    throw Error(ErrorCode::invalid_parameter, "open_store: invalid PostgreSQL URL " + read.shown + ": " + read.problem);
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
