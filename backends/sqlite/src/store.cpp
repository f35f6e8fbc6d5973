#include "store.hpp"

#include "errors.hpp"
#include "queries.hpp"
#include "soci_support.hpp"
#include "wakeups.hpp"

#include <jobrepo/error.hpp>

#include <soci/soci.h>
#include <soci/sqlite3/soci-sqlite3.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>
#include <type_traits>
#include <utility>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace jobrepo::sqlite_backend {

namespace {

// Whether `path`-wal or `path`-shm exists.
bool has_leftovers(const std::string& path) {
  struct stat st {};
  return ::stat((path + "-wal").c_str(), &st) == 0 || ::stat((path + "-shm").c_str(), &st) == 0;
}

}  // namespace

// SOCI 4.0.3 always opens with SQLITE_OPEN_CREATE and takes no open flags,
// but it takes a VFS name: this VFS is the default one with an xOpen that
// drops SQLITE_OPEN_CREATE for main database files, and that refuses
// (SQLITE_CANTOPEN) an empty main database file beside a -wal or -shm:
// SQLite would delete or reset those, and they may hold the last commits of
// a database that was moved away (see leftovers_problem()). The leftovers
// are looked at before the file, as there: a database being created gets
// content before its -wal and -shm exist, so it never looks like this.
const char* no_create_vfs() {
  static const char* const name = [] {
    static sqlite_api::sqlite3_vfs* const base = sqlite_api::sqlite3_vfs_find(nullptr);
    static sqlite_api::sqlite3_vfs vfs = *base;
    vfs.zName = "jobrepo-no-create";
    vfs.pNext = nullptr;
    vfs.xOpen = [](sqlite_api::sqlite3_vfs*, const char* path, sqlite_api::sqlite3_file* file, int flags,
                   int* out_flags) {
      const bool main_db = (flags & SQLITE_OPEN_MAIN_DB) != 0 && path != nullptr;
      if (main_db) flags &= ~SQLITE_OPEN_CREATE;
      const bool leftovers = main_db && has_leftovers(path);
      const int rc = base->xOpen(base, path, file, flags, out_flags);
      if (rc != SQLITE_OK || !leftovers) return rc;
      sqlite_api::sqlite3_int64 size = -1;
      if (file->pMethods->xFileSize(file, &size) != SQLITE_OK || size != 0) return rc;
      file->pMethods->xClose(file);
      file->pMethods = nullptr;
      return SQLITE_CANTOPEN;
    };
    sqlite_api::sqlite3_vfs_register(&vfs, 0);
    return vfs.zName;
  }();
  return name;
}

namespace {

using std::chrono::microseconds;
using namespace soci_support;

sqlite_api::sqlite3* native(soci::session& sql) {
  return static_cast<soci::sqlite3_session_backend*>(sql.get_backend())->conn_;
}

// Runs SQL (possibly several statements) directly on the native handle.
void exec_native(soci::session& sql, const char* text) {
  char* message = nullptr;
  const int rc = sqlite_api::sqlite3_exec(native(sql), text, nullptr, nullptr, &message);
  if (rc != SQLITE_OK) {
    const std::string detail = message ? message : sqlite_api::sqlite3_errstr(rc);
    sqlite_api::sqlite3_free(message);
    throw soci::sqlite3_soci_error(detail, sqlite_api::sqlite3_extended_errcode(native(sql)));
  }
}

// The statements of the hot path (the claim, run transitions, the clock),
// each prepared once per connection and bound to the buffers of its struct.
struct DueStatement {
  std::string name, plugin, names, server, payload;
  soci::indicator payload_ind = soci::i_null;
  long long failures = 0;
  int run_requested = 0;
  Micros now = 0;
  int filtered = 0, served = 0;
  long long limit = 0;
  soci::statement st;
  explicit DueStatement(soci::session& sql) : st(sql) {
    st.exchange(soci::into(name));
    st.exchange(soci::into(failures));
    st.exchange(soci::into(run_requested));
    st.exchange(soci::into(payload, payload_ind));
    st.exchange(soci::use(plugin));
    st.exchange(soci::use(now));
    st.exchange(soci::use(filtered));
    st.exchange(soci::use(names));
    st.exchange(soci::use(served));
    st.exchange(soci::use(server));
    st.exchange(soci::use(limit));
    // The NOT EXISTS probe reads the small partial index of running runs,
    // so its cost does not grow with the run history; the served probe looks
    // one key of job_server up per due job, whatever the server serves.
    prepare(st, queries::claim_due);
  }
};

struct InsertRunStatement {
  std::string id, plugin, name, server, payload;
  soci::indicator payload_ind = soci::i_null;
  Micros now = 0;
  long long attempt = 1;
  soci::statement st;
  explicit InsertRunStatement(soci::session& sql) : st(sql) {
    st.exchange(soci::use(id));
    st.exchange(soci::use(plugin));
    st.exchange(soci::use(name));
    st.exchange(soci::use(server));
    st.exchange(soci::use(now));
    st.exchange(soci::use(attempt));
    st.exchange(soci::use(payload, payload_ind));
    prepare(st, queries::insert_run);
  }
};

struct UpdateRunStatement {
  RunRow row;
  std::string to, id, plugin, message;
  soci::indicator message_ind = soci::i_null;
  Micros now = 0, end = 0;
  soci::indicator end_ind = soci::i_null;
  long long completed = 0, total = 0;
  soci::indicator completed_ind = soci::i_null, total_ind = soci::i_null;
  soci::statement st;
  explicit UpdateRunStatement(soci::session& sql) : st(sql) {
    row.bind(st);
    st.exchange(soci::use(to));
    st.exchange(soci::use(now));
    st.exchange(soci::use(end, end_ind));
    st.exchange(soci::use(completed, completed_ind));
    st.exchange(soci::use(total, total_ind));
    st.exchange(soci::use(message, message_ind));
    st.exchange(soci::use(id));
    st.exchange(soci::use(plugin));
    prepare(st, queries::update_run);
  }
};

// What a run's change does to its job: a reschedule (at now instead when an
// operator asked for a run meanwhile) and, for a run that ended, the last
// outcome and the count of consecutive failures.
struct JobAfterRunStatement {
  int reschedule = 0, final = 0;
  Micros now = 0, next = 0;
  std::string status, plugin, name, message;
  soci::indicator message_ind = soci::i_null;
  soci::statement st;
  explicit JobAfterRunStatement(soci::session& sql) : st(sql) {
    st.exchange(soci::use(reschedule, "r1"));
    st.exchange(soci::use(now, "n1"));
    st.exchange(soci::use(next, "next"));
    st.exchange(soci::use(final, "f1"));
    st.exchange(soci::use(status, "s1"));
    st.exchange(soci::use(message, message_ind, "m"));
    st.exchange(soci::use(plugin, "p"));
    st.exchange(soci::use(name, "n"));
    prepare(st, queries::job_after_run);
  }
};

// The one job row a prepared statement returns, or empty.
std::optional<Job> fetch_job(soci::statement& st, const JobRow& row) {
  st.execute();
  if (!st.fetch()) return std::nullopt;
  return row.to_job();
}

// One connection, the state of its busy handler, and its prepared statements
// (declared after the session, so that they are finalized first).
struct Connection {
  Connection(const std::string& connect_string, std::chrono::milliseconds timeout)
      : sql(soci::sqlite3, connect_string), busy_timeout(timeout) {}
  soci::session sql;
  std::chrono::milliseconds busy_timeout{0};
  std::chrono::steady_clock::time_point busy_since{};
  std::minstd_rand jitter{std::random_device{}()};
  // Where the busy handler records that another process held the lock.
  std::atomic<std::chrono::steady_clock::rep>* contention = nullptr;
  std::unique_ptr<DueStatement> due;
  std::unique_ptr<InsertRunStatement> insert_run;
  std::unique_ptr<UpdateRunStatement> update_run;
  std::unique_ptr<JobAfterRunStatement> job_after_run;
};

// Resets a cached statement after use: one that was not stepped to its end
// (a SELECT or RETURNING read for one row) would keep its read open and make
// COMMIT fail with "SQL statements in progress".
void finish(soci::statement& st) {
  sqlite_api::sqlite3_reset(static_cast<soci::sqlite3_statement_backend*>(st.get_backend())->stmt_);
}

template <class S>
S& prepared(std::unique_ptr<S>& slot, soci::session& sql) {
  if (!slot) slot = std::make_unique<S>(sql);
  return *slot;
}

// SQLite's busy handler for every connection. SQLite's default one sleeps in
// growing steps (up to 100 ms), and a waiter that sleeps long loses every
// race for the lock against writers that ask at the right moment: under load
// from one process, another process would starve. Short random pauses make
// every waiter, local or not, equally likely to get the lock next.
int on_busy(void* context, int count) {
  auto& connection = *static_cast<Connection*>(context);
  const auto now = std::chrono::steady_clock::now();
  if (count == 0) connection.busy_since = now;
  if (connection.contention) connection.contention->store(now.time_since_epoch().count());
  if (now - connection.busy_since >= connection.busy_timeout) return 0;
  std::this_thread::sleep_for(std::chrono::microseconds(50 + connection.jitter() % 450));
  return 1;
}

// Begins a transaction in its constructor and rolls it back in its
// destructor unless commit() ran. BEGIN IMMEDIATE takes the write lock at once,
// so a writer never fails half-way because another took it first.
class Transaction {
 public:
  Transaction(soci::session& sql, bool immediate) : sql_(sql) {
    exec_native(sql_, immediate ? "BEGIN IMMEDIATE" : "BEGIN");
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit() {
    exec_native(sql_, "COMMIT");
    done_ = true;
  }
  ~Transaction() {
    // SQLite may have ended the transaction itself (SQLITE_FULL, SQLITE_IOERR).
    if (done_ || sqlite_api::sqlite3_get_autocommit(native(sql_)) != 0) return;
    // Never throws: a failed rollback leaves SQLite to roll back on its own.
    sqlite_api::sqlite3_exec(native(sql_), "ROLLBACK", nullptr, nullptr, nullptr);
  }

 private:
  soci::session& sql_;
  bool done_ = false;
};

// Thrown by SqliteStore::connect() when the path no longer holds the store's
// file; acquire() turns it into the error of the operation that asked.
struct FileMoved {};

class SqliteStore final : public Store {
 private:
  std::unique_ptr<Connection> connect() {
    // Once the file moved, a new connection would open (or create) another
    // database at the path: refuse (see check_not_moved()).
    refuse_if_moved();
    // SOCI's connect string splits on spaces and quotes; the path is quoted.
    // SQLite never creates a database file (open_sqlite_store() did, when
    // create_if_missing): a file deleted since then is not created again.
    std::string connect_string = "db=\"" + options_.path + "\"";
    if (!in_memory_) connect_string += std::string(" vfs=") + no_create_vfs();
    auto connection = std::make_unique<Connection>(connect_string, options_.busy_timeout);
    soci::session* sql = &connection->sql;
    auto* db = native(*sql);
    sqlite_api::sqlite3_extended_result_codes(db, 1);
    connection->contention = &contention_;
    sqlite_api::sqlite3_busy_handler(db, on_busy, connection.get());
    exec_native(*sql, "PRAGMA foreign_keys = ON");
    exec_native(*sql, options_.synchronous == SqliteSynchronous::full ? "PRAGMA synchronous = FULL"
                                                                      : "PRAGMA synchronous = NORMAL");
    if (!in_memory_) {
      // Switching a new file to WAL needs it alone for a moment; when another
      // process opens the same new file at the same time SQLite may answer
      // SQLITE_BUSY at once, without its busy handler: retry until the timeout.
      const auto deadline = std::chrono::steady_clock::now() + options_.busy_timeout;
      for (;;) {
        try {
          exec_native(*sql, "PRAGMA journal_mode = WAL");
          break;
        } catch (const soci::sqlite3_soci_error& e) {
          if (!is_busy(e.result()) || std::chrono::steady_clock::now() >= deadline) throw;
          std::this_thread::sleep_for(std::chrono::microseconds(200 + connection->jitter() % 2000));
        }
      }
    }
    refuse_if_moved();  // replaced between the check above and the open
    return connection;
  }

  // Throws FileMoved when the path no longer names the file that the store's
  // first connection opened (nothing to compare while that one opens).
  void refuse_if_moved() {
    if (in_memory_ || file_name_.empty()) return;
    struct stat st {};
    if (moved_ || ::stat(file_name_.c_str(), &st) != 0 || std::pair(st.st_dev, st.st_ino) != file_id_) {
      moved_ = true;
      throw FileMoved{};
    }
  }

  // A connection for `operation`; unavailable once the file moved. A
  // connection that fails to open is an error of `operation` too.
  Pool<Connection>::Lease acquire(const char* operation, const std::string& subject) {
    if (moved_) throw moved_error(operation);
    try {
      return pool_.acquire();
    } catch (const FileMoved&) {
      throw moved_error(operation);
    } catch (const soci::soci_error& e) {
      throw make_error(operation, subject, e, file_name_);
    }
  }

  // Throws unavailable when the database file was deleted or replaced since
  // the store opened it. SQLite would go on reading and writing the old
  // inode, which no one else sees, while other processes use the new file
  // and run the same jobs again. Once seen, the store stays unavailable:
  // switching to the new file behind the caller's back would mix two
  // histories. One stat() per call (SQLITE_FCNTL_HAS_MOVED).
  void check_not_moved(const char* operation, Connection& c) {
    if (in_memory_) return;
    if (!moved_) {
      int moved = 0;
      sqlite_api::sqlite3_file_control(native(c.sql), "main", SQLITE_FCNTL_HAS_MOVED, &moved);
      if (moved == 0) return;
      moved_ = true;
    }
    throw moved_error(operation);
  }

  Error moved_error(const char* operation) const {
    return Error(ErrorCode::unavailable, std::string(operation) + ": sqlite database " + quoted(file_name_) +
                                             " was deleted or replaced after this store opened it;"
                                             " reopen the store (restart the process) to use the file now there");
  }

  // The store's clock: this process's clock, which is what SQLite's own
  // 'now' reads, to the millisecond as SQLite's, read once inside the
  // operation (so that every timestamp of one operation is equal; a writer's
  // inside its write lock), plus the test clock offset. A test's time source
  // (Store::set_time_source) stands in for the process's clock.
  Micros now(Connection&) {
    return to_micros(std::chrono::floor<std::chrono::milliseconds>(source_time())) + clock_offset().count();
  }

  static int schema_version(soci::session& sql) {
    int version = 0;
    soci::indicator ind = soci::i_null;
    sql << queries::schema_version, soci::into(version, ind);
    return ind == soci::i_ok ? version : 0;
  }

  // Throws schema_mismatch unless the database has exactly the schema version
  // this build ships. Only success is remembered, so that a migration by
  // another process is seen at once.
  void check_schema(const char* operation, soci::session& sql) {
    if (schema_ok_) return;
    check_schema_version(operation, schema_version(sql), migrations());
    schema_ok_ = true;
  }

  // Runs `body(session, now)` in one BEGIN IMMEDIATE transaction. Lock
  // conflicts are waited out by SQLite's busy handler and retried here until
  // busy_timeout has passed; then ErrorCode::busy.
  template <class Body>
  auto write(const char* operation, const std::string& subject, Body&& body, bool check = true) {
    // Writers of this process take turns on a mutex (no polling among
    // threads); only the one at the front waits in SQLite's busy handler for
    // other processes. An in-memory store writes through its one connection;
    // a file store through a connection of its own, so that its
    // data_version changes with other connections' commits only (the commit
    // watcher reads it) and a writer never waits for a pooled connection.
    std::unique_lock writer(writer_mutex_);
    if (in_memory_) {
      auto lease = acquire(operation, subject);
      return write_on(*lease, operation, subject, std::forward<Body>(body), check);
    }
    Connection& connection = writer_connection(operation, subject);
    // Every write fails on a file SQLite opened read-only, also one that
    // would change nothing (migrate() of a migrated database, a claim that
    // finds no due job), so that a caller sees it at its first write.
    if (sqlite_api::sqlite3_db_readonly(native(connection.sql), "main") == 1) {
      throw make_error(operation, subject, SQLITE_READONLY, sqlite_api::sqlite3_errstr(SQLITE_READONLY), file_name_);
    }
    return write_on(connection, operation, subject, std::forward<Body>(body), check);
  }

  // The file store's writing connection, opened at its first use. SQLite
  // opens a file that it may not write read-only, and such a connection
  // stays so (its writes fail with SQLITE_READONLY): it is opened again at
  // its next use, so that writes work once the file is writable. Under
  // writer_mutex_.
  Connection& writer_connection(const char* operation, const std::string& subject) {
    if (moved_) throw moved_error(operation);
    if (writer_ && sqlite_api::sqlite3_db_readonly(native(writer_->sql), "main") == 1) writer_.reset();
    if (!writer_) {
      try {
        writer_ = connect();
      } catch (const FileMoved&) {
        throw moved_error(operation);
      } catch (const soci::soci_error& e) {
        throw make_error(operation, subject, e, file_name_);
      }
    }
    return *writer_;
  }

  // Whether another connection (another process, another store) committed
  // since the last call: the writing connection's PRAGMA data_version
  // changed. For the commit watcher; when it cannot tell, true.
  bool others_committed() noexcept {
    try {
      const std::lock_guard writer(writer_mutex_);
      auto& c = writer_connection("watch", "");
      std::int64_t version = -1;
      c.sql << "PRAGMA data_version", soci::into(version);
      const bool changed = version != watched_version_;
      watched_version_ = version;
      return changed;
    } catch (...) {
      return true;
    }
  }

  template <class Body>
  auto write_on(Connection& connection, const char* operation, const std::string& subject, Body&& body, bool check) {
    const auto deadline = std::chrono::steady_clock::now() + options_.busy_timeout;
    soci::session& sql = connection.sql;
    std::minstd_rand jitter(static_cast<unsigned>(std::hash<std::thread::id>{}(std::this_thread::get_id())));
    for (int attempt = 1;; ++attempt) {
      int code = SQLITE_OK;
      std::string message;
      try {
        Transaction tx(sql, /*immediate=*/true);
        try {
          // After BEGIN IMMEDIATE: waiting for the lock may take long, and a
          // replacement meanwhile must not go unseen.
          check_not_moved(operation, connection);
          if (check) check_schema(operation, sql);
          auto result = [&] {
            if constexpr (std::is_invocable_v<Body, Connection&, Micros>) {
              return body(connection, now(connection));
            } else {
              return body(sql, now(connection));
            }
          }();
          tx.commit();
          yield_to_other_processes();
          return result;
        } catch (const soci::sqlite3_soci_error& e) {
          // SQLite's words, read before the rollback (tx's destructor)
          // replaces them with its own (e.g. "cannot rollback - no
          // transaction is active" after SQLITE_FULL ended the transaction).
          code = e.result();
          message = driver_message(sql, e);
        }
      } catch (const soci::sqlite3_soci_error& e) {  // BEGIN IMMEDIATE
        code = e.result();
        message = driver_message(sql, e);
      } catch (const soci::soci_error& e) {
        throw make_error(operation, subject, e, file_name_);
      }
      if (is_busy(code) && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(microseconds(500 + jitter() % 2000));
        continue;
      }
      throw make_error(operation, subject, code, message, file_name_);
    }
  }

  // When another process waited for the lock lately, the next writer of this
  // process waits a moment after a commit, so that the other process gets the
  // lock: without it the mutex hands the lock from thread to thread here at
  // once, and other processes starve (the cross-process race saw 0 claims).
  void yield_to_other_processes() {
    const auto now = std::chrono::steady_clock::now();
    const auto last = std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(contention_.load()));
    if (now - last < std::chrono::milliseconds(50)) std::this_thread::sleep_for(std::chrono::microseconds(300));
  }

  // Runs a read-only `body(session)`; a single SELECT is atomic on its own.
  template <class Body>
  auto read(const char* operation, const std::string& subject, Body&& body) {
    const auto deadline = std::chrono::steady_clock::now() + options_.busy_timeout;
    auto lease = acquire(operation, subject);
    check_not_moved(operation, *lease);
    soci::session& sql = lease->sql;
    for (;;) {
      try {
        check_schema(operation, sql);
        if constexpr (std::is_invocable_v<Body, Connection&>) {
          return body(*lease);
        } else {
          return body(sql);
        }
      } catch (const soci::sqlite3_soci_error& e) {
        const int code = e.result();
        if (is_busy(code) && std::chrono::steady_clock::now() < deadline) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
          continue;
        }
        throw make_error(operation, subject, code, driver_message(sql, e), file_name_);
      } catch (const soci::soci_error& e) {
        throw make_error(operation, subject, e, file_name_);
      }
    }
  }

  // SQLite's own words for the last error on this connection (SOCI's
  // message adds the statement text, which can be long).
  static std::string driver_message(soci::session& sql, const soci::sqlite3_soci_error& e) {
    const char* message = sqlite_api::sqlite3_errmsg(native(sql));
    if (message && std::strcmp(message, "not an error") != 0) return message;
    return sqlite_words(e.get_error_message());
  }

  const SqliteOptions options_;
  const bool in_memory_;
  // A file store's file: SQLite's absolute name for it, and its device and
  // inode when the store opened it. Set by the constructor.
  std::string file_name_;
  std::pair<dev_t, ino_t> file_id_{};
  std::atomic<bool> moved_{false};
  std::atomic<bool> schema_ok_{false};
  DueNotifier due_;
  // Started by the first subscribe_due() of a file store; destroyed before
  // due_, whose subscribers it calls.
  std::mutex writer_mutex_;
  std::unique_ptr<Connection> writer_;  // a file store's, see write()
  std::int64_t watched_version_ = -1;   // of writer_, under writer_mutex_
  std::mutex watcher_mutex_;
  std::unique_ptr<CommitWatcher> watcher_;
  std::atomic<std::chrono::steady_clock::rep> contention_{0};
  Pool<Connection> pool_;

 public:
  explicit SqliteStore(const SqliteOptions& options)
      : options_(options),
        in_memory_(options.path == ":memory:"),
        pool_(in_memory_ ? 1 : (options.pool_size > 0 ? options.pool_size : 8), [this] { return connect(); }) {
    // Open one connection now, so that a bad path fails here, not later.
    auto lease = pool_.acquire();
    if (in_memory_) return;
    file_name_ = sqlite_api::sqlite3_db_filename(native(lease->sql), "main");
    // The file now at the path, then whether that is the one SQLite opened
    // (in this order, so that a replacement at any moment is seen).
    struct stat st {};
    const bool exists = ::stat(file_name_.c_str(), &st) == 0;
    int moved = 0;
    sqlite_api::sqlite3_file_control(native(lease->sql), "main", SQLITE_FCNTL_HAS_MOVED, &moved);
    if (!exists || moved != 0) {
      throw Error(ErrorCode::unavailable, "open_store: sqlite database " + quoted(file_name_) +
                                              " was deleted or replaced while it was being opened; open it again");
    }
    file_id_ = {st.st_dev, st.st_ino};
  }

  StoreContract7 contract() const override { return {}; }

  void migrate() override {
    write(
        "migrate", "",
        [&](soci::session& sql, Micros now) {
          exec_native(sql, queries::create_schema_table);
          apply_migrations(schema_version(sql), migrations(), [&](const Migration& migration) {
            exec_native(sql, std::string(migration.sql).c_str());
            int version = migration.version;
            std::string name(migration.name);
            sql << queries::record_schema_version, soci::use(version), soci::use(name), soci::use(now);
          });
          return 0;
        },
        /*check_schema=*/false);
    schema_ok_ = true;
  }

  Timestamp now() override {
    return read("now", "sqlite database " + quoted(options_.path), [&](Connection& c) { return to_timestamp(now(c)); });
  }

  Job create_job(const NewJob& job) override {
    auto created = write("create_job", job_subject(job.plugin_id, job.name), [&](soci::session& sql, Micros now) {
      Micros next = due_micros(job.due, now);
      sql << queries::create_job, soci::use(job.plugin_id), soci::use(job.name), soci::use(job.description),
          soci::use(next), soci::use(job.schedule);
      return Job{job.plugin_id, job.name, job.description, to_timestamp(next), job.schedule};
    });
    due_.notify(job.plugin_id);
    return created;
  }

  Job ensure_job(const NewJob& job) override {
    auto ensured = write("ensure_job", job_subject(job.plugin_id, job.name), [&](soci::session& sql, Micros now) {
      JobRow row;
      Micros next = due_micros(job.due, now);
      soci::statement st(sql);
      row.bind(st);
      st.exchange(soci::use(job.plugin_id));
      st.exchange(soci::use(job.name));
      st.exchange(soci::use(job.description));
      st.exchange(soci::use(next));
      st.exchange(soci::use(job.schedule));
      prepare(st, queries::ensure_job);
      st.execute(true);
      return row.to_job();
    });
    due_.notify(job.plugin_id);
    return ensured;
  }

  std::optional<Job> lookup_job(const std::string& plugin_id, const std::string& name) override {
    return read("lookup_job", job_subject(plugin_id, name), [&](soci::session& sql) -> std::optional<Job> {
      JobRow row;
      soci::statement st(sql);
      row.bind(st);
      st.exchange(soci::use(plugin_id));
      st.exchange(soci::use(name));
      prepare(st, queries::lookup_job);
      return fetch_job(st, row);
    });
  }

  std::vector<Job> list_jobs(const JobQuery& query) override {
    return read("list_jobs", "plugin " + quoted(query.plugin_id), [&](soci::session& sql) {
      JobRow row;
      long long limit = query.limit < 0 ? -1 : query.limit;  // SQLite: LIMIT -1 is no limit
      const int has_name = query.name ? 1 : 0;
      const std::string name = query.name.value_or("");
      soci::statement st(sql);
      row.bind(st);
      st.exchange(soci::use(query.plugin_id));
      st.exchange(soci::use(has_name));
      st.exchange(soci::use(name));
      st.exchange(soci::use(limit));
      prepare(st, queries::list_jobs);
      st.execute();
      std::vector<Job> jobs;
      while (st.fetch()) jobs.push_back(row.to_job());
      return jobs;
    });
  }

  std::optional<Job> reschedule_job(const std::string& plugin_id, const std::string& name, const Due& due) override {
    auto job = write("update_job_next_run", job_subject(plugin_id, name),
                     [&](soci::session& sql, Micros now) -> std::optional<Job> {
                       JobRow row;
                       Micros next = due_micros(due, now);
                       soci::statement st(sql);
                       row.bind(st);
                       st.exchange(soci::use(next));
                       st.exchange(soci::use(plugin_id));
                       st.exchange(soci::use(name));
                       prepare(st, queries::reschedule_job);
                       return fetch_job(st, row);
                     });
    if (job) due_.notify(plugin_id);
    return job;
  }

  bool delete_job(const std::string& plugin_id, const std::string& name) override {
    return write("delete_job", job_subject(plugin_id, name), [&](soci::session& sql, Micros) {
      soci::statement st = (sql.prepare << queries::delete_job, soci::use(plugin_id), soci::use(name));
      st.execute(true);
      return st.get_affected_rows() > 0;
    });
  }

  std::vector<Run> list_runs(const RunQuery& query) override {
    return read("list_runs", "plugin " + quoted(query.plugin_id), [&](soci::session& sql) {
      RunRow row;
      const int has_job = query.job_name ? 1 : 0;
      const std::string job = query.job_name.value_or("");
      const int has_status = query.status ? 1 : 0;
      const std::string status(query.status ? to_string(*query.status) : "");
      long long limit = query.limit < 0 ? -1 : query.limit;
      soci::statement st(sql);
      row.bind(st);
      st.exchange(soci::use(query.plugin_id));
      st.exchange(soci::use(has_job));
      st.exchange(soci::use(job));
      st.exchange(soci::use(has_status));
      st.exchange(soci::use(status));
      st.exchange(soci::use(limit));
      prepare(st, queries::list_runs);
      st.execute();
      std::vector<Run> runs;
      while (st.fetch()) runs.push_back(row.to_run());
      return runs;
    });
  }

  std::int64_t prune_runs(const std::string& plugin_id, microseconds older_than) override {
    return write("prune_runs", "plugin " + quoted(plugin_id), [&](soci::session& sql, Micros now) {
      Micros cutoff = now - older_than.count();
      soci::statement st = (sql.prepare << queries::prune_runs, soci::use(plugin_id), soci::use(cutoff));
      st.execute(true);
      return static_cast<std::int64_t>(st.get_affected_rows());
    });
  }

  std::vector<Run> claim_runs(const ClaimRequest& request) override {
    return write("run_jobs", "server " + quoted(request.server_id), [&](Connection& c, Micros now) {
      auto& due = prepared(c.due, c.sql);
      due.plugin = request.plugin_id;
      due.now = now;
      due.filtered = request.only_jobs ? 1 : 0;
      due.names = request.only_jobs ? json_array(*request.only_jobs) : "[]";
      due.served = request.served_only ? 1 : 0;
      due.server = request.server_id;
      due.limit = request.limit < 0 ? -1 : request.limit;
      struct Due {
        std::string name;
        long long attempt;
        bool requested;
        std::optional<std::string> payload;
      };
      std::vector<Due> names;
      due.st.execute();
      while (due.st.fetch()) {
        names.push_back({due.name, due.failures + 1, due.run_requested != 0,
                         due.payload_ind == soci::i_ok ? std::optional(due.payload) : std::nullopt});
      }
      finish(due.st);
      std::vector<Run> runs;
      if (names.empty()) return runs;
      auto& insert = prepared(c.insert_run, c.sql);
      insert.plugin = request.plugin_id;
      insert.server = request.server_id;
      insert.now = now;
      runs.reserve(names.size());
      for (auto& [job_name, attempt, requested, payload] : names) {
        insert.id = generate_run_id();
        insert.name = job_name;
        insert.attempt = attempt;
        insert.payload = payload.value_or("");
        insert.payload_ind = payload ? soci::i_ok : soci::i_null;
        insert.st.execute(true);
        finish(insert.st);
        // The operator's request, and its arguments, go to this run.
        if (requested || payload) {
          c.sql << queries::clear_request, soci::use(request.plugin_id), soci::use(job_name);
        }
        Run run{insert.id,
                request.plugin_id,
                job_name,
                request.server_id,
                to_timestamp(now),
                to_timestamp(now),
                std::nullopt,
                0,
                0,
                Status::running};
        run.attempt = attempt;
        run.payload = std::move(payload);
        runs.push_back(std::move(run));
      }
      return runs;
    });
  }

  std::vector<std::optional<Run>> transition_runs(std::span<const RunTransition> changes) override {
    const std::string subject =
        changes.size() == 1 ? "run " + quoted(changes.front().run_id) : std::to_string(changes.size()) + " runs";
    return write("update_run", subject, [&](Connection& c, Micros now) {
      std::vector<std::optional<Run>> results;
      results.reserve(changes.size());
      auto& update = prepared(c.update_run, c.sql);
      for (const auto& change : changes) {
        update.to = std::string(to_string(change.to));
        update.now = now;
        update.end = now;
        update.end_ind = is_final(change.to) ? soci::i_ok : soci::i_null;
        update.completed = change.completed_count.value_or(0);
        update.completed_ind = change.completed_count ? soci::i_ok : soci::i_null;
        update.total = change.total_count.value_or(0);
        update.total_ind = change.total_count ? soci::i_ok : soci::i_null;
        update.id = change.run_id;
        update.plugin = change.plugin_id;
        update.message = change.message.value_or("");
        update.message_ind = change.message && is_final(change.to) ? soci::i_ok : soci::i_null;
        const bool found = update.st.execute(true);
        finish(update.st);
        if (!found) {
          results.emplace_back();
          continue;
        }
        Run run = update.row.to_run();
        if (change.reschedule || is_final(change.to)) {
          auto& job = prepared(c.job_after_run, c.sql);
          job.reschedule = change.reschedule ? 1 : 0;
          job.now = now;
          job.next = change.reschedule ? due_micros(*change.reschedule, now) : 0;
          job.final = is_final(change.to) ? 1 : 0;
          job.status = std::string(to_string(change.to));
          job.message = run.message.value_or("");
          job.message_ind = run.message && is_final(change.to) ? soci::i_ok : soci::i_null;
          job.plugin = run.job_plugin_id;
          job.name = run.job_name;
          job.st.execute(true);
          finish(job.st);
        }
        results.emplace_back(std::move(run));
      }
      return results;
    });
  }

  std::vector<Run> interrupt_stale_runs(const StaleRunQuery& query) override {
    auto runs = write("interrupt_runs", "plugin " + quoted(query.plugin_id), [&](soci::session& sql, Micros now) {
      RunRow row;
      Micros cutoff = now - query.threshold.count();
      const int filtered = query.server_id ? 1 : 0;
      const std::string server = query.server_id.value_or("");
      std::string message = query.message.value_or("");
      soci::indicator message_ind = query.message ? soci::i_ok : soci::i_null;
      // Observed runs: a JSON array of [id, update_time] pairs.
      const int observed = query.runs ? 1 : 0;
      std::string runs = "[";
      if (query.runs) {
        for (const auto& run : *query.runs) {
          if (runs.size() > 1) runs.push_back(',');
          runs.append("[");
          append_json_string(runs, run.run_id);
          runs.append(",").append(std::to_string(to_micros(run.update_time))).append("]");
        }
      }
      runs.push_back(']');
      soci::statement st(sql);
      row.bind(st);
      st.exchange(soci::use(now));
      st.exchange(soci::use(now));
      st.exchange(soci::use(message, message_ind));
      st.exchange(soci::use(query.plugin_id));
      st.exchange(soci::use(cutoff));
      st.exchange(soci::use(filtered));
      st.exchange(soci::use(server));
      st.exchange(soci::use(observed));
      st.exchange(soci::use(runs));
      prepare(st, queries::interrupt_stale_runs);
      st.execute();
      std::vector<Run> interrupted;
      while (st.fetch()) interrupted.push_back(row.to_run());
      for (const auto& run : interrupted) {
        sql << queries::job_interrupted, soci::use(now), soci::use(message, message_ind), soci::use(run.job_plugin_id),
            soci::use(run.job_name);
      }
      return interrupted;
    });
    if (!runs.empty()) due_.notify(query.plugin_id);
    return runs;
  }

  // This store's own changes wake the subscribers of their plugin at once;
  // commits through other connections (other processes, other stores) are
  // seen by the commit watcher of a file store, a few milliseconds later, as
  // a wake-up of every plugin (a spurious one costs a claim that finds
  // nothing). The watcher asks the store's writing connection, whose
  // data_version changes with other connections' commits only.
  // Without inotify the subscribers poll at their claim_interval.
  std::unique_ptr<DueSubscription> subscribe_due(const std::string& plugin_id, std::function<void()> on_due) override {
    auto subscription = due_.subscribe(plugin_id, std::move(on_due));
    if (!in_memory_) {
      const std::lock_guard lock(watcher_mutex_);
      if (!watcher_) {
        others_committed();  // the version to compare with
        watcher_ = CommitWatcher::start(
            file_name_, [this] { return others_committed(); }, [this] { due_.notify_all(); });
      }
    }
    return subscription;
  }

  std::optional<Job> set_job_paused(const std::string& plugin_id, const std::string& name, bool paused) override {
    auto job = write(paused ? "pause_job" : "resume_job", job_subject(plugin_id, name),
                     [&](soci::session& sql, Micros) -> std::optional<Job> {
                       JobRow row;
                       int value = paused ? 1 : 0;
                       soci::statement st(sql);
                       row.bind(st);
                       st.exchange(soci::use(value));
                       st.exchange(soci::use(plugin_id));
                       st.exchange(soci::use(name));
                       prepare(st, queries::set_job_paused);
                       return fetch_job(st, row);
                     });
    if (job && !paused) due_.notify(plugin_id);
    return job;
  }

  std::optional<Job> request_run(const std::string& plugin_id, const std::string& name,
                                 const std::optional<std::string>& payload) override {
    bool changed = false;
    auto job =
        write("run_now", job_subject(plugin_id, name), [&](soci::session& sql, Micros now) -> std::optional<Job> {
          JobRow row;
          std::string arguments = payload.value_or("");
          soci::indicator arguments_ind = payload ? soci::i_ok : soci::i_null;
          soci::statement st(sql);
          row.bind(st);
          st.exchange(soci::use(now, "now"));
          st.exchange(soci::use(arguments, arguments_ind, "payload"));
          st.exchange(soci::use(plugin_id, "p"));
          st.exchange(soci::use(name, "n"));
          // A payload that waits for a claim is never replaced: a request
          // with another one changes nothing (core refuses it).
          prepare(st, queries::request_run);
          auto updated = fetch_job(st, row);
          finish(st);
          changed = updated.has_value();
          if (updated) return updated;
          soci::statement current(sql);
          row.bind(current);
          current.exchange(soci::use(plugin_id));
          current.exchange(soci::use(name));
          prepare(current, queries::lookup_job);
          return fetch_job(current, row);
        });
    if (changed) due_.notify(plugin_id);
    return job;
  }

  std::optional<Run> request_cancel(const std::string& plugin_id, const std::string& run_id) override {
    return write("cancel_run", "run " + quoted(run_id), [&](soci::session& sql, Micros) -> std::optional<Run> {
      sql << queries::request_cancel, soci::use(run_id), soci::use(plugin_id);
      RunRow row;
      soci::statement st(sql);
      row.bind(st);
      st.exchange(soci::use(run_id));
      st.exchange(soci::use(plugin_id));
      prepare(st, queries::lookup_run);
      st.execute();
      if (!st.fetch()) return std::nullopt;
      return row.to_run();
    });
  }

  ServerLease record_server(const ServerRecord& record) override {
    return write("record_server", "server " + quoted(record.server_id), [&](soci::session& sql, Micros now) {
      // The holder, if another instance holds the id: nothing is written.
      ServerLease lease;
      Micros seen = 0, expire = 0;
      soci::indicator found = soci::i_null;
      sql << queries::server_holder, soci::into(lease.instance, found), soci::into(lease.address), soci::into(seen),
          soci::into(expire), soci::use(record.plugin_id), soci::use(record.server_id);
      if (found == soci::i_ok && !lease.instance.empty() && lease.instance != record.instance && !record.take_over) {
        lease.seen_time = to_timestamp(seen);
        lease.expire_time = to_timestamp(expire);
        return lease;
      }
      Micros until = now + record.ttl.count();
      sql << queries::record_server, soci::use(record.plugin_id), soci::use(record.server_id),
          soci::use(record.instance), soci::use(record.address), soci::use(now), soci::use(until);
      if (record.jobs) {
        sql << queries::forget_served_jobs, soci::use(record.plugin_id), soci::use(record.server_id);
        for (const auto& job : *record.jobs) {
          sql << queries::record_served_job, soci::use(record.server_id), soci::use(job.fingerprint), soci::use(now),
              soci::use(record.plugin_id), soci::use(job.name);
        }
      }
      return ServerLease{true, record.instance, record.address, to_timestamp(now), to_timestamp(until)};
    });
  }

  void remove_server(const std::string& plugin_id, const std::string& server_id, const std::string& instance) override {
    write("remove_server", "server " + quoted(server_id), [&](soci::session& sql, Micros) {
      sql << queries::remove_server, soci::use(plugin_id), soci::use(server_id), soci::use(instance),
          soci::use(instance);
      return 0;
    });
  }

  std::optional<Run> record_work_end(const std::string& plugin_id, const std::string& run_id,
                                     Timestamp ended) override {
    return write("record_work_end", "run " + quoted(run_id), [&](soci::session& sql, Micros) -> std::optional<Run> {
      RunRow row;
      Micros at = to_micros(ended);
      soci::statement st(sql);
      row.bind(st);
      st.exchange(soci::use(at));
      st.exchange(soci::use(run_id));
      st.exchange(soci::use(plugin_id));
      prepare(st, queries::record_work_end);
      st.execute();
      if (!st.fetch()) return std::nullopt;
      return row.to_run();
    });
  }

  std::vector<Serving> list_servings(const std::string& plugin_id, const std::optional<std::string>& name) override {
    return read("list_servings", "plugin " + quoted(plugin_id), [&](Connection& c) {
      Micros current = now(c);
      const int has_name = name ? 1 : 0;
      const std::string job = name.value_or("");
      ServingRow row;
      soci::statement st(c.sql);
      row.bind(st);
      st.exchange(soci::use(current));
      st.exchange(soci::use(plugin_id));
      st.exchange(soci::use(has_name));
      st.exchange(soci::use(job));
      prepare(st, queries::list_servings);
      st.execute();
      std::vector<Serving> servings;
      while (st.fetch()) servings.push_back(row.to_serving());
      return servings;
    });
  }

  std::optional<Run> lookup_run(const std::string& plugin_id, const std::string& run_id) override {
    return read("lookup_run", "run " + quoted(run_id), [&](soci::session& sql) -> std::optional<Run> {
      RunRow row;
      soci::statement st(sql);
      row.bind(st);
      st.exchange(soci::use(run_id));
      st.exchange(soci::use(plugin_id));
      prepare(st, queries::lookup_run);
      st.execute();
      if (!st.fetch()) return std::nullopt;
      return row.to_run();
    });
  }
};

// `path` from the root (messages name the file a daemon means, whatever its
// working directory), as written otherwise.
std::string absolute_path(const std::string& path) {
  if (path.empty() || path.front() == '/') return path;
  std::string directory(4096, '\0');
  if (::getcwd(directory.data(), directory.size()) == nullptr) return path;
  directory.resize(std::strlen(directory.c_str()));
  return directory + (directory.back() == '/' ? "" : "/") + path;
}

// Why no database may be opened or created at `path`, in one line, or empty:
// its -wal or -shm exists while the file itself is missing or empty. They
// belong to a database that was moved or deleted, whose last commits may live
// only in that WAL (not yet checkpointed into the file), and SQLite, creating
// or opening a database at the path, would delete or reset them: the history
// would be lost. The leftovers are looked at before the file: a database
// being created gets content before its -wal and -shm exist, so another
// process creating one at the same moment never looks like this.
std::string leftovers_problem(const std::string& path) {
  std::vector<std::string> found;
  struct stat st {};
  for (const char* suffix : {"-wal", "-shm"}) {
    if (::stat((path + suffix).c_str(), &st) == 0) found.push_back(path + suffix);
  }
  if (found.empty()) return {};
  std::string state;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) return {};  // SQLite's open names that problem
    state = "does not exist";
  } else if (S_ISREG(st.st_mode) && st.st_size == 0) {
    state = "is empty";
  } else {
    return {};
  }
  std::string names = quoted(found.front());
  if (found.size() > 1) names += " and " + quoted(found.back());
  return "sqlite database " + quoted(path) + " " + state + " but " + names + (found.size() > 1 ? " exist" : " exists") +
         ": they belong to a database that was moved or deleted, whose last commits may be only in its -wal;"
         " move it back to " +
         quoted(path) + ", or remove " + names + " to start a new database there";
}

// Creates the database file readable and writable by its owner only, when it
// does not exist yet (SQLite gives its -wal and -shm files the same mode).
void create_private_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
  if (fd >= 0) {
    ::close(fd);
    return;
  }
  if (errno == EEXIST) return;
  throw Error(ErrorCode::unavailable,
              "open_store: cannot create sqlite database " + quoted(path) + ": " + std::strerror(errno));
}

// Throws unavailable (native code ENOENT) when the database file does not
// exist, for stores that must not create it. Other failures are left to
// SQLite's open, which names them.
void require_existing_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 && errno == ENOENT) {
    throw Error(ErrorCode::unavailable, "open_store: sqlite database " + quoted(path) + " does not exist", "ENOENT");
  }
}

}  // namespace

}  // namespace jobrepo::sqlite_backend

namespace jobrepo {

std::unique_ptr<Store> open_sqlite_store(const SqliteOptions& options) {
  if (options.path.empty()) throw Error(ErrorCode::invalid_parameter, "open_store: missing sqlite database path");
  // SOCI's connect string cannot quote a '"'; a C file name ends at a NUL.
  for (const auto& [c, what] : {std::pair{'"', "a double quote"}, std::pair{'\0', "a NUL byte"}}) {
    if (options.path.find(c) != std::string::npos) {
      throw Error(ErrorCode::invalid_parameter,
                  "open_store: sqlite database path " + sqlite_backend::quoted(options.path) + " contains " + what);
    }
  }
  if (const auto problem = store_options_problem({options.pool_size, options.busy_timeout, options.create_if_missing});
      !problem.empty()) {
    throw Error(ErrorCode::invalid_parameter, "open_store: " + problem);
  }
  const bool file = options.path != ":memory:";
  // Leftovers of a database moved away: refuse before creating anything.
  const auto refuse_leftovers = [&] {
    const std::string problem = sqlite_backend::leftovers_problem(sqlite_backend::absolute_path(options.path));
    if (!problem.empty()) throw Error(ErrorCode::unavailable, "open_store: " + problem);
  };
  if (file) {
    refuse_leftovers();
    if (options.create_if_missing) {
      sqlite_backend::create_private_file(options.path);
    } else {
      sqlite_backend::require_existing_file(options.path);
    }
  }
  try {
    return std::make_unique<sqlite_backend::SqliteStore>(options);
  } catch (const soci::soci_error& e) {
    // The store's VFS refused a file deleted or emptied since the check
    // above: say why.
    if (file) refuse_leftovers();
    throw sqlite_backend::make_error("open_store", "sqlite database " + sqlite_backend::quoted(options.path), e);
  }
}

void register_sqlite_backend() {
  static std::once_flag once;
  std::call_once(once, [] {
    const auto factory = [](const std::string& url, const StoreOptions& store_options) {
      // sqlite:PATH[?synchronous=full|normal], sqlite::memory:
      std::string rest = url.substr(url.find(':') + 1);
      SqliteOptions options;
      options.pool_size = store_options.pool_size;
      options.busy_timeout = store_options.busy_timeout;
      options.create_if_missing = store_options.create_if_missing;
      if (const auto query = rest.find('?'); query != std::string::npos) {
        const std::string parameter = rest.substr(query + 1);
        rest.resize(query);
        if (parameter == "synchronous=full") {
          options.synchronous = SqliteSynchronous::full;
        } else if (parameter == "synchronous=normal") {
          options.synchronous = SqliteSynchronous::normal;
        } else {
          throw Error(ErrorCode::invalid_parameter, "open_store: unknown sqlite URL parameter \"" + parameter +
                                                        "\" (expected synchronous=full or synchronous=normal)");
        }
      }
      options.path = rest;
      return open_sqlite_store(options);
    };
    // Paths are not secret: messages show sqlite URLs as they are.
    register_backend("sqlite", factory, [](const std::string& url) { return url; });
  });
}

}  // namespace jobrepo
