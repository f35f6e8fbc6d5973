#include "store.hpp"

#include "connection.hpp"
#include "errors.hpp"
#include "queries.hpp"
#include "store_support.hpp"
#include "transaction.hpp"
#include "wakeups.hpp"

#include <jobrepo/error.hpp>

#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace jobrepo::sqlite_backend {

namespace {

using std::chrono::microseconds;
using namespace store_support;  // NOLINT(google-build-using-namespace)

std::optional<Job> first_job(const std::vector<Row>& rows) {
  if (rows.empty()) return std::nullopt;
  return job_from_row(rows.front());
}

std::optional<Run> first_run(const std::vector<Row>& rows) {
  if (rows.empty()) return std::nullopt;
  return run_from_row(rows.front());
}

std::vector<Run> to_runs(const std::vector<Row>& rows) {
  std::vector<Run> runs;
  runs.reserve(rows.size());
  for (const auto& row : rows) runs.push_back(run_from_row(row));
  return runs;
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

// Thrown by SqliteStore::connect() when the path no longer holds the store's
// file; acquire() turns it into the error of the operation that asked.
struct FileMoved {};

class SqliteStore final : public Store {
 private:
  std::unique_ptr<Connection> connect() {
    // Once the file moved, a new connection would open (or create) another
    // database at the path: refuse (see check_not_moved()).
    refuse_if_moved();
    // A connection never creates a database file (open_sqlite_store() did,
    // when create_if_missing): a file deleted since then is not created again.
    auto connection = std::make_unique<Connection>(options_.path, options_.busy_timeout);
    connection->contention = &contention_;
    sqlite3_busy_handler(connection->native(), on_busy, connection.get());
    connection->run_script("PRAGMA foreign_keys = ON");
    connection->run_script(options_.synchronous == SqliteSynchronous::full ? "PRAGMA synchronous = FULL"
                                                                           : "PRAGMA synchronous = NORMAL");
    if (!in_memory_) {
      // Switching a new file to WAL needs it alone for a moment; when another
      // process opens the same new file at the same time SQLite may answer
      // SQLITE_BUSY at once, without its busy handler: retry until the timeout.
      for (Retry retry(options_.busy_timeout);;) {
        try {
          connection->run_script("PRAGMA journal_mode = WAL");
          break;
        } catch (const DatabaseError& e) {
          if (!is_busy(e.code()) || !retry.again()) throw;
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
    } catch (const DatabaseError& e) {
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
      sqlite3_file_control(c.native(), "main", SQLITE_FCNTL_HAS_MOVED, &moved);
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
  Micros clock_us() const {
    return to_micros(std::chrono::floor<std::chrono::milliseconds>(source_time())) + clock_offset().count();
  }

  static int schema_version(Connection& c) {
    const auto rows = c.query(queries::schema_version, {});
    return rows.empty() || rows.front().null(0) ? 0 : static_cast<int>(rows.front().number(0));
  }

  // Throws schema_mismatch unless the database has exactly the schema version
  // this build ships. Only success is remembered, so that a migration by
  // another process is seen at once.
  void check_schema(const char* operation, Connection& c) {
    if (schema_ok_) return;
    check_schema_version(operation, schema_version(c), migrations());
    schema_ok_ = true;
  }

  // Runs `body(connection, now)` in a BEGIN IMMEDIATE transaction. Lock
  // conflicts are waited out by SQLite's busy handler and retried here until
  // busy_timeout has passed; then ErrorCode::busy.
  //
  // A file store writes through a connection of its own, so that its
  // data_version changes with other connections' commits only (the commit
  // watcher reads it) and a writer never waits for a pooled connection. The
  // writes of its threads are combined: a thread that finds another writing
  // queues its write, and the writing thread runs every write queued when
  // its transaction begins (up to 64), each in a savepoint of its own, in
  // that one transaction: each write succeeds or fails alone, and one commit
  // (one fsync with synchronous FULL) serves them all. Only the one writing
  // waits in SQLite's busy handler for other processes. An in-memory store
  // writes through its one connection, one write at a time.
  template <class Body>
  auto write(const char* operation, const std::string& subject, Body&& body, bool check = true) {
    if (in_memory_) {
      const std::lock_guard writer(writer_mutex_);
      auto lease = acquire(operation, subject);
      return write_on(*lease, operation, subject, std::forward<Body>(body), check);
    }
    std::optional<std::invoke_result_t<Body&, Connection&, Micros>> result;
    PendingWrite write{operation, &subject, check, [&](Connection& c, Micros now) { result.emplace(body(c, now)); },
                       {},        false};
    combine(write);
    if (write.error) {
      try {
        std::rethrow_exception(write.error);
      } catch (const DatabaseError& e) {
        throw make_error(operation, subject, e, file_name_);
      }
    }
    if (!result) throw Error(ErrorCode::internal, std::string(operation) + ": the write ended without a result");
    return std::move(*result);
  }

  // A write waiting for the writing thread (write()).
  struct PendingWrite {
    const char* operation;
    const std::string* subject;
    bool check;
    std::function<void(Connection&, Micros)> run;
    std::exception_ptr error;  // what it threw, or the transaction's failure
    bool done = false;         // under queue_mutex_
  };

  // Queues `write` and returns when it was written or failed: written by
  // this thread, with the writes queued meanwhile, when no other thread is
  // writing; otherwise by the thread that is.
  void combine(PendingWrite& write) {
    std::unique_lock lock(queue_mutex_);
    queue_.push_back(&write);
    for (;;) {
      queue_ready_.wait(lock, [&] { return write.done || !writing_; });
      if (write.done) return;
      writing_ = true;
      Batch batch;
      while (!queue_.empty() && batch.size < batch.writes.size()) {
        batch.writes[batch.size++] = queue_.front();
        queue_.pop_front();
      }
      lock.unlock();
      write_batch(batch);
      lock.lock();
      for (auto* pending : batch) pending->done = true;
      writing_ = false;
      queue_ready_.notify_all();
    }
  }

  // Whether `error` is SQLite's lock conflict (SQLITE_BUSY, SQLITE_LOCKED).
  static bool busy_error(const std::exception_ptr& error) {
    try {
      std::rethrow_exception(error);
    } catch (const DatabaseError& e) {
      return is_busy(e.code());
    } catch (...) {
      return false;
    }
  }

  // The writes of one transaction, in the order they were queued.
  struct Batch {
    std::array<PendingWrite*, 64> writes{};
    std::size_t size = 0;
    PendingWrite** begin() { return writes.data(); }
    PendingWrite** end() { return writes.data() + size; }
    PendingWrite& front() { return *writes[0]; }
  };

  // Runs `batch` in one transaction on the writing connection; never throws
  // (each write's failure is its `error`).
  void write_batch(Batch& batch) noexcept {
    const std::lock_guard writer(writer_mutex_);
    // The connection, once for the batch; when it cannot be had, every write
    // fails with that, in its own words (the operation that asked).
    const auto writable = [&](const PendingWrite& pending) -> Connection& {
      Connection& connection = writer_connection(pending.operation, *pending.subject);
      // Every write fails on a file SQLite opened read-only, also one that
      // would change nothing (migrate() of a migrated database, a claim
      // that finds no due job), so that a caller sees it at its first write.
      if (sqlite3_db_readonly(connection.native(), "main") == 1) {
        throw make_error(pending.operation, *pending.subject, SQLITE_READONLY, sqlite3_errstr(SQLITE_READONLY),
                         file_name_);
      }
      return connection;
    };
    Connection* connection = nullptr;
    try {
      connection = &writable(batch.front());
    } catch (...) {
      const auto first = std::current_exception();
      for (auto* pending : batch) {
        try {
          writable(*pending);
          pending->error = first;
        } catch (...) {
          pending->error = std::current_exception();
        }
      }
      return;
    }
    Connection& c = *connection;
    const auto one = [&](PendingWrite& pending) {
      // After BEGIN IMMEDIATE: waiting for the lock may take long, and a
      // replacement meanwhile must not go unseen.
      check_not_moved(pending.operation, c);
      if (pending.check) check_schema(pending.operation, c);
      pending.run(c, clock_us());
    };
    for (Retry retry(options_.busy_timeout);;) {
      for (auto* pending : batch) pending->error = nullptr;
      try {
        in_transaction(c, [&] {
          if (batch.size == 1) {
            one(batch.front());
            return 0;
          }
          for (auto* pending : batch) {
            c.execute(queries::savepoint, {});
            try {
              one(*pending);
              c.execute(queries::release_savepoint, {});
            } catch (...) {
              // SQLite ended the whole transaction (SQLITE_FULL,
              // SQLITE_IOERR): every write of the batch fails with it. A
              // lock conflict is the batch's: it runs again (Retry), as a
              // write alone does.
              if (sqlite3_get_autocommit(c.native()) != 0 || busy_error(std::current_exception())) throw;
              pending->error = std::current_exception();
              c.execute(queries::rollback_to_savepoint, {});
              c.execute(queries::release_savepoint, {});
            }
          }
          return 0;
        });
        yield_to_other_processes();
        return;
      } catch (const DatabaseError& e) {
        if (is_busy(e.code()) && retry.again()) continue;
        for (auto* pending : batch) pending->error = std::current_exception();
        return;
      } catch (...) {
        for (auto* pending : batch) pending->error = std::current_exception();
        return;
      }
    }
  }

  // The file store's writing connection, opened at its first use. SQLite
  // opens a file that it may not write read-only, and such a connection
  // stays so (its writes fail with SQLITE_READONLY): it is opened again at
  // its next use, so that writes work once the file is writable. Under
  // writer_mutex_.
  Connection& writer_connection(const char* operation, const std::string& subject) {
    if (moved_) throw moved_error(operation);
    if (writer_ && sqlite3_db_readonly(writer_->native(), "main") == 1) writer_.reset();
    if (!writer_) {
      try {
        writer_ = connect();
      } catch (const FileMoved&) {
        throw moved_error(operation);
      } catch (const DatabaseError& e) {
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
      const auto rows = c.query(queries::data_version, {});
      const std::int64_t version = rows.empty() ? -1 : rows.front().number(0);
      const bool changed = version != watched_version_;
      watched_version_ = version;
      return changed;
    } catch (...) {
      return true;
    }
  }

  // An in-memory store's write on its one connection.
  template <class Body>
  auto write_on(Connection& connection, const char* operation, const std::string& subject, Body&& body, bool check) {
    for (Retry retry(options_.busy_timeout);;) {
      try {
        auto result = in_transaction(connection, [&] {
          // After BEGIN IMMEDIATE: waiting for the lock may take long, and a
          // replacement meanwhile must not go unseen.
          check_not_moved(operation, connection);
          if (check) check_schema(operation, connection);
          return body(connection, clock_us());
        });
        yield_to_other_processes();
        return result;
      } catch (const DatabaseError& e) {
        // SQLite's words were read when the statement failed (e), before
        // the rollback replaced them with its own.
        if (is_busy(e.code()) && retry.again()) continue;
        throw make_error(operation, subject, e, file_name_);
      }
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

  // Runs a read-only `body(connection)`; a single SELECT is atomic on its own.
  template <class Body>
  auto read(const char* operation, const std::string& subject, Body&& body) {
    auto lease = acquire(operation, subject);
    check_not_moved(operation, *lease);
    for (Retry retry(options_.busy_timeout);;) {
      try {
        check_schema(operation, *lease);
        return body(*lease);
      } catch (const DatabaseError& e) {
        if (is_busy(e.code()) && retry.again()) continue;
        throw make_error(operation, subject, e, file_name_);
      }
    }
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
  std::mutex queue_mutex_;               // the writes waiting (combine())
  std::condition_variable queue_ready_;  // a write done, or no thread writing
  std::deque<PendingWrite*> queue_;      // under queue_mutex_
  bool writing_ = false;                 // under queue_mutex_
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
    file_name_ = sqlite3_db_filename(lease->native(), "main");
    // The file now at the path, then whether that is the one SQLite opened
    // (in this order, so that a replacement at any moment is seen).
    struct stat st {};
    const bool exists = ::stat(file_name_.c_str(), &st) == 0;
    int moved = 0;
    sqlite3_file_control(lease->native(), "main", SQLITE_FCNTL_HAS_MOVED, &moved);
    if (!exists || moved != 0) {
      throw Error(ErrorCode::unavailable, "open_store: sqlite database " + quoted(file_name_) +
                                              " was deleted or replaced while it was being opened; open it again");
    }
    file_id_ = {st.st_dev, st.st_ino};
  }

  StoreContract8 contract() const override { return {}; }

  void migrate() override {
    write(
        "migrate", "",
        [&](Connection& c, Micros now) {
          c.run_script(queries::create_schema_table);
          apply_migrations(schema_version(c), migrations(), [&](const Migration& migration) {
            c.run_script(std::string(migration.sql).c_str());
            const std::string name(migration.name);
            c.execute(queries::record_schema_version,
                      {{":v", number(migration.version)}, {":n", text(name)}, {":t", number(now)}});
          });
          return 0;
        },
        /*check_schema=*/false);
    schema_ok_ = true;
  }

  Timestamp now() override {
    return read("now", "sqlite database " + quoted(options_.path),
                [&](Connection&) { return to_timestamp(clock_us()); });
  }

  Job create_job(const NewJob& job) override {
    auto created = write("create_job", job_subject(job.plugin_id, job.name), [&](Connection& c, Micros now) {
      const Micros next = due_micros(job.due, now);
      c.execute(queries::create_job, {{":p", text(job.plugin_id)},
                                      {":n", text(job.name)},
                                      {":d", text(job.description)},
                                      {":t", number(next)},
                                      {":s", text(job.schedule)}});
      return Job{job.plugin_id, job.name, job.description, to_timestamp(next), job.schedule};
    });
    due_.notify(job.plugin_id);
    return created;
  }

  Job ensure_job(const NewJob& job) override {
    auto ensured = write("ensure_job", job_subject(job.plugin_id, job.name), [&](Connection& c, Micros now) {
      const Micros next = due_micros(job.due, now);
      return job_from_row(c.query(queries::ensure_job, {{":p", text(job.plugin_id)},
                                                        {":n", text(job.name)},
                                                        {":d", text(job.description)},
                                                        {":t", number(next)},
                                                        {":s", text(job.schedule)}})
                              .at(0));
    });
    due_.notify(job.plugin_id);
    return ensured;
  }

  std::optional<Job> lookup_job(const std::string& plugin_id, const std::string& name) override {
    return read("lookup_job", job_subject(plugin_id, name), [&](Connection& c) {
      return first_job(c.query(queries::lookup_job, {{":p", text(plugin_id)}, {":n", text(name)}}));
    });
  }

  std::vector<Job> list_jobs(const JobQuery& query) override {
    return read("list_jobs", "plugin " + quoted(query.plugin_id), [&](Connection& c) {
      const std::string name = query.name.value_or("");
      std::vector<Job> jobs;
      for (const auto& row : c.query(queries::list_jobs, {{":p", text(query.plugin_id)},
                                                          {":has_name", flag(query.name.has_value())},
                                                          {":n", text(name)},
                                                          // SQLite: LIMIT -1 is no limit
                                                          {":l", number(query.limit < 0 ? -1 : query.limit)}})) {
        jobs.push_back(job_from_row(row));
      }
      return jobs;
    });
  }

  std::optional<Job> reschedule_job(const std::string& plugin_id, const std::string& name, const Due& due) override {
    auto job = write("update_job_next_run", job_subject(plugin_id, name), [&](Connection& c, Micros now) {
      return first_job(c.query(queries::reschedule_job,
                               {{":t", number(due_micros(due, now))}, {":p", text(plugin_id)}, {":n", text(name)}}));
    });
    if (job) due_.notify(plugin_id);
    return job;
  }

  bool delete_job(const std::string& plugin_id, const std::string& name) override {
    return write("delete_job", job_subject(plugin_id, name), [&](Connection& c, Micros) {
      return c.execute(queries::delete_job, {{":p", text(plugin_id)}, {":n", text(name)}}) > 0;
    });
  }

  std::vector<Run> list_runs(const RunQuery& query) override {
    return read("list_runs", "plugin " + quoted(query.plugin_id), [&](Connection& c) {
      const std::string job = query.job_name.value_or("");
      const std::string status(query.status ? to_string(*query.status) : "");
      return to_runs(c.query(queries::list_runs, {{":p", text(query.plugin_id)},
                                                  {":has_job", flag(query.job_name.has_value())},
                                                  {":j", text(job)},
                                                  {":has_status", flag(query.status.has_value())},
                                                  {":s", text(status)},
                                                  {":l", number(query.limit < 0 ? -1 : query.limit)}}));
    });
  }

  std::int64_t prune_runs(const std::string& plugin_id, microseconds older_than) override {
    return write("prune_runs", "plugin " + quoted(plugin_id), [&](Connection& c, Micros now) {
      return c.execute(queries::prune_runs, {{":p", text(plugin_id)}, {":c", number(now - older_than.count())}});
    });
  }

  std::optional<std::int64_t> prune_job_runs(const std::string& plugin_id, const JobRunsPrune& prune) override {
    return write("prune_job_runs", job_subject(plugin_id, prune.job_name),
                 [&](Connection& c, Micros now) -> std::optional<std::int64_t> {
                   if (c.query(queries::job_exists, {{":p", text(plugin_id)}, {":n", text(prune.job_name)}}).empty()) {
                     return std::nullopt;
                   }
                   std::optional<Micros> cutoff;
                   if (prune.older_than) cutoff = now - prune.older_than->count();
                   return c.execute(queries::prune_job_runs, {{":p", text(plugin_id)},
                                                              {":n", text(prune.job_name)},
                                                              {":keep", optional_value(prune.keep_last)},
                                                              {":c", optional_value(cutoff)},
                                                              {":l", number(prune.limit)}});
                 });
  }

  std::vector<Run> claim_runs(const ClaimRequest& request) override {
    return write("run_jobs", "server " + quoted(request.server_id), [&](Connection& c, Micros now) {
      const std::string names = request.only_jobs ? json_array(*request.only_jobs) : "[]";
      const auto due = c.query(queries::claim_due, {{":p", text(request.plugin_id)},
                                                    {":now", number(now)},
                                                    {":filtered", flag(request.only_jobs.has_value())},
                                                    {":names", text(names)},
                                                    {":served", flag(request.served_only)},
                                                    {":server", text(request.server_id)},
                                                    {":l", number(request.limit < 0 ? -1 : request.limit)}});
      std::vector<Run> runs;
      runs.reserve(due.size());
      for (const auto& job : due) {
        const std::string& job_name = job.text(0);
        const long long attempt = job.number(1) + 1;
        auto payload = job.optional_text(3);
        Run run{generate_run_id(),
                request.plugin_id,
                job_name,
                request.server_id,
                to_timestamp(now),
                to_timestamp(now),
                std::nullopt,
                0,
                0,
                Status::running};
        c.execute(queries::insert_run, {{":id", text(run.private_id)},
                                        {":p", text(request.plugin_id)},
                                        {":n", text(job_name)},
                                        {":s", text(request.server_id)},
                                        {":c", number(now)},
                                        {":a", number(attempt)},
                                        {":payload", optional_value(payload)}});
        // The operator's request, and its arguments, go to this run.
        if (job.number(2) != 0 || payload) {
          c.execute(queries::clear_request, {{":p", text(request.plugin_id)}, {":n", text(job_name)}});
        }
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
      for (const auto& change : changes) {
        const std::string status(to_string(change.to));
        const bool final = is_final(change.to);
        auto run = first_run(c.query(queries::update_run, {{":s", text(status)},
                                                           {":u", number(now)},
                                                           {":e", final ? number(now) : Value()},
                                                           {":c", optional_value(change.completed_count)},
                                                           {":t", optional_value(change.total_count)},
                                                           {":m", final ? optional_value(change.message) : Value()},
                                                           {":id", text(change.run_id)},
                                                           {":p", text(change.plugin_id)}}));
        if (run && (change.reschedule || final)) {
          c.execute(queries::job_after_run,
                    {{":r1", flag(change.reschedule.has_value())},
                     {":n1", number(now)},
                     {":next", number(change.reschedule ? due_micros(*change.reschedule, now) : 0)},
                     {":f1", flag(final)},
                     {":s1", text(status)},
                     {":m", final ? optional_value(run->message) : Value()},
                     {":p", text(run->job_plugin_id)},
                     {":n", text(run->job_name)}});
        }
        results.push_back(std::move(run));
      }
      return results;
    });
  }

  std::vector<Run> interrupt_stale_runs(const StaleRunQuery& query) override {
    const std::string server = query.server_id.value_or("");
    const std::string observed = query.runs ? observed_runs_json(*query.runs) : "[]";
    auto runs = write("interrupt_runs", "plugin " + quoted(query.plugin_id), [&](Connection& c, Micros now) {
      auto interrupted =
          to_runs(c.query(queries::interrupt_stale_runs, {{":u", number(now)},
                                                          {":e", number(now)},
                                                          {":m", optional_value(query.message)},
                                                          {":p", text(query.plugin_id)},
                                                          {":c", number(now - query.threshold.count())},
                                                          {":filtered", flag(query.server_id.has_value())},
                                                          {":s", text(server)},
                                                          {":observed", flag(query.runs.has_value())},
                                                          {":runs", text(observed)}}));
      for (const auto& run : interrupted) {
        c.execute(queries::job_interrupted, {{":t", number(now)},
                                             {":m", optional_value(query.message)},
                                             {":p", text(run.job_plugin_id)},
                                             {":n", text(run.job_name)}});
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
    auto job = write(paused ? "pause_job" : "resume_job", job_subject(plugin_id, name), [&](Connection& c, Micros) {
      return first_job(
          c.query(queries::set_job_paused, {{":v", flag(paused)}, {":p", text(plugin_id)}, {":n", text(name)}}));
    });
    if (job && !paused) due_.notify(plugin_id);
    return job;
  }

  std::optional<Job> request_run(const std::string& plugin_id, const std::string& name,
                                 const std::optional<std::string>& payload) override {
    bool changed = false;
    auto job = write("run_now", job_subject(plugin_id, name), [&](Connection& c, Micros now) {
      // A payload that waits for a claim is never replaced: a request
      // with another one changes nothing (core refuses it).
      auto updated = first_job(c.query(
          queries::request_run,
          {{":now", number(now)}, {":payload", optional_value(payload)}, {":p", text(plugin_id)}, {":n", text(name)}}));
      changed = updated.has_value();
      if (updated) return updated;
      return first_job(c.query(queries::lookup_job, {{":p", text(plugin_id)}, {":n", text(name)}}));
    });
    if (changed) due_.notify(plugin_id);
    return job;
  }

  std::optional<Run> request_cancel(const std::string& plugin_id, const std::string& run_id) override {
    return write("cancel_run", "run " + quoted(run_id), [&](Connection& c, Micros) {
      c.execute(queries::request_cancel, {{":id", text(run_id)}, {":p", text(plugin_id)}});
      return first_run(c.query(queries::lookup_run, {{":id", text(run_id)}, {":p", text(plugin_id)}}));
    });
  }

  ServerLease record_server(const ServerRecord& record) override {
    return write("record_server", "server " + quoted(record.server_id), [&](Connection& c, Micros now) {
      // The holder, if another instance holds the id: nothing is written.
      const auto holder =
          c.query(queries::server_holder, {{":p", text(record.plugin_id)}, {":s", text(record.server_id)}});
      if (!holder.empty() && !holder.front().text(0).empty() && holder.front().text(0) != record.instance &&
          !record.take_over) {
        const auto& row = holder.front();
        return ServerLease{false, row.text(0), row.text(1), to_timestamp(row.number(2)), to_timestamp(row.number(3))};
      }
      const Micros until = now + record.ttl.count();
      c.execute(queries::record_server, {{":p", text(record.plugin_id)},
                                         {":s", text(record.server_id)},
                                         {":i", text(record.instance)},
                                         {":a", text(record.address)},
                                         {":t", number(now)},
                                         {":e", number(until)}});
      if (record.jobs) {
        c.execute(queries::forget_served_jobs, {{":p", text(record.plugin_id)}, {":s", text(record.server_id)}});
        for (const auto& job : *record.jobs) {
          c.execute(queries::record_served_job, {{":s", text(record.server_id)},
                                                 {":f", text(job.fingerprint)},
                                                 {":t", number(now)},
                                                 {":p", text(record.plugin_id)},
                                                 {":n", text(job.name)}});
        }
      }
      return ServerLease{true, record.instance, record.address, to_timestamp(now), to_timestamp(until)};
    });
  }

  void remove_server(const std::string& plugin_id, const std::string& server_id, const std::string& instance) override {
    write("remove_server", "server " + quoted(server_id), [&](Connection& c, Micros) {
      c.execute(queries::remove_server, {{":p", text(plugin_id)}, {":s", text(server_id)}, {":i", text(instance)}});
      return 0;
    });
  }

  std::optional<Run> record_work_end(const std::string& plugin_id, const std::string& run_id,
                                     Timestamp ended) override {
    return write("record_work_end", "run " + quoted(run_id), [&](Connection& c, Micros) {
      return first_run(c.query(queries::record_work_end,
                               {{":w", number(to_micros(ended))}, {":id", text(run_id)}, {":p", text(plugin_id)}}));
    });
  }

  std::vector<Serving> list_servings(const std::string& plugin_id, const std::optional<std::string>& name) override {
    return read("list_servings", "plugin " + quoted(plugin_id), [&](Connection& c) {
      const std::string job = name.value_or("");
      std::vector<Serving> servings;
      for (const auto& row : c.query(queries::list_servings, {{":now", number(clock_us())},
                                                              {":p", text(plugin_id)},
                                                              {":has_name", flag(name.has_value())},
                                                              {":n", text(job)}})) {
        servings.push_back(Serving{row.text(0), row.text(1), row.text(2), to_timestamp(row.number(3)),
                                   to_timestamp(row.number(4)), row.number(5) != 0});
      }
      return servings;
    });
  }

  std::optional<Run> lookup_run(const std::string& plugin_id, const std::string& run_id) override {
    return read("lookup_run", "run " + quoted(run_id), [&](Connection& c) {
      return first_run(c.query(queries::lookup_run, {{":id", text(run_id)}, {":p", text(plugin_id)}}));
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
// A path that is a dangling symbolic link gets its target created so: O_EXCL
// does not follow the link (EEXIST), and SQLite's own open would create the
// target with its default mode, 0644, or not at all (a connection never
// creates a file).
void create_private_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0 && errno == EEXIST) {
    struct stat link {};
    struct stat target {};
    const bool dangling = ::lstat(path.c_str(), &link) == 0 && S_ISLNK(link.st_mode) &&
                          ::stat(path.c_str(), &target) != 0 && errno == ENOENT;
    if (!dangling) return;
    // Without O_EXCL, to follow the link; a target made meanwhile is opened as it is.
    fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC | O_NOCTTY, 0600);
  }
  if (fd >= 0) {
    ::close(fd);
    return;
  }
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
  // A C file name ends at a NUL.
  if (options.path.find('\0') != std::string::npos) {
    throw Error(ErrorCode::invalid_parameter,
                "open_store: sqlite database path " + sqlite_backend::quoted(options.path) + " contains a NUL byte");
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
  } catch (const sqlite_backend::DatabaseError& e) {
    // The connection refused a file deleted or emptied since the check
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
