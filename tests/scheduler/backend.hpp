// The database a scheduler test runs on: SQLite on a file, PostgreSQL
// (JOBREPO_TEST_BACKEND=postgres and its test server) or MariaDB
// (JOBREPO_TEST_BACKEND=mariadb and its test server), a new one per call.
#pragma once

#include "../mariadb/test_server.hpp"
#include "test_server.hpp"

#include <jobrepo/jobrepo.hpp>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

namespace jobrepo::test {

// "sqlite" (the default), "postgres" or "mariadb".
inline std::string test_backend() {
  const char* backend = std::getenv("JOBREPO_TEST_BACKEND");
  return backend && *backend ? backend : "sqlite";
}

inline bool scheduler_on_postgres() { return test_backend() == "postgres"; }
inline bool scheduler_on_mariadb() { return test_backend() == "mariadb"; }
inline bool scheduler_on_sqlite() { return test_backend() == "sqlite"; }

class Databases {
 public:
  ~Databases() {
    std::error_code ignored;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
  }

  // A URL of a new, empty database that other processes can open too.
  std::string make() {
    ++count_;
    if (scheduler_on_postgres()) {
      if (!database_) database_ = std::make_unique<TestDatabase>();
      const std::string schema = "case_" + std::to_string(count_);
      postgres_exec(database_->url(), "CREATE SCHEMA " + schema);
      return with_parameter(database_->url(), "options=-csearch_path%3D" + schema);
    }
    if (scheduler_on_mariadb()) {
      if (!mariadb_) mariadb_ = std::make_unique<MariadbDatabases>();
      return mariadb_->create();
    }
    if (dir_.empty()) {
      std::string pattern = (std::filesystem::temp_directory_path() / "jobrepo-scheduler-XXXXXX").string();
      if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("cannot make a temporary directory");
      dir_ = pattern;
    }
    return "sqlite:" + (dir_ / ("case-" + std::to_string(count_) + ".db")).string();
  }

 private:
  std::unique_ptr<TestDatabase> database_;
  std::unique_ptr<MariadbDatabases> mariadb_;
  std::filesystem::path dir_;
  int count_ = 0;
};

}  // namespace jobrepo::test
