// The SQLite backend's own behaviour: error mapping, file creation, busy
// handling, URLs. The Repository contract itself is in the conformance suite.
#include "sqlite/src/connection.hpp"
#include "sqlite/src/errors.hpp"
#include "sqlite/src/store.hpp"

#include <jobrepo/jobrepo.hpp>

#include "error_of.hpp"
#include "read_only.hpp"
#include "temp_dir.hpp"

#include <sqlite3.h>
#include <catch2/catch.hpp>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace std::chrono_literals;
using jobrepo::ErrorCode;
using jobrepo::test::code_of;
using jobrepo::test::TempDir;
namespace fs = std::filesystem;

TEST_CASE("sqlite: driver errors map to one ErrorCode each") {
  using jobrepo::sqlite_backend::error_code_for;
  CHECK(error_code_for(SQLITE_CONSTRAINT_UNIQUE, "") == ErrorCode::not_unique);
  CHECK(error_code_for(SQLITE_CONSTRAINT_PRIMARYKEY, "") == ErrorCode::not_unique);
  CHECK(error_code_for(SQLITE_CONSTRAINT_CHECK, "") == ErrorCode::check_constraint);
  CHECK(error_code_for(SQLITE_CONSTRAINT_NOTNULL, "") == ErrorCode::check_constraint);
  CHECK(error_code_for(SQLITE_CONSTRAINT_FOREIGNKEY, "") == ErrorCode::record_not_found);
  CHECK(error_code_for(SQLITE_CONSTRAINT_TRIGGER, "") == ErrorCode::invalid_job_run_state);
  CHECK(error_code_for(SQLITE_BUSY, "") == ErrorCode::busy);
  CHECK(error_code_for(SQLITE_BUSY_SNAPSHOT, "") == ErrorCode::busy);
  CHECK(error_code_for(SQLITE_LOCKED, "") == ErrorCode::busy);
  CHECK(error_code_for(SQLITE_CANTOPEN, "") == ErrorCode::unavailable);
  CHECK(error_code_for(SQLITE_IOERR_FSYNC, "") == ErrorCode::unavailable);
  CHECK(error_code_for(SQLITE_FULL, "") == ErrorCode::unavailable);
  // The file cannot be written or opened as it is now (a read-only file,
  // directory or file system, permissions, a file moved under SQLite).
  CHECK(error_code_for(SQLITE_READONLY, "attempt to write a readonly database") == ErrorCode::unavailable);
  CHECK(error_code_for(SQLITE_READONLY_DBMOVED, "") == ErrorCode::unavailable);
  CHECK(error_code_for(SQLITE_READONLY_CANTINIT, "") == ErrorCode::unavailable);
  CHECK(error_code_for(SQLITE_READONLY_DIRECTORY, "") == ErrorCode::unavailable);
  CHECK(error_code_for(SQLITE_PERM, "") == ErrorCode::unavailable);
  CHECK(error_code_for(SQLITE_CANTOPEN_ISDIR, "") == ErrorCode::unavailable);
  CHECK(error_code_for(SQLITE_IOERR_SHMOPEN, "") == ErrorCode::unavailable);
  CHECK(error_code_for(SQLITE_IOERR_WRITE, "") == ErrorCode::unavailable);
  CHECK(error_code_for(SQLITE_ERROR, "no such table: job") == ErrorCode::schema_mismatch);
  CHECK(error_code_for(SQLITE_ERROR, "near \"x\": syntax error") == ErrorCode::internal);
  CHECK(error_code_for(SQLITE_CORRUPT, "") == ErrorCode::internal);
  CHECK(jobrepo::sqlite_backend::is_busy(SQLITE_BUSY_RECOVERY));
  CHECK(!jobrepo::sqlite_backend::is_busy(SQLITE_CONSTRAINT));

  const auto error = jobrepo::sqlite_backend::make_error("create_job", "job \"x\"", SQLITE_CONSTRAINT_UNIQUE,
                                                         "UNIQUE constraint failed: job.plugin_id, job.name");
  CHECK(error.code() == ErrorCode::not_unique);
  CHECK(std::string(error.what()) ==
        "create_job: job \"x\": already exists: UNIQUE constraint failed: job.plugin_id, job.name");
  CHECK(error.native_code() == "sqlite 2067 (constraint failed)");
}

TEST_CASE("sqlite: a new database file is readable by its owner only") {
  TempDir dir{"jobrepo-sqlite-test"};
  const auto path = dir.path / "jobs.db";
  auto store = jobrepo::open_store("sqlite:" + path.string());
  store->migrate();
  jobrepo::Repository(*store).create_job("j", "d");
  for (const auto& file : {path, fs::path(path.string() + "-wal")}) {
    INFO(file);
    REQUIRE(fs::exists(file));
    struct stat st {};
    REQUIRE(stat(file.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
  }
}

TEST_CASE("sqlite: a database file created through a dangling symbolic link is readable by its owner only") {
  TempDir dir{"jobrepo-sqlite-test"};
  // The link's target, and a link to a link to a target, neither existing.
  const auto target = dir.path / "target.db";
  const auto link = dir.path / "jobs.db";
  fs::create_symlink(target, link);
  const auto far_target = dir.path / "far.db";
  fs::create_symlink(far_target, dir.path / "middle");
  const auto chain = dir.path / "chain.db";
  fs::create_symlink(dir.path / "middle", chain);
  // A umask that lets others read what is created, as most users' does.
  const mode_t umask_before = ::umask(022);
  for (const auto& [through, created] : {std::pair{link, target}, std::pair{chain, far_target}}) {
    INFO(through << " -> " << created);
    auto store = jobrepo::open_store("sqlite:" + through.string());
    store->migrate();
    jobrepo::Repository(*store).create_job("j", "d");
    CHECK(fs::is_symlink(through));  // still the link, the database at its target
    for (const auto& file : {created, fs::path(created.string() + "-wal")}) {
      INFO(file);
      REQUIRE(fs::exists(file));
      struct stat st {};
      REQUIRE(::lstat(file.c_str(), &st) == 0);
      CHECK((st.st_mode & 0777) == 0600);
    }
  }
  ::umask(umask_before);
}

TEST_CASE("sqlite: URLs and options") {
  TempDir dir{"jobrepo-sqlite-test"};
  CHECK(code_of([] { jobrepo::open_store("sqlite:"); }) == ErrorCode::invalid_parameter);
  CHECK(code_of([] { jobrepo::open_store("sqlite:x.db?journal=off"); }) == ErrorCode::invalid_parameter);
  CHECK(code_of([&] { jobrepo::open_store("sqlite:" + (dir.path / "missing" / "x.db").string()); }) ==
        ErrorCode::unavailable);
  auto normal = jobrepo::open_store("sqlite:" + (dir.path / "normal.db").string() + "?synchronous=normal");
  normal->migrate();
  CHECK(jobrepo::Repository(*normal).create_job("j", "d").name == "j");
  // A path with a space.
  auto spaced = jobrepo::open_store("sqlite:" + (dir.path / "with space.db").string());
  spaced->migrate();
  CHECK(fs::exists(dir.path / "with space.db"));
  // Each in-memory store is its own database.
  auto one = jobrepo::open_store("sqlite::memory:");
  auto two = jobrepo::open_store("sqlite::memory:");
  one->migrate();
  two->migrate();
  jobrepo::Repository(*one).create_job("only-in-one", "d");
  CHECK(!jobrepo::Repository(*two).lookup_job("only-in-one").has_value());
}

TEST_CASE("sqlite: a lock held elsewhere is waited out, then reported as busy") {
  TempDir dir{"jobrepo-sqlite-test"};
  const auto path = (dir.path / "locked.db").string();
  jobrepo::StoreOptions options;
  options.busy_timeout = 300ms;
  auto store = jobrepo::open_store("sqlite:" + path, options);
  store->migrate();
  jobrepo::Repository repo(*store);

  sqlite3* other = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &other) == SQLITE_OK);
  REQUIRE(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);

  const auto started = std::chrono::steady_clock::now();
  try {
    repo.create_job("j", "d");
    FAIL("expected busy");
  } catch (const jobrepo::Error& e) {
    CHECK(e.code() == ErrorCode::busy);
    CHECK(std::string(e.what()).find("create_job") != std::string::npos);
  }
  CHECK(std::chrono::steady_clock::now() - started >= 300ms);
  // Reads still work while another connection writes (WAL).
  CHECK(!repo.lookup_job("j").has_value());

  // A lock released within the timeout is waited out: no error at all.
  std::thread releaser([&] {
    std::this_thread::sleep_for(100ms);
    sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr);
  });
  CHECK(repo.create_job("j", "d").name == "j");
  releaser.join();
  sqlite3_close(other);
}

TEST_CASE("sqlite: processes opening and migrating one new file at once all succeed") {
  // Processes, not threads: SQLite's file locks only conflict between processes.
  for (int round = 0; round < 5; ++round) {
    TempDir dir{"jobrepo-sqlite-test"};
    const std::string url = "sqlite:" + (dir.path / "fresh.db").string();
    const auto start = std::chrono::steady_clock::now() + 200ms;
    std::vector<pid_t> children;
    for (int i = 0; i < 6; ++i) {
      const pid_t pid = fork();
      REQUIRE(pid >= 0);
      if (pid == 0) {
        std::this_thread::sleep_until(start);
        try {
          auto store = jobrepo::open_store(url);
          store->migrate();
          jobrepo::Repository(*store).ensure_job("shared", "d");
        } catch (const jobrepo::Error& e) {
          std::fprintf(stderr, "child: %s\n", e.what());
          _exit(1);
        }
        _exit(0);
      }
      children.push_back(pid);
    }
    int failures = 0;
    for (const pid_t pid : children) {
      int status = 0;
      waitpid(pid, &status, 0);
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failures;
    }
    CHECK(failures == 0);
  }
}

TEST_CASE("sqlite: a database at an older schema version is refused until migrate() upgrades it") {
  TempDir dir{"jobrepo-sqlite-test"};
  const auto path = (dir.path / "old.db").string();
  const auto all = jobrepo::sqlite_backend::migrations();
  REQUIRE(all.size() >= 2);
  {
    // What the first release left behind: version 1 only, with a job.
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    REQUIRE(sqlite3_exec(db, std::string(all[0].sql).c_str(), nullptr, nullptr, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_exec(db,
                         "CREATE TABLE jobrepo_schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                         " applied_at INTEGER NOT NULL) STRICT;"
                         " INSERT INTO jobrepo_schema_version VALUES (1, '0001_initial', 0);"
                         " INSERT INTO job VALUES ('pi_system', 'kept', 'd', 0);",
                         nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(db);
  }
  auto store = jobrepo::open_store("sqlite:" + path);
  jobrepo::Repository repo(*store);
  std::string message;
  CHECK(code_of([&] { repo.lookup_job("kept"); }, &message) == ErrorCode::schema_mismatch);
  CHECK(message.find("jobctl migrate") != std::string::npos);
  store->migrate();
  CHECK(repo.lookup_job("kept")->description == "d");
  CHECK(repo.list_runs().empty());
}

TEST_CASE("sqlite: the schema enforces the rules for SQL written by hand") {
  TempDir dir{"jobrepo-sqlite-test"};
  const auto path = (dir.path / "rules.db").string();
  auto store = jobrepo::open_store("sqlite:" + path);
  store->migrate();
  jobrepo::Repository repo(*store);
  repo.create_job("j", "d");
  const auto run = repo.run_jobs("s1").at(0);

  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  sqlite3_exec(db, "PRAGMA foreign_keys = ON", nullptr, nullptr, nullptr);
  const auto exec = [&](const std::string& sql) {
    sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr);
    return sqlite3_extended_errcode(db);
  };
  // A second running run of the same job.
  CHECK(exec("INSERT INTO job_run (private_id, job_plugin_id, job_name, server_id, create_time, update_time)"
             " VALUES ('AAAAAAAAAAAAAAAAAAAA', 'pi_system', 'j', 's2', 0, 0)") == SQLITE_CONSTRAINT_UNIQUE);
  CHECK(exec("UPDATE job_run SET completed_count = 5, total_count = 2") == SQLITE_CONSTRAINT_CHECK);
  CHECK(exec("UPDATE job_run SET completed_count = -1") == SQLITE_CONSTRAINT_CHECK);
  CHECK(exec("UPDATE job_run SET status = 'paused'") == SQLITE_CONSTRAINT_CHECK);
  CHECK(exec("UPDATE job_run SET status = 'failed'") == SQLITE_CONSTRAINT_CHECK);  // end_time missing
  CHECK(exec("INSERT INTO job_run (private_id, job_plugin_id, job_name, server_id, create_time, update_time)"
             " VALUES ('BBBBBBBBBBBBBBBBBBBB', 'pi_system', 'nope', 's2', 0, 0)") == SQLITE_CONSTRAINT_FOREIGNKEY);
  CHECK(exec("INSERT INTO job (plugin_id, name, description, next_scheduled_run) VALUES ('p', '  ', 'd', 0)") ==
        SQLITE_CONSTRAINT_CHECK);
  CHECK(exec("UPDATE job_run SET status = 'failed', end_time = 1") == SQLITE_OK);
  CHECK(exec("UPDATE job_run SET status = 'running', end_time = NULL") == SQLITE_CONSTRAINT_TRIGGER);
  // Deleting a job deletes its runs.
  CHECK(exec("DELETE FROM job WHERE name = 'j'") == SQLITE_OK);
  sqlite3_close(db);
  CHECK(!repo.lookup_run(run.private_id).has_value());
}

namespace {

// Removes the database file and its WAL companions, as `rm jobs.db*` would.
void remove_database(const fs::path& path) {
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(path.string() + suffix);
}

// What a call threw, as "code: message", "not a jobrepo::Error: message", or
// "nothing". Never fails the test itself, so it may run on any thread.
std::string outcome(const std::function<void()>& call) {
  try {
    call();
  } catch (const jobrepo::Error& e) {
    return std::string(jobrepo::to_string(e.code())) + ": " + e.what();
  } catch (const std::exception& e) {
    return std::string("not a jobrepo::Error: ") + e.what();
  }
  return "nothing";
}

// The call must fail with unavailable, naming the file.
void check_moved(const std::string& what, const fs::path& path) {
  INFO(what);
  CHECK(what.rfind("unavailable: ", 0) == 0);
  CHECK(what.find(path.string()) != std::string::npos);
  CHECK(what.find("deleted or replaced") != std::string::npos);
}

void check_moved(const std::function<void()>& call, const fs::path& path) { check_moved(outcome(call), path); }

}  // namespace

TEST_CASE("sqlite: a database file deleted under an open store makes every call unavailable") {
  TempDir dir{"jobrepo-sqlite-test"};
  const auto path = dir.path / "jobs.db";
  auto store = jobrepo::open_store("sqlite:" + path.string());
  store->migrate();
  jobrepo::Repository repo(*store);
  repo.create_job("j", "d");
  remove_database(path);

  check_moved([&] { repo.create_job("k", "d"); }, path);
  check_moved([&] { repo.run_jobs("s1"); }, path);
  check_moved([&] { repo.list_jobs(); }, path);
  check_moved([&] { repo.lookup_job("j"); }, path);
  check_moved([&] { store->migrate(); }, path);
  // Still unavailable on later calls, whichever pooled connection they get.
  for (int i = 0; i < 20; ++i) check_moved([&] { repo.lookup_job("j"); }, path);
  CHECK(!fs::exists(path));
}

TEST_CASE("sqlite: a database file replaced under an open store is not written by it") {
  TempDir dir{"jobrepo-sqlite-test"};
  const auto path = dir.path / "jobs.db";
  jobrepo::StoreOptions options;
  options.busy_timeout = 2s;
  auto old_store = jobrepo::open_store("sqlite:" + path.string(), options);
  old_store->migrate();
  jobrepo::Repository old_repo(*old_store);
  old_repo.create_job("j", "d");

  // A writer of the old store waits for a lock held elsewhere, holding the
  // store's only open connection.
  sqlite3* other = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &other) == SQLITE_OK);
  REQUIRE(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
  std::string waiting_writer;
  std::thread writer([&] {
    jobrepo::Repository repo(*old_store);
    waiting_writer = outcome([&] { repo.create_job("k", "d"); });
  });
  std::this_thread::sleep_for(200ms);

  // Another deployment moves the file aside (its -wal and -shm belong to it
  // and go too) and starts a new database at the same path.
  fs::rename(path, dir.path / "jobs.db.old");
  remove_database(path);
  auto new_store = jobrepo::open_store("sqlite:" + path.string());
  new_store->migrate();
  jobrepo::Repository new_repo(*new_store);
  new_repo.create_job("j", "d");

  // This call opens a new connection, which must not reach the new file.
  check_moved([&] { old_repo.lookup_job("j"); }, path);
  // The waiting writer gets the lock on the old file, then sees it moved.
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);
  writer.join();
  check_moved(waiting_writer, path);

  check_moved([&] { old_repo.create_job("k", "d"); }, path);
  check_moved([&] { old_repo.run_jobs("s1"); }, path);
  check_moved([&] { old_repo.list_jobs(); }, path);
  check_moved([&] { old_repo.lookup_job("j"); }, path);
  check_moved([&] { old_store->migrate(); }, path);

  CHECK(new_repo.list_jobs().size() == 1);
  CHECK(!new_repo.lookup_job("k").has_value());
  CHECK(new_repo.list_runs().empty());
  CHECK(new_repo.run_jobs("s2").size() == 1);
}

TEST_CASE("sqlite: a file renamed, deleted or replaced under an open store: every operation is unavailable") {
  TempDir dir{"jobrepo-sqlite-test"};
  const auto path = dir.path / "jobs.db";
  auto store = jobrepo::open_store("sqlite:" + path.string());
  store->migrate();
  const std::string plugin = "pi_system";
  store->create_job({plugin, "j", "d"});
  const auto run = store->claim_runs({plugin, "s1"}).at(0);
  // The commit watcher runs: it must not reach a new file either.
  std::atomic<int> woken{0};
  auto subscription = store->subscribe_due(plugin, [&] { ++woken; });

  std::unique_ptr<jobrepo::Store> other;
  SECTION("renamed") { fs::rename(path, dir.path / "jobs.db.moved"); }
  SECTION("deleted") { remove_database(path); }
  SECTION("replaced") {
    fs::rename(path, dir.path / "jobs.db.old");
    remove_database(path);
    other = jobrepo::open_store("sqlite:" + path.string());
    other->migrate();
  }
  const std::vector<std::pair<const char*, std::function<void()>>> operations{
      {"migrate", [&] { store->migrate(); }},
      {"now", [&] { store->now(); }},
      {"create_job",
       [&] {
         store->create_job({plugin, "k", "d"});
       }},
      {"ensure_job",
       [&] {
         store->ensure_job({plugin, "k", "d"});
       }},
      {"lookup_job", [&] { store->lookup_job(plugin, "j"); }},
      {"list_jobs", [&] { store->list_jobs({plugin}); }},
      {"reschedule_job", [&] { store->reschedule_job(plugin, "j", {}); }},
      {"delete_job", [&] { store->delete_job(plugin, "j"); }},
      {"set_job_paused", [&] { store->set_job_paused(plugin, "j", true); }},
      {"request_run", [&] { store->request_run(plugin, "j", std::nullopt); }},
      {"request_cancel", [&] { store->request_cancel(plugin, run.private_id); }},
      {"record_server",
       [&] {
         store->record_server({plugin, "s1", "i1", "", 1s});
       }},
      {"remove_server", [&] { store->remove_server(plugin, "s1", "i1"); }},
      {"list_servings", [&] { store->list_servings(plugin, std::nullopt); }},
      {"claim_runs",
       [&] {
         store->claim_runs({plugin, "s1"});
       }},
      {"transition_runs",
       [&] {
         const jobrepo::RunTransition change{plugin, run.private_id, jobrepo::Status::completed};
         store->transition_runs({&change, 1});
       }},
      {"interrupt_stale_runs", [&] { store->interrupt_stale_runs({plugin}); }},
      {"record_work_end", [&] { store->record_work_end(plugin, run.private_id, jobrepo::Clock::now()); }},
      {"lookup_run", [&] { store->lookup_run(plugin, run.private_id); }},
      {"list_runs", [&] { store->list_runs({plugin}); }},
      {"prune_runs", [&] { store->prune_runs(plugin, 0us); }},
  };
  for (int round = 0; round < 2; ++round) {
    for (const auto& [name, call] : operations) {
      INFO(name);
      check_moved(call, path);
    }
  }
  // Subscribing touches no data; it does not fail.
  CHECK_NOTHROW(store->subscribe_due(plugin, [] {}));
  if (other) {
    // The new file holds only what its own store wrote.
    jobrepo::Repository repo(*other);
    CHECK(repo.list_jobs().empty());
    repo.create_job("new", "d");
    CHECK(repo.list_runs().empty());
  } else {
    CHECK(!fs::exists(path));
  }
}

namespace {

// Connections opened while it is above 0 cannot grow the database past this
// many pages (PRAGMA max_page_count): SQLite then fails with SQLITE_FULL, as
// on a full disk.
std::atomic<int> page_limit{0};

int limit_pages(sqlite3* db, const char**, const sqlite3_api_routines*) {
  if (const int limit = page_limit.load(); limit > 0) {
    sqlite3_exec(db, ("PRAGMA max_page_count = " + std::to_string(limit)).c_str(), nullptr, nullptr, nullptr);
  }
  return SQLITE_OK;
}

}  // namespace

TEST_CASE("sqlite: a full disk is unavailable with SQLite's own words, not those of the rollback") {
  TempDir dir{"jobrepo-sqlite-test"};
  const auto path = dir.path / "jobs.db";
  jobrepo::open_store("sqlite:" + path.string())->migrate();
  // Every connection opened from here on is limited to a few more pages.
  sqlite3* probe = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &probe) == SQLITE_OK);
  sqlite3_stmt* count = nullptr;
  REQUIRE(sqlite3_prepare_v2(probe, "PRAGMA page_count", -1, &count, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(count) == SQLITE_ROW);
  page_limit = sqlite3_column_int(count, 0) + 4;
  sqlite3_finalize(count);
  sqlite3_close(probe);
  // NOLINTNEXTLINE: sqlite3_auto_extension takes the entry point as void(*)(void)
  const auto entry = reinterpret_cast<void (*)()>(limit_pages);
  REQUIRE(sqlite3_auto_extension(entry) == SQLITE_OK);
  struct Cleanup {
    void (*entry)();
    ~Cleanup() {
      sqlite3_cancel_auto_extension(entry);
      page_limit = 0;
    }
  } cleanup{entry};

  auto store = jobrepo::open_store("sqlite:" + path.string());
  jobrepo::Repository repo(*store);
  const std::string description(1000, 'd');
  std::string message;
  std::optional<ErrorCode> code;
  std::string native;
  for (int i = 0; i < 200 && !code; ++i) {
    try {
      repo.create_job("job-" + std::to_string(i), description);
    } catch (const jobrepo::Error& e) {
      code = e.code();
      message = e.what();
      native = e.native_code();
    }
  }
  INFO(message);
  REQUIRE(code.has_value());
  CHECK(*code == ErrorCode::unavailable);
  CHECK(message.find("database or disk is full") != std::string::npos);
  CHECK(message.find("rollback") == std::string::npos);
  CHECK(native.rfind("sqlite 13 ", 0) == 0);
  // Reads still work, and so do writes once there is room again.
  CHECK(!repo.list_jobs().empty());
}

TEST_CASE("sqlite: times written by hand beyond what a Timestamp holds read back saturated, never wrapped") {
  TempDir dir{"jobrepo-sqlite-test"};
  const auto path = (dir.path / "times.db").string();
  auto store = jobrepo::open_store("sqlite:" + path);
  store->migrate();
  jobrepo::Repository repo(*store);
  repo.create_job("future", "d");
  repo.create_job("past", "d");
  const auto run = repo.run_jobs("s1").at(0);
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  // The year 3000, the year 1000, and the ends of 64-bit microseconds.
  const std::string year3000 = "32503680000000000", year1000 = "-30610224000000000";
  for (const auto& [future, past] :
       {std::pair<std::string, std::string>{year3000, year1000}, {"9223372036854775807", "-9223372036854775808"}}) {
    INFO(future << " " << past);
    REQUIRE(sqlite3_exec(db, ("UPDATE job SET next_scheduled_run = " + future + " WHERE name = 'future'").c_str(),
                         nullptr, nullptr, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_exec(db, ("UPDATE job SET next_scheduled_run = " + past + " WHERE name = 'past'").c_str(), nullptr,
                         nullptr, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_exec(db, ("UPDATE job_run SET create_time = " + past + ", update_time = " + future).c_str(),
                         nullptr, nullptr, nullptr) == SQLITE_OK);
    const auto latest = std::chrono::time_point_cast<std::chrono::microseconds>(jobrepo::Timestamp::max());
    const auto earliest = std::chrono::time_point_cast<std::chrono::microseconds>(jobrepo::Timestamp::min());
    CHECK(repo.lookup_job("future")->next_scheduled_run == latest);
    CHECK(repo.lookup_job("past")->next_scheduled_run == earliest);
    const auto read = repo.lookup_run(run.private_id);
    REQUIRE(read);
    CHECK(read->create_time == earliest);
    CHECK(read->update_time == latest);
    CHECK(repo.list_jobs().at(0).next_scheduled_run == latest);
  }
  sqlite3_close(db);
}

TEST_CASE("sqlite: a store with create_if_missing = false opens an existing file and never creates one") {
  TempDir dir{"jobrepo-sqlite-test"};
  const auto path = dir.path / "jobs.db";
  jobrepo::StoreOptions existing_only;
  existing_only.create_if_missing = false;
  std::string message;
  const auto open_existing = [&] { jobrepo::open_store("sqlite:" + path.string(), existing_only); };
  CHECK(code_of(open_existing, &message) == ErrorCode::unavailable);
  CHECK(message == "open_store: sqlite database \"" + path.string() + "\" does not exist");
  try {
    open_existing();
  } catch (const jobrepo::Error& e) {
    CHECK(e.native_code() == "ENOENT");
  }
  CHECK(!fs::exists(path));
  {
    auto store = jobrepo::open_store("sqlite:" + path.string());
    store->migrate();
    jobrepo::Repository(*store).create_job("j", "d");
  }
  auto store = jobrepo::open_store("sqlite:" + path.string(), existing_only);
  jobrepo::Repository repo(*store);
  CHECK(repo.lookup_job("j").has_value());
  CHECK(repo.create_job("k", "d").name == "k");
  // Its connections open the file without SQLITE_OPEN_CREATE, so that a
  // file deleted meanwhile is not created again; WAL files are created as
  // usual.
  const auto other = (dir.path / "other.db").string();
  int code = SQLITE_OK;
  try {
    jobrepo::sqlite_backend::Connection c(other, std::chrono::seconds(1));
  } catch (const jobrepo::sqlite_backend::DatabaseError& e) {
    code = e.code();
  }
  CHECK(code == SQLITE_CANTOPEN);
  CHECK(!fs::exists(other));
  jobrepo::sqlite_backend::Connection c(path.string(), std::chrono::seconds(1));
  c.run_script("PRAGMA journal_mode = WAL; SELECT count(*) FROM job");
}

namespace {

// The bytes of a file, or "(missing)".
std::string bytes_of(const fs::path& file) {
  if (!fs::exists(file)) return "(missing)";
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

fs::path with_suffix(const fs::path& path, const char* suffix) { return path.string() + suffix; }

// The call must refuse with unavailable, naming the database and its
// leftover files, and saying what to do.
void check_refused_beside_leftovers(const std::string& what, const fs::path& path) {
  INFO(what);
  CHECK(what.rfind("unavailable: open_store: sqlite database \"" + path.string() + "\"", 0) == 0);
  CHECK(what.find(path.string() + "-wal\"") != std::string::npos);
  CHECK(what.find("moved or deleted") != std::string::npos);
  CHECK(what.find("move it back") != std::string::npos);
  CHECK(what.find('\n') == std::string::npos);
}

}  // namespace

TEST_CASE("sqlite: a database moved away with commits in its WAL: a store at the old path refuses, nothing is lost") {
  TempDir dir{"jobrepo-sqlite-test"};
  const auto path = dir.path / "jobs.db";
  const auto wal = with_suffix(path, "-wal");
  const auto moved = dir.path / "jobs.db.moved";
  std::vector<std::string> runs;
  std::string wal_bytes;
  {
    auto store = jobrepo::open_store("sqlite:" + path.string());
    store->migrate();
    jobrepo::Repository repo(*store);
    for (int i = 0; i < 20; ++i) repo.create_job("job-" + std::to_string(i), "d");
    for (const auto& run : repo.run_jobs("s1", {.limit = -1})) runs.push_back(run.private_id);
    REQUIRE(runs.size() == 20);
    // The runs live in the WAL: nothing checkpointed them into the file yet.
    REQUIRE(fs::file_size(wal) > 0);
    fs::rename(path, moved);  // as `mv jobs.db elsewhere` while the store serves
    wal_bytes = bytes_of(wal);

    // A store restarted at the old path, as jobctl serve would be.
    check_refused_beside_leftovers(outcome([&] { jobrepo::open_store("sqlite:" + path.string()); }), path);
    jobrepo::StoreOptions existing_only;
    existing_only.create_if_missing = false;
    check_refused_beside_leftovers(outcome([&] { jobrepo::open_store("sqlite:" + path.string(), existing_only); }),
                                   path);
    CHECK(!fs::exists(path));
    CHECK(fs::file_size(wal) == wal_bytes.size());
    CHECK((bytes_of(wal) == wal_bytes));
  }
  // The old store closed without checkpointing into the moved file or
  // resetting the WAL (SQLite does not checkpoint a moved file on close).
  CHECK((bytes_of(wal) == wal_bytes));
  // The file moved back, its WAL is read again: every run is there.
  fs::rename(moved, path);
  auto store = jobrepo::open_store("sqlite:" + path.string());
  jobrepo::Repository repo(*store);
  for (const auto& id : runs) CHECK(repo.lookup_run(id).has_value());
  CHECK(repo.list_runs({.limit = -1}).size() == runs.size());
}

TEST_CASE("sqlite: a -wal or -shm without its database file: nothing is created or truncated") {
  TempDir dir{"jobrepo-sqlite-test"};
  const auto path = dir.path / "jobs.db";
  const auto wal = with_suffix(path, "-wal"), shm = with_suffix(path, "-shm");
  std::string wal_bytes;
  {
    auto store = jobrepo::open_store("sqlite:" + path.string());
    store->migrate();
    jobrepo::Repository(*store).create_job("j", "d");
    REQUIRE(fs::file_size(wal) > 0);
    wal_bytes = bytes_of(wal);

    SECTION("the database file deleted under an open store") {
      fs::remove(path);
      check_refused_beside_leftovers(outcome([&] { jobrepo::open_store("sqlite:" + path.string()); }), path);
      CHECK(!fs::exists(path));
      CHECK(fs::file_size(wal) == wal_bytes.size());
      CHECK((bytes_of(wal) == wal_bytes));
    }
    SECTION("an empty database file beside the WAL (created by another program)") {
      fs::remove(path);
      std::ofstream{path};
      const auto what = outcome([&] { jobrepo::open_store("sqlite:" + path.string()); });
      check_refused_beside_leftovers(what, path);
      CHECK(what.find("is empty") != std::string::npos);
      CHECK(fs::file_size(path) == 0);
      CHECK(fs::file_size(wal) == wal_bytes.size());
      CHECK((bytes_of(wal) == wal_bytes));
    }
    SECTION("only the -shm left") {
      fs::rename(path, dir.path / "moved.db");
      fs::rename(wal, dir.path / "moved.db-wal");
      const auto what = outcome([&] { jobrepo::open_store("sqlite:" + path.string()); });
      INFO(what);
      CHECK(what.rfind("unavailable: open_store: sqlite database \"" + path.string() + "\"", 0) == 0);
      CHECK(what.find(shm.string() + "\"") != std::string::npos);
      CHECK(!fs::exists(path));
      CHECK(fs::exists(shm));
    }
  }
}

TEST_CASE("sqlite: the store's connections never open an empty database file beside a -wal or -shm") {
  // The guard against a file deleted or emptied between open_store()'s check
  // and SQLite's open: SQLite would delete or reset that WAL.
  TempDir dir{"jobrepo-sqlite-test"};
  const auto path = dir.path / "jobs.db";
  const auto wal = with_suffix(path, "-wal");
  std::ofstream{path};
  std::ofstream(wal) << "frames of a database that lives elsewhere now";
  using jobrepo::sqlite_backend::Connection;
  int code = SQLITE_OK;
  try {
    Connection refused(path.string(), std::chrono::seconds(1));
  } catch (const jobrepo::sqlite_backend::DatabaseError& e) {
    code = e.code();
  }
  CHECK(code == SQLITE_CANTOPEN);
  CHECK(bytes_of(wal) == "frames of a database that lives elsewhere now");
  // A database with content, or an empty one without leftovers, opens.
  fs::remove(wal);
  Connection db(path.string(), std::chrono::seconds(1));
  db.run_script("PRAGMA journal_mode = WAL; CREATE TABLE t (x)");
  Connection second(path.string(), std::chrono::seconds(1));
  second.run_script("SELECT * FROM t");
}

namespace {

// While above 0, every new SQLite connection of the process fails to open
// with this result code (an automatic extension fails the open).
std::atomic<int> open_failure{0};

int fail_open(sqlite3*, char** message, const sqlite3_api_routines*) {
  if (const int code = open_failure.load(); code != 0) {
    *message = sqlite3_mprintf("%s", sqlite3_errstr(code));
    return code;
  }
  return SQLITE_OK;
}

struct FailingOpens {
  // NOLINTNEXTLINE: sqlite3_auto_extension takes the entry point as void(*)(void)
  void (*entry)() = reinterpret_cast<void (*)()>(fail_open);
  explicit FailingOpens(int code) {
    open_failure = code;
    sqlite3_auto_extension(entry);
  }
  FailingOpens(const FailingOpens&) = delete;
  FailingOpens& operator=(const FailingOpens&) = delete;
  ~FailingOpens() {
    sqlite3_cancel_auto_extension(entry);
    open_failure = 0;
  }
};

}  // namespace

TEST_CASE("sqlite: a connection that fails to open later is an error of the operation, never a driver exception") {
  TempDir dir{"jobrepo-sqlite-test"};
  const auto path = dir.path / "jobs.db";
  jobrepo::StoreOptions options;
  options.pool_size = 1;
  auto store = jobrepo::open_store("sqlite:" + path.string(), options);
  jobrepo::Repository repo(*store);
  {
    // The store's writing connection opens at its first write.
    const FailingOpens failing(SQLITE_IOERR);
    const auto what = outcome([&] { store->migrate(); });
    INFO(what);
    CHECK(what.rfind("unavailable: migrate: ", 0) == 0);
    CHECK(what.find(path.string()) != std::string::npos);
    CHECK(what.find("disk I/O error") != std::string::npos);
  }
  store->migrate();
  CHECK(repo.create_job("j", "d").name == "j");
  CHECK(repo.lookup_job("j").has_value());
}

TEST_CASE("sqlite: a read-only database file is unavailable, naming the file - writable again, the same store writes") {
  TempDir dir{"jobrepo-sqlite-test"};
  const auto path = dir.path / "jobs.db";
  jobrepo::open_store("sqlite:" + path.string())->migrate();
  jobrepo::test::Immutable read_only(path);
  if (!read_only.problem.empty()) {
    WARN("skipped: cannot make a file read-only for root here: " << read_only.problem);
    return;
  }
  auto store = jobrepo::open_store("sqlite:" + path.string());
  jobrepo::Repository repo(*store);
  CHECK(repo.list_jobs().empty());  // reads work
  const auto what = outcome([&] { repo.create_job("j", "d"); });
  INFO(what);
  CHECK(what.rfind("unavailable: create_job: ", 0) == 0);
  CHECK(what.find("\"" + path.string() + "\"") != std::string::npos);
  CHECK(what.find("readonly") != std::string::npos);
  // Also a write that would change nothing.
  const auto migrating = outcome([&] { store->migrate(); });
  INFO(migrating);
  CHECK(migrating.rfind("unavailable: migrate: the database is unavailable: sqlite database \"" + path.string() +
                            "\": attempt to write a readonly database",
                        0) == 0);
  read_only.release();
  CHECK(repo.create_job("j", "d").name == "j");
}

TEST_CASE("sqlite: a database on a read-only file system is unavailable, naming the file") {
  TempDir dir{"jobrepo-sqlite-test"};
  const auto source = dir.path / "source";
  fs::create_directory(source);
  jobrepo::open_store("sqlite:" + (source / "jobs.db").string())->migrate();
  jobrepo::test::BindMount mount(source, dir.path / "ro");
  if (!mount.problem.empty()) {
    WARN("skipped: cannot mount a directory read-only here: " << mount.problem);
    return;
  }
  const auto path = dir.path / "ro" / "jobs.db";
  // A new file cannot be created there.
  const auto creating = outcome([&] { jobrepo::open_store("sqlite:" + (dir.path / "ro" / "new.db").string()); });
  INFO(creating);
  CHECK(creating.rfind("unavailable: open_store: ", 0) == 0);
  CHECK(creating.find("new.db\"") != std::string::npos);
  CHECK(!fs::exists(source / "new.db"));
  // An existing one without its -shm cannot be opened (SQLite cannot make one).
  const auto opening = outcome([&] { jobrepo::open_store("sqlite:" + path.string()); });
  INFO(opening);
  CHECK(opening.rfind("unavailable: open_store: ", 0) == 0);
  CHECK(opening.find("\"" + path.string() + "\"") != std::string::npos);
  // With its -wal and -shm (another store has it open through a writable
  // path), it is read, and writes fail.
  auto writable = jobrepo::open_store("sqlite:" + (source / "jobs.db").string());
  jobrepo::Repository(*writable).create_job("j", "d");
  auto store = jobrepo::open_store("sqlite:" + path.string());
  jobrepo::Repository repo(*store);
  CHECK(repo.lookup_job("j").has_value());
  const auto writing = outcome([&] { repo.create_job("k", "d"); });
  INFO(writing);
  CHECK(writing.rfind("unavailable: create_job: job \"k\"", 0) == 0);
  CHECK(writing.find("\"" + path.string() + "\"") != std::string::npos);
  // Made writable, the same store writes.
  REQUIRE(mount.set_read_only(false));
  CHECK(repo.create_job("k", "d").name == "k");
}

namespace {

// While set, the next SQLite connection opened replaces the database file
// at this path by a copy, once SQLite has opened it (automatic extensions
// run after the file is opened).
std::optional<fs::path> replace_when_opened;
std::mutex replace_mutex;

int replace_file(sqlite3*, char**, const sqlite3_api_routines*) {
  const std::lock_guard lock(replace_mutex);
  if (replace_when_opened) {
    const fs::path path = *replace_when_opened;
    replace_when_opened.reset();
    std::error_code ignored;
    fs::rename(path, path.string() + ".old", ignored);
    fs::copy_file(path.string() + ".old", path, ignored);
  }
  return SQLITE_OK;
}

}  // namespace

TEST_CASE("sqlite: a database file replaced while a store opens it is refused by open_store") {
  TempDir dir{"jobrepo-sqlite-test"};
  const auto path = dir.path / "jobs.db";
  jobrepo::open_store("sqlite:" + path.string())->migrate();
  // NOLINTNEXTLINE: sqlite3_auto_extension takes the entry point as void(*)(void)
  const auto entry = reinterpret_cast<void (*)()>(replace_file);
  REQUIRE(sqlite3_auto_extension(entry) == SQLITE_OK);
  struct Cleanup {
    void (*entry)();
    ~Cleanup() { sqlite3_cancel_auto_extension(entry); }
  } cleanup{entry};
  {
    const std::lock_guard lock(replace_mutex);
    replace_when_opened = path;
  }
  const auto what = outcome([&] { jobrepo::open_store("sqlite:" + path.string()); });
  INFO(what);
  CHECK(what == "unavailable: open_store: sqlite database \"" + path.string() +
                    "\" was deleted or replaced while it was being opened; open it again");
  // Opened again, the store uses the file now there.
  auto store = jobrepo::open_store("sqlite:" + path.string());
  jobrepo::Repository repo(*store);
  CHECK(repo.create_job("j", "d").name == "j");
  CHECK(repo.lookup_job("j").has_value());
}

TEST_CASE("sqlite: a path with a double quote, a space or an equals sign opens as written") {
  // SOCI's connect string could not hold a '"' (refused until 0.7); the
  // sqlite3 C API takes the path as it is.
  TempDir dir{"jobrepo-sqlite-test"};
  const auto path = dir.path / "a \"b\" =c.db";
  {
    auto store = jobrepo::open_store("sqlite:" + path.string());
    store->migrate();
    jobrepo::Repository(*store).create_job("j", "d");
  }
  CHECK(fs::exists(path));
  auto store = jobrepo::open_store("sqlite:" + path.string());
  CHECK(jobrepo::Repository(*store).lookup_job("j").has_value());
}

TEST_CASE("sqlite: writes of many threads that wait together commit together, and each succeeds or fails alone") {
  // While another connection holds the lock, every thread's write queues;
  // when it is released, the writes run in one transaction, each in a
  // savepoint of its own: a write that fails (a duplicate name) leaves the
  // others, before and after it, written.
  TempDir dir{"jobrepo-sqlite-test"};
  const auto path = (dir.path / "combined.db").string();
  auto store = jobrepo::open_store("sqlite:" + path);
  store->migrate();
  sqlite3* other = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &other) == SQLITE_OK);
  REQUIRE(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
  constexpr int threads = 12;
  std::vector<std::optional<ErrorCode>> failures(threads);
  std::vector<int> created(threads, 0);
  std::vector<std::thread> writers;
  for (int t = 0; t < threads; ++t) {
    writers.emplace_back([&, t] {
      jobrepo::Repository repo(*store);
      // Threads 0-5 create a job each; 6-11 create the same names again.
      const std::string name = "job-" + std::to_string(t % (threads / 2));
      try {
        repo.create_job(name, "by thread " + std::to_string(t));
        created[static_cast<std::size_t>(t)] = 1;
      } catch (const jobrepo::Error& e) {
        failures[static_cast<std::size_t>(t)] = e.code();
      }
    });
  }
  std::this_thread::sleep_for(300ms);  // every thread waits now
  REQUIRE(sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(other);
  for (auto& w : writers) w.join();
  jobrepo::Repository repo(*store);
  const auto jobs = repo.list_jobs();
  CHECK(jobs.size() == threads / 2);
  for (int k = 0; k < threads / 2; ++k) {
    INFO("job-" << k);
    const auto a = static_cast<std::size_t>(k);
    const auto b = static_cast<std::size_t>(k + threads / 2);
    // Exactly one of the two writers of each name created it; the other got
    // not_unique, and the job is the one the creator wrote.
    CHECK(created[a] + created[b] == 1);
    CHECK(failures[created[a] == 1 ? b : a] == ErrorCode::not_unique);
    const auto job = repo.lookup_job("job-" + std::to_string(k));
    REQUIRE(job.has_value());
    CHECK(job->description == "by thread " + std::to_string(created[a] == 1 ? k : k + threads / 2));
  }
}
