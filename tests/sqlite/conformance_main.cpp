// The conformance suite against the SQLite backend: on a file
// (JOBREPO_TEST_SQLITE_VARIANT "file") or in memory ("memory").
#include <jobrepo/conformance.hpp>
#include <jobrepo/jobrepo.hpp>

#include <sqlite3.h>

#include <atomic>
#include <filesystem>
#include <string>

namespace {

namespace fs = std::filesystem;

class SqliteHarness : public jobrepo::conformance::Harness {
 public:
  explicit SqliteHarness(bool in_memory) : in_memory_(in_memory) {}
  ~SqliteHarness() override {
    std::error_code ignored;
    if (!dir_.empty()) fs::remove_all(dir_, ignored);
  }

  std::string name() const override { return in_memory_ ? "sqlite-memory" : "sqlite-file"; }

  jobrepo::conformance::Capabilities capabilities() const override {
    // An in-memory database lives and dies with its one connection.
    return {.shares_across_processes = !in_memory_,
            .shares_in_process = !in_memory_,
            .forces_schema_version = !in_memory_,
            .pushes_wakeups = true};
  }

  // Each case's file goes when the case ends.
  void drop_database(jobrepo::conformance::Database& db) noexcept override {
    if (db.url.empty()) return;
    db.store.reset();
    const std::string path = db.url.substr(std::string("sqlite:").size());
    std::error_code ignored;
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) fs::remove(path + suffix, ignored);
  }

  jobrepo::conformance::Database make_database() override {
    if (in_memory_) return {jobrepo::open_store("sqlite::memory:"), ""};
    const std::string url = "sqlite:" + (directory() / ("case-" + std::to_string(++cases_) + ".db")).string();
    return {jobrepo::open_store(url), url};
  }

  std::unique_ptr<jobrepo::Store> open(const std::string& url) override { return jobrepo::open_store(url); }

  bool force_schema_version(const std::string& url, int version) override {
    sqlite3* db = nullptr;
    const std::string path = url.substr(std::string("sqlite:").size());
    if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
      sqlite3_close(db);
      return false;
    }
    sqlite3_stmt* st = nullptr;
    bool ok =
        sqlite3_prepare_v2(db, "INSERT INTO jobrepo_schema_version (version, name, applied_at) VALUES (?, 'future', 0)",
                           -1, &st, nullptr) == SQLITE_OK;
    ok = ok && sqlite3_bind_int(st, 1, version) == SQLITE_OK && sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return ok;
  }

 private:
  const fs::path& directory() {
    if (dir_.empty()) {
      std::string pattern = (fs::temp_directory_path() / "jobrepo-sqlite-XXXXXX").string();
      if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("cannot make a temporary directory");
      dir_ = pattern;
    }
    return dir_;
  }

  const bool in_memory_;
  fs::path dir_;
  int cases_ = 0;
};

}  // namespace

int main(int argc, char* argv[]) {
  SqliteHarness harness(std::string(JOBREPO_TEST_SQLITE_VARIANT) == "memory");
  return jobrepo::conformance::run(harness, argc, argv);
}
